"""Backend selection by name: ``torch`` (eager), ``torch-fused`` and ``onnx``."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from sod100k.checkpoints.loading import load_model
from sod100k.infer.backends import Backend, OnnxBackend, TorchBackend

log = logging.getLogger(__name__)

BACKENDS = ("torch", "torch-fused", "onnx")


def make_backend(
    name: str,
    model: str | None,
    weights: str | None,
    device: str = "cpu",
    threads: int | None = None,
) -> Backend:
    """A backend called ``name`` for the given model/weights.

    * ``torch``: the eager model, as trained;
    * ``torch-fused``: its inference form (:mod:`sod100k.infer.fused`), same outputs;
    * ``onnx``: ONNX Runtime on CPU. ``weights`` may be an ``.onnx`` file (for instance an
      int8 one from ``sod100k export --int8``); any other weights are exported in memory.

    ``threads`` sets torch's intra-op threads (torch backends, process-wide) or the ONNX
    Runtime session's thread pool.
    """
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
                    "use --backend torch or onnx"
                )

            net = fuse_csnet(net)
        return TorchBackend(net, device, name=name)
    if name == "onnx":
        if device != "cpu":
            raise ValueError(f"the onnx backend runs on the CPU only, not on {device!r}")
        if weights is not None and Path(weights).suffix == ".onnx":
            return OnnxBackend(Path(weights), threads)
        from sod100k.infer.onnx_export import export_bytes

        log.info("exporting %s to ONNX in memory", weights or model)
        return OnnxBackend(export_bytes(load_model(model, weights)), threads)
    raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
