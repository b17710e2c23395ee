"""Inference backends: something that maps a normalised NCHW float32 batch to logits."""

from __future__ import annotations

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

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device, non_blocking=True)
        return self.model(x)[:, 0].float().cpu().numpy()
