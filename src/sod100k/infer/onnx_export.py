"""ONNX export of CSNet (through its fused inference form) and int8 quantisation.

The exported graph takes ``image`` ``(batch, 3, height, width)`` float32 (normalised as
the reference protocol) and returns ``logits`` ``(batch, 1, height, width)``; batch and
spatial size are dynamic.
"""

from __future__ import annotations

import io
import logging
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from sod100k.infer.fused import fuse_csnet
from sod100k.models.csnet import CSNet
from sod100k.utils.files import atomic_write_bytes

log = logging.getLogger(__name__)

#: A recent opset that both the torch exporter and ONNX Runtime support fully.
OPSET = 18
INPUT_NAME = "image"
OUTPUT_NAME = "logits"


class ExportError(RuntimeError):
    """The exported graph is invalid or does not reproduce the torch model."""


#: Side of the sample image the exporter traces the model with. The graph has dynamic
#: height and width, so the sample's size does not change it (the exported bytes are the
#: same at 224; ``tests/test_onnx_export.py``); a small one makes the trace cheap.
TRACE_SIDE = 32


def export_bytes(
    model: nn.Module, opset: int = OPSET, sample_size: int = TRACE_SIDE, merge_convs: bool = False
) -> bytes:
    """Serialise ``model`` (a CSNet is fused first) to an ONNX model in memory.

    By default the fused CSNet keeps one conv per branch pair (``merge_convs=False``): no
    channel-split ops, which OpenVINO runs slowly (x2: 37.6 vs 15.0 ms/img), while ONNX
    Runtime is as fast either way (docs/benchmarks/inference.md, OpenVINO graph variants).
    The graph is checked with ``onnx.checker`` before it is returned.

    The trace runs the model once on a ``sample_size`` square, on one torch thread: the
    ~150 tiny convolutions of a trace cost seconds of spinning in a two-thread pool (most
    of ``sod100k predict``'s start-up on a busy 2-core machine) and ~0.5 s on one.
    """
    net = fuse_csnet(model, merge_convs=merge_convs) if isinstance(model, CSNet) else model
    net = net.cpu().eval()
    sample = torch.zeros(1, 3, sample_size, sample_size)
    dynamic = {0: "batch", 2: "height", 3: "width"}
    buf = io.BytesIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter (which warns that it is superseded) exports this
            # graph about 4x faster than the dynamo one, whose graph ran no faster in ONNX
            # Runtime; export time matters because the onnx backend exports at start-up.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                (sample,),
                buf,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic},
                opset_version=opset,
                dynamo=False,
            )
    finally:
        torch.set_num_threads(threads)
    data = buf.getvalue()
    try:
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"exported ONNX graph is invalid: {e}") from e
    return data


def export_onnx(model: nn.Module, path: str | Path, opset: int = OPSET) -> Path:
    """Export ``model`` to ``path`` (written atomically) and return the path."""
    path = Path(path)
    atomic_write_bytes(path, export_bytes(model, opset))
    return path


def parity_error(model: nn.Module, onnx_model: str | Path | bytes, inputs: np.ndarray) -> float:
    """Largest absolute logit difference between ``model`` and the ONNX graph on ``inputs``."""
    from sod100k.infer.backends import OnnxBackend

    with torch.inference_mode():
        expected = model.cpu().eval()(torch.from_numpy(inputs))[:, 0].numpy()
    got = OnnxBackend(onnx_model, threads=1)(inputs)
    return float(np.abs(expected - got).max())


def quantize_int8(
    src: str | Path, dst: str | Path, calibration: Sequence[np.ndarray] | None = None
) -> Path:
    """Write an int8 version of the ONNX model ``src`` to ``dst``.

    With ``calibration`` (a list of ``(N, 3, H, W)`` network inputs) the activations are
    quantised statically (QDQ, per-channel weights); without it only the weights are
    (dynamic quantisation, activations quantised on the fly).
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic
    from onnxruntime.quantization import quantize_static as ort_quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    dst = Path(dst)
    with tempfile.TemporaryDirectory(prefix="sod100k-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        out = Path(tmp) / "int8.onnx"
        if calibration is None:
            quantize_dynamic(str(prepared), str(out), weight_type=QuantType.QInt8)
        else:
            ort_quantize_static(
                str(prepared),
                str(out),
                _Calibration(calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
        atomic_write_bytes(dst, out.read_bytes())
    return dst


class _Calibration:
    """``onnxruntime.quantization.CalibrationDataReader`` over a list of input batches."""

    def __init__(self, batches: Sequence[np.ndarray]) -> None:
        self._batches = list(batches)
        self._it: Iterator[np.ndarray] = iter(self._batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {INPUT_NAME: batch}

    def rewind(self) -> None:
        self._it = iter(self._batches)
