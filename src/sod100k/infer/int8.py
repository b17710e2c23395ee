"""Post-training int8 quantisation of a CSNet graph for OpenVINO, with NNCF.

NNCF inserts FakeQuantize ops (per-channel symmetric weights, per-tensor activations)
whose ranges it calibrates on real network inputs; OpenVINO then runs the convolutions
with int8 kernels. Calibration images must be training images (DUTS-TR), never the images
the model is scored on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def calibration_batches(folder: str | Path, count: int, size: int = 224) -> list[np.ndarray]:
    """Up to ``count`` images of ``folder`` as ``(1, 3, size, size)`` network inputs.

    Raises:
        ValueError: ``folder`` holds no readable image.
    """
    from sod100k.data.images import list_images, load_rgb
    from sod100k.infer.preprocess import preprocess

    batches = []
    for path in list_images(folder)[:count]:
        try:
            batches.append(preprocess(load_rgb(path), size)[None])
        except ValueError as e:
            log.warning("calibration: skipping %s", e)
    if not batches:
        raise ValueError(f"{folder}: no readable calibration image")
    return batches


def quantize_openvino(
    model: Any,
    calibration: Sequence[np.ndarray],
    ignored_types: Sequence[str] = (),
    ignored_patterns: Sequence[str] = (),
    fast_bias_correction: bool = True,
) -> Any:
    """An int8 copy of the OpenVINO model ``model`` (an ``openvino.Model``).

    Args:
        model: the fp32 graph (e.g. ``openvino.Core().read_model`` of the exported ONNX).
        calibration: network inputs ``(1, 3, H, W)`` float32 to calibrate on.
        ignored_types: OpenVINO op types to keep in fp32 (e.g. ``("GroupConvolution",)``).
        ignored_patterns: regular expressions of op names to keep in fp32
            (e.g. ``(".*/head/.*",)``).
        fast_bias_correction: NNCF's quick bias correction (else the slower, finer one).

    Returns:
        The quantised ``openvino.Model``.

    Raises:
        ImportError: NNCF is not installed (``pip install 'sod100k[int8]'``).
    """
    try:
        import nncf
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("int8 needs NNCF: pip install 'sod100k[int8]'") from e

    ignored = None
    if ignored_types or ignored_patterns:
        ignored = nncf.IgnoredScope(
            types=list(ignored_types), patterns=list(ignored_patterns), validate=False
        )
    return nncf.quantize(
        model,
        nncf.Dataset(list(calibration)),
        preset=nncf.QuantizationPreset.PERFORMANCE,
        target_device=nncf.TargetDevice.CPU,
        subset_size=len(calibration),
        fast_bias_correction=fast_bias_correction,
        ignored_scope=ignored,
    )
