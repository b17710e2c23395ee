"""Inference backends: something that maps a normalised NCHW float32 batch to logits."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn


class Backend(Protocol):
    name: str

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """``(N, 3, H, W)`` float32 -> ``(N, H, W)`` float32 logits."""
        ...


class TorchBackend:
    """Runs a torch module (eager or fused) on CPU or CUDA."""

    name = "torch"

    def __init__(
        self, model: nn.Module, device: str | torch.device = "cpu", name: str = "torch"
    ) -> None:
        self.name = name
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device, non_blocking=True)
        return self.model(x)[:, 0].float().cpu().numpy()


class OnnxBackend:
    """Runs an ONNX graph (a ``.onnx`` file or its bytes) with ONNX Runtime on CPU.

    ``threads`` sets the intra-op thread pool (``None``: ONNX Runtime's default, one per
    core). Graph optimisations stop at the "extended" level: the NCHWc layout rewrite of
    the "all" level measured ~20% slower on CSNet's narrow convolutions.
    """

    name = "onnx"

    def __init__(self, model: str | Path | bytes, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.inter_op_num_threads = 1
        if threads:
            opts.intra_op_num_threads = threads
        source = model if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own untyped exceptions for bad files
            where = "ONNX model" if isinstance(model, bytes) else str(model)
            raise ValueError(f"{where}: cannot load ONNX model: {e}") from e
        self.input_name = self.session.get_inputs()[0].name
        self.threads = threads

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        (logits,) = self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})
        return logits[:, 0]
