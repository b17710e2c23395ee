"""Backend selection by name: ``torch`` (eager), ``torch-fused``, ``onnx``, ``openvino``."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import torch

from sod100k.checkpoints.loading import load_model
from sod100k.infer.backends import Backend, OnnxBackend, OpenVinoBackend, TorchBackend

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "torch-fused", "onnx", "openvino")


def resolve_backend(name: str, device: str = "cpu") -> str:
    """``auto`` is OpenVINO on the CPU (the fastest there) when it is installed, else
    eager torch (CUDA, or a machine without OpenVINO); other names are returned as is."""
    if name != "auto":
        return name
    if device == "cpu" and importlib.util.find_spec("openvino") is not None:
        return "openvino"
    return "torch"


def make_backend(
    name: str,
    model: str | None,
    weights: str | None,
    device: str = "cpu",
    threads: int | None = None,
    streams: int = 1,
) -> Backend:
    """A backend called ``name`` for the given model/weights.

    * ``torch``: the eager model, as trained;
    * ``torch-fused``: its inference form (:mod:`sod100k.infer.fused`), same outputs;
    * ``onnx``: ONNX Runtime on CPU. ``weights`` may be an ``.onnx`` file (for instance an
      int8 one from ``sod100k export --int8``); any other weights are exported in memory;
    * ``openvino``: OpenVINO on CPU (the fastest there), from the same ONNX graph;
    * ``auto``: see :func:`resolve_backend`.

    ``threads`` sets torch's intra-op threads (torch backends, process-wide) or the ONNX
    Runtime / OpenVINO thread pool; ``streams`` is how many batches OpenVINO may run at
    once (the other backends ignore it).
    """
    name = resolve_backend(name, device)
    if name in ("torch", "torch-fused"):
        if threads:
            torch.set_num_threads(threads)
        net = load_model(model, weights, device=device)
        if name == "torch-fused":
            from sod100k.infer.fused import fuse_csnet
            from sod100k.models.csnet import CSNet

            if not isinstance(net, CSNet):
                raise ValueError(
                    f"the torch-fused backend is for CSNet models, not {net.arch}; "
                    "use --backend torch, onnx or openvino"
                )
            net = fuse_csnet(net)
        return TorchBackend(net, device, name=name)
    if name in ("onnx", "openvino"):
        if device != "cpu":
            raise ValueError(f"the {name} backend runs on the CPU only, not on {device!r}")
        arch = None  # unknown for a bare .onnx file: CSNet's quantisation
        if weights is not None and Path(weights).suffix == ".onnx":
            graph: Path | bytes = Path(weights)
        else:
            from sod100k.infer.onnx_export import export_bytes

            log.info("exporting %s to ONNX in memory", weights or model)
            net = load_model(model, weights)
            arch, graph = net.arch, export_bytes(net)
        backend = (
            OnnxBackend(graph, threads)
            if name == "onnx"
            else OpenVinoBackend(graph, threads, streams)
        )
        backend.arch = arch
        return backend
    raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
