"""Backend selection by name: ``torch`` (eager), ``torch-fused``, ``onnx``, ``openvino``.

torch is imported only where a network is built (the torch backends, or an ONNX export
that the graph cache does not hold yet): ``onnx`` and ``openvino`` with a cached graph
start without it.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from sod100k.checkpoints.locate import resolve_weights
from sod100k.infer.backends import Backend, OnnxBackend, OpenVinoBackend, TorchBackend

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "torch-fused", "onnx", "openvino")
#: Precisions :func:`make_backend` runs. ``fp32`` is the default and matches torch
#: within 1e-4; ``int8`` is for experiments (benchmarks/precision.py): it missed the
#: accuracy bar on ECSSD (max F -0.0085, MAE +0.0038 for x2), so the CLI does not offer it.
PRECISIONS = ("fp32", "bf16", "int8", "auto")
#: Precisions the command line offers (see docs/guide/backends.md).
CLI_PRECISIONS = ("fp32", "bf16", "auto")
#: CPU flags (``/proc/cpuinfo``) with which OpenVINO runs bf16 natively (AMX tiles or
#: AVX-512 BF16); ``auto`` picks bf16 only there, where it was measured 1.2-1.3x faster.
BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
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


def serving_threads(backend: str, streams: int) -> int:
    """The ``threads`` to build ``backend`` with so that ``streams`` calls run at once,
    each on one thread of its own (the server: its request threads give the parallelism).

    OpenVINO's thread count is the total that its streams share, so it needs one per
    stream (a total of 1 would compile a single stream, and concurrent calls would queue
    inside the network); OpenVINO caps both at the CPU's cores. ONNX Runtime and torch
    give each call the threads, so one.

    Args:
        backend: the resolved backend name (``openvino``, ``onnx``, ``torch``, ...).
        streams: calls to run at once.
    """
    return max(1, streams) if backend == "openvino" else 1


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them in ``/proc/cpuinfo`` (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def resolve_precision(precision: str, backend: str, flags: frozenset[str] | None = None) -> str:
    """``auto`` is ``bf16`` for the OpenVINO backend on a CPU with bf16 arithmetic
    (:data:`BF16_FLAGS`) and ``fp32`` everywhere else; other precisions are returned as is.

    Args:
        precision: ``fp32``, ``bf16``, ``int8`` or ``auto``.
        backend: the resolved backend name (``openvino``, ``onnx``, ...).
        flags: the CPU flags (default: this machine's, :func:`cpu_flags`).
    """
    if precision != "auto":
        return precision
    if backend != "openvino":
        return "fp32"
    flags = cpu_flags() if flags is None else flags
    return "bf16" if flags & BF16_FLAGS else "fp32"


def exported_graph(model: str | None, weights: str | None) -> tuple[str | None, bytes]:
    """``(arch, ONNX bytes)`` of ``model``/``weights``: from the graph cache when this
    checkpoint was exported before (:mod:`sod100k.infer.graph_cache`), else exported now
    and cached.

    Raises:
        CheckpointError: the weights cannot be read or do not fit ``model``.
    """
    from sod100k.infer import graph_cache

    key = None
    if weights is not None and graph_cache.cache_root() is not None:
        _, first, second = resolve_weights(weights)
        key = graph_cache.graph_key(model, [first] if second is None else [first, second])
        cached = graph_cache.read_graph(key)
        if cached is not None:
            log.info("ONNX graph of %s from the cache", weights)
            return cached
    from sod100k.checkpoints.loading import load_model
    from sod100k.infer.onnx_export import export_bytes

    log.info("exporting %s to ONNX in memory", weights or model)
    net = load_model(model, weights)
    graph = export_bytes(net)
    if key is not None:
        graph_cache.write_graph(key, net.arch, graph)
    return net.arch, graph


def make_backend(
    name: str,
    model: str | None,
    weights: str | None,
    device: str = "cpu",
    threads: int | None = None,
    streams: int | None = 1,
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
    once (``None``: its throughput setting; see :class:`OpenVinoBackend`; the other
    backends ignore it). ``precision`` other than ``fp32`` needs the OpenVINO backend:
    ``bf16`` (CPUs with bf16 support; others run fp32) or ``int8`` (quantised at start-up
    with NNCF on the images of the ``calibration`` folder); ``auto`` is ``bf16`` where the
    CPU has AMX or AVX-512 BF16 and ``fp32`` elsewhere or with another backend
    (:func:`resolve_precision`), so its maps depend on the machine.

    Raises:
        ValueError: unknown backend or precision, or a precision the backend lacks.
    """
    name = resolve_backend(name, device)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "auto":
        precision = resolve_precision(precision, name)
        log.info("--precision auto: %s on this CPU with the %s backend", precision, name)
    if precision != "fp32" and name != "openvino":
        raise ValueError(f"--precision {precision} needs the openvino backend, not {name}")
    if precision == "int8" and calibration is None:
        raise ValueError("--precision int8 needs --calibration DIR (training images)")
    if name in ("torch", "torch-fused"):
        import torch

        from sod100k.checkpoints.loading import load_model

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
            arch, graph = exported_graph(model, weights)
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
