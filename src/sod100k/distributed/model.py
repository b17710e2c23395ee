"""The model an actor or replica builds, prepared once on the driver.

For the ONNX Runtime and OpenVINO backends (``auto`` on a CPU) the driver loads the
weights and exports the ONNX graph once; the spec carries the graph (~0.7 MB for CSNet),
so workers need no weights, no torch model and no export of their own: they only compile
the graph. The torch backends carry the weights' path instead, which must then name the
same files on every node.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from sod100k.infer.backends import Backend, OnnxBackend, OpenVinoBackend
from sod100k.infer.predictor import DEFAULT_SIZE, Predictor
from sod100k.infer.runtime import make_backend, resolve_backend, resolve_precision


@dataclass(frozen=True)
class ModelSpec:
    """Everything a worker needs to build the same :class:`Predictor` as the driver would.

    Build one with :meth:`load`; it pickles small, so it can go into
    ``fn_constructor_kwargs`` or a Serve deployment's arguments.
    """

    #: The resolved backend name (never ``auto``).
    backend: str
    model: str | None
    weights: str | None
    size: int = DEFAULT_SIZE
    precision: str = "fp32"
    device: str = "cpu"
    #: The exported ONNX graph (``onnx``/``openvino`` backends).
    graph: bytes | None = field(default=None, repr=False)
    #: The architecture (picks the map quantisation); ``None`` for a bare ``.onnx`` file.
    arch: str | None = None

    @classmethod
    def load(
        cls,
        model: str | None = None,
        weights: str | None = None,
        backend: str = "auto",
        size: int = DEFAULT_SIZE,
        precision: str = "fp32",
        device: str = "cpu",
    ) -> ModelSpec:
        """Resolve the weights and, for ``onnx``/``openvino``, export the graph here.

        Args:
            model: preset name; default ``csnet-l-x2`` when no weights are given.
            weights: weights as :func:`sod100k.api.get_predictor` takes them (default:
                :func:`sod100k.api.default_weights`).
            backend: ``auto``, ``torch``, ``torch-fused``, ``onnx`` or ``openvino``.
            size: network input side.
            precision: ``fp32``, ``bf16`` (OpenVINO) or ``auto`` (bf16 on the workers
                whose CPU has it, see :func:`~sod100k.infer.runtime.resolve_precision`).
            device: ``cpu`` (or ``cuda`` for the torch backends).

        Raises:
            FileNotFoundError: no weights given and none at the default place.
            sod100k.checkpoints.CheckpointError: the weights cannot be read.
            ValueError: a backend or precision that cannot run these weights.
        """
        from sod100k.api import DEFAULT_MODEL, default_weights

        model = model or (None if weights else DEFAULT_MODEL)
        # absolute: workers do not share the driver's working folder
        weights = os.path.abspath(weights) if weights else str(default_weights(model))
        name = resolve_backend(backend, device)
        if precision not in ("fp32", "bf16", "auto") or (
            precision == "bf16" and name != "openvino"
        ):
            # make_backend refuses these before it loads anything: let it word the error
            make_backend(name, model, weights, device, 1, 1, precision)
        if size < 16:
            raise ValueError(f"input size must be at least 16, got {size}")
        from sod100k.checkpoints.loading import load_model

        if name not in ("onnx", "openvino"):
            load_model(model, weights)  # unusable weights fail here, not in every worker
            return cls(name, model, weights, size, precision, device)
        if device != "cpu":
            raise ValueError(f"the {name} backend runs on the CPU only, not on {device!r}")
        if weights.endswith(".onnx"):
            with open(weights, "rb") as f:
                return cls(name, model, weights, size, precision, device, f.read(), None)
        from sod100k.infer.onnx_export import export_bytes

        net = load_model(model, weights)
        return cls(name, model, weights, size, precision, device, export_bytes(net), net.arch)

    def onnx_graph(self) -> bytes:
        """The model's fp32 ONNX graph: the one carried, else exported from the weights."""
        if self.graph is not None:
            return self.graph
        from sod100k.checkpoints.loading import load_model
        from sod100k.infer.onnx_export import export_bytes

        return export_bytes(load_model(self.model, self.weights))

    def backend_for(self, threads: int | None, streams: int = 1) -> Backend:
        """Build the backend: ``threads`` as :func:`make_backend` takes them (OpenVINO:
        the total its streams share; the others: per call; ``None``: the runtime's
        default), ``streams`` calls at once (OpenVINO; ``None``: its throughput setting)."""
        if self.graph is None:
            return make_backend(
                self.backend,
                self.model,
                self.weights,
                self.device,
                threads,
                streams,
                self.precision,
            )
        if self.backend == "onnx":
            backend: Backend = OnnxBackend(self.graph, threads)
        else:
            precision = resolve_precision(self.precision, self.backend)  # this worker's CPU
            backend = OpenVinoBackend(self.graph, threads, streams, precision)
        backend.arch = self.arch
        return backend

    def predictor(self, threads: int | None, streams: int | None = 1) -> Predictor:
        """The :class:`Predictor` for this spec, its backend on ``threads`` threads and
        ``streams`` streams (:meth:`backend_for`)."""
        return Predictor(self.backend_for(threads, streams), self.size)
