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
#: Precisions :func:`make_backend` runs. ``fp32`` is the default and matches torch
#: within 1e-4; ``int8`` is for experiments (benchmarks/precision.py): it missed the
#: accuracy bar on ECSSD (max F -0.0085, MAE +0.0038 for x2), so the CLI does not offer it.
PRECISIONS = ("fp32", "bf16", "int8")
#: Precisions the command line offers (see docs/guide/backends.md).
CLI_PRECISIONS = ("fp32", "bf16")
#: Calibration images NNCF reads for ``int8`` (the accuracy table used this many).
INT8_CALIBRATION_COUNT = 100


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
    precision: str = "fp32",
    calibration: str | Path | None = None,
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
    once (the other backends ignore it). ``precision`` other than ``fp32`` needs the
    OpenVINO backend: ``bf16`` (CPUs with bf16 support; others run fp32) or ``int8``
    (quantised at start-up with NNCF on the images of the ``calibration`` folder).

    Raises:
        ValueError: unknown backend or precision, or a precision the backend lacks.
    """
    name = resolve_backend(name, device)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision != "fp32" and name != "openvino":
        raise ValueError(f"--precision {precision} needs the openvino backend, not {name}")
    if precision == "int8" and calibration is None:
        raise ValueError("--precision int8 needs --calibration DIR (training images)")
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
        if name == "onnx":
            backend: Backend = OnnxBackend(graph, threads)
        elif precision != "int8":
            backend = OpenVinoBackend(graph, threads, streams, precision)
        else:
            from sod100k.infer.int8 import calibration_batches, quantize_openvino

            fp32 = OpenVinoBackend(graph).model
            log.info("quantising to int8 on the images of %s", calibration)
            int8 = quantize_openvino(fp32, calibration_batches(calibration, INT8_CALIBRATION_COUNT))
            backend = OpenVinoBackend(int8, threads, streams, "int8")
        backend.arch = arch
        return backend
    raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
