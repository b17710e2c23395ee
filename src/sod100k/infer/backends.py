"""Inference backends: something that maps a normalised NCHW float32 batch to logits.

Only :class:`TorchBackend` needs torch, and it imports it when built: the ONNX Runtime
and OpenVINO backends start without it (about a CPU-second saved at every start).
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from sod100k.infer.graph_cache import openvino_cache_dir

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)


class Backend(Protocol):
    name: str

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """``(N, 3, H, W)`` float32 -> ``(N, H, W)`` float32 logits."""
        ...


def concurrency(backend: Backend, shape: tuple[int, ...]) -> int:
    """How many calls of ``backend`` on ``shape`` batches should run at once for the best
    throughput: what OpenVINO's throughput setting chose (:meth:`OpenVinoBackend.concurrency`),
    1 for the other backends."""
    choose = getattr(backend, "concurrency", None)
    return choose(shape) if choose is not None else 1


class TorchBackend:
    """Runs a torch module (eager or fused) on CPU or CUDA."""

    name = "torch"

    def __init__(
        self, model: nn.Module, device: str | torch.device = "cpu", name: str = "torch"
    ) -> None:
        import torch

        self._torch = torch
        self.name = name
        self.arch = getattr(model, "arch", None)  # picks the map quantisation
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device, non_blocking=True)
            return self.model(x)[:, 0].float().cpu().numpy()


class OnnxBackend:
    """Runs an ONNX graph (a ``.onnx`` file or its bytes) with ONNX Runtime on CPU.

    ``threads`` sets the intra-op thread pool (``None``: ONNX Runtime's default, one per
    core). Graph optimisations stop at the "extended" level: the NCHWc layout rewrite of
    the "all" level measured ~20% slower on CSNet's narrow convolutions.
    """

    #: The model's architecture when known (picks the map quantisation).
    arch: str | None = None

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


#: ``fp32`` (default, matches torch within 1e-4), ``bf16`` (OpenVINO's bf16 kernels, only
#: on CPUs with AVX512-BF16 or AMX) and ``int8`` (a graph quantised with NNCF, see
#: :mod:`sod100k.infer.int8`).
OPENVINO_PRECISIONS = ("fp32", "bf16", "int8")


class OpenVinoBackend:
    """Runs an ONNX graph (a ``.onnx`` file or its bytes) with OpenVINO on the CPU.

    OpenVINO fuses each conv with its PReLU and runs CSNet's narrow convs with JIT
    kernels; it is the fastest CPU backend measured (benchmarks/speed.py). Precision is
    kept at fp32 (on CPUs with AMX/AVX512-BF16, OpenVINO would otherwise pick bf16), so
    outputs match torch within 1e-4. The network is compiled once per input shape (the
    predictor feeds one shape, plus a smaller last batch); every calling thread gets
    its own infer request, so several threads can run batches side by side.

    ``streams`` is how many batches OpenVINO runs at once, sharing ``threads`` (all
    cores by default) between them: 1 (the default) gives one call all the threads, the
    lowest latency; ``None`` asks for OpenVINO's throughput setting, which on a small
    CPU runs one single-threaded stream per core: each call is slower, but no core waits
    for another inside a call, so more images go through per second
    (``benchmarks/throughput.py``). :meth:`concurrency` says how many calls to keep in
    flight. The logits are the same bits in every setting (``tests/test_throughput.py``).
    """

    #: The model's architecture when known (picks the map quantisation).
    arch: str | None = None

    name = "openvino"

    def __init__(
        self,
        model: str | Path | bytes | Any,
        threads: int | None = None,
        streams: int | None = 1,
        precision: str = "fp32",
    ) -> None:
        import openvino as ov

        if precision not in OPENVINO_PRECISIONS:
            raise ValueError(
                f"unknown precision {precision!r}; choose from {', '.join(OPENVINO_PRECISIONS)}"
            )
        self.core = ov.Core()
        self.precision = precision
        if precision == "bf16" and "BF16" not in self.core.get_property(
            "CPU", "OPTIMIZATION_CAPABILITIES"
        ):
            log.warning("this CPU has no bf16 support; OpenVINO runs the network in fp32")
        try:
            if isinstance(model, ov.Model):
                self.model = model
            elif isinstance(model, bytes):
                with tempfile.TemporaryDirectory(prefix="sod100k-ov-") as tmp:
                    path = Path(tmp) / "model.onnx"
                    path.write_bytes(model)
                    self.model = self.core.read_model(str(path))
            else:
                self.model = self.core.read_model(str(model))
        except Exception as e:  # OpenVINO raises RuntimeError with a long C++ trace
            where = "ONNX model" if isinstance(model, bytes) else str(model)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"{where}: cannot load the model with OpenVINO: {first}") from e
        self.config: dict[str, Any] = {
            # int8 graphs carry their own FakeQuantize ops; the rest of them stays f32.
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        }
        cache = openvino_cache_dir()
        if cache is not None:  # compiled networks kept on disk: a faster next start
            self.config["CACHE_DIR"] = cache
        if streams is None:
            self.config["PERFORMANCE_HINT"] = "THROUGHPUT"
        else:
            self.config["NUM_STREAMS"] = max(1, streams)
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = threads
        self._compiled: dict[tuple[int, ...], Any] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    def _compiled_for(self, shape: tuple[int, ...]) -> Any:
        """The network compiled for ``shape``, compiled and warmed up once, under the lock.

        The first ``InferRequest.infer`` of a process runs a one-time initialisation in
        OpenVINO's Python bindings that can deadlock against a second thread doing its own
        first inference at the same moment (one holds the GIL waiting for the
        initialisation, the other is inside it waiting for the GIL; 8 hangs in 20 fresh
        processes). One inference on zeros for every new shape, output read back as
        ``__call__`` does, while no other thread can reach that compiled network, rules
        this out by construction.
        """
        with self._lock:
            compiled = self._compiled.get(shape)
            if compiled is None:
                model = self.model.clone()
                model.reshape({0: list(shape)})
                compiled = self.core.compile_model(model, "CPU", self.config)
                warm = compiled.create_infer_request()
                warm.infer({0: np.zeros(shape, dtype=np.float32)})
                np.array(warm.get_output_tensor(0).data, copy=True)  # as __call__ does
                self._compiled[shape] = compiled
            return compiled

    def warm_up(self, shape: tuple[int, ...]) -> None:
        """Compile and run the network once for ``shape`` before concurrent use."""
        self._compiled_for(tuple(shape))

    def concurrency(self, shape: tuple[int, ...]) -> int:
        """Calls on ``shape`` batches to keep in flight: the streams OpenVINO compiled the
        network with (compiling it now if needed)."""
        compiled = self._compiled_for(tuple(shape))
        return max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        requests = self._local.__dict__.setdefault("requests", {})
        request = requests.get(batch.shape)
        if request is None:
            request = requests[batch.shape] = self._compiled_for(batch.shape).create_infer_request()
        request.infer({0: batch})
        return np.array(request.get_output_tensor(0).data[:, 0], copy=True)
