"""High-level Python API: one call from an image to a saliency map."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from PIL import Image

from sod100k.data.images import to_rgb
from sod100k.infer.cutout import alpha_matte, cutout_rgba, overlay_rgb, to_pil
from sod100k.infer.predictor import DEFAULT_SIZE, Predictor
from sod100k.infer.runtime import make_backend

DEFAULT_MODEL = "csnet-l-x2"
#: Folder names of the released checkpoints, per preset.
RELEASE_NAMES = {"csnet-l-x1": "csnet-L-x1", "csnet-l-x2": "csnet-L-x2"}


def weights_home() -> Path:
    """Where weights are looked up when none are named: ``$SOD100K_HOME/weights``
    (default ``~/.cache/sod100k/weights``). Nothing is ever downloaded."""
    home = os.environ.get("SOD100K_HOME") or Path.home() / ".cache" / "sod100k"
    return Path(home) / "weights"


def default_weights(model: str) -> Path:
    """Weights for ``model`` when the caller names none.

    ``$SOD100K_WEIGHTS`` wins; else ``weights_home()/<release name>`` (for instance
    ``~/.cache/sod100k/weights/csnet-L-x2`` holding the released ``.pth.tar`` + ``.bin``).
    """
    env = os.environ.get("SOD100K_WEIGHTS")
    if env:
        return Path(env)
    candidate = weights_home() / RELEASE_NAMES.get(model.lower(), model)
    if candidate.exists():
        return candidate
    raise FileNotFoundError(
        f"no weights given for {model} and none found at {candidate}; pass weights=PATH, "
        "set SOD100K_WEIGHTS, or copy the released checkpoint folder there"
    )


@functools.lru_cache(maxsize=8)
def get_predictor(
    model: str = DEFAULT_MODEL,
    weights: str | None = None,
    device: str = "cpu",
    size: int = DEFAULT_SIZE,
    backend: str = "auto",
    threads: int | None = None,
    precision: str = "fp32",
    calibration: str | None = None,
) -> Predictor:
    """A cached :class:`Predictor` (the model is loaded once per argument set).

    ``backend`` is ``auto`` (OpenVINO on CPU, torch on CUDA), ``torch``, ``torch-fused``,
    ``onnx`` (ONNX Runtime, CPU) or ``openvino`` (CPU); with the last two ``weights`` may
    be an ``.onnx`` file. ``threads`` sets the CPU threads it uses. ``precision``
    (``fp32``, ``bf16`` or ``int8``, OpenVINO only; ``int8`` calibrates on the images of
    the ``calibration`` folder) trades accuracy for speed: see docs/guide/backends.md.
    """
    path = weights if weights is not None else str(default_weights(model))
    net = make_backend(
        backend,
        model,
        path,
        device=device,
        threads=threads,
        precision=precision,
        calibration=calibration,
    )
    return Predictor(net, size)


def saliency(
    image,
    model: str = DEFAULT_MODEL,
    weights: str | Path | None = None,
    size: int = DEFAULT_SIZE,
    device: str = "cpu",
    backend: str = "auto",
    threads: int | None = None,
    precision: str = "fp32",
    calibration: str | Path | None = None,
) -> np.ndarray:
    """Saliency map of ``image`` (path, bytes, PIL image or array) as ``H x W`` uint8.

    The map has the image's original size and follows the reference test protocol;
    ``backend``, ``threads``, ``precision`` and ``calibration`` as in
    :func:`get_predictor`.
    """
    weights_arg = None if weights is None else str(weights)
    calib = None if calibration is None else str(calibration)
    predictor = get_predictor(model, weights_arg, device, size, backend, threads, precision, calib)
    return predictor(image)


predict = saliency


def _image_and_map(image, model, weights, size, device, backend, threads):
    rgb = to_rgb(image)
    return rgb, saliency(rgb, model, weights, size, device, backend, threads)


def remove_background(
    image,
    model: str = DEFAULT_MODEL,
    weights: str | Path | None = None,
    threshold: int | None = None,
    refine: bool = True,
    size: int = DEFAULT_SIZE,
    device: str = "cpu",
    backend: str = "auto",
    threads: int | None = None,
) -> Image.Image:
    """Cut the salient object out of ``image``: an RGBA PIL image of the original size.

    By default the alpha is soft (the saliency map, edge-refined with a guided filter,
    see :mod:`sod100k.infer.cutout`); ``threshold`` (0-255) makes it a hard 0/255 mask.
    """
    rgb, sal = _image_and_map(image, model, weights, size, device, backend, threads)
    return to_pil(cutout_rgba(rgb, alpha_matte(rgb, sal, threshold, refine)))


def overlay(
    image,
    model: str = DEFAULT_MODEL,
    weights: str | Path | None = None,
    size: int = DEFAULT_SIZE,
    device: str = "cpu",
    backend: str = "auto",
    threads: int | None = None,
) -> Image.Image:
    """``image`` tinted red where it is salient, as an RGB PIL image (for a quick look)."""
    rgb, sal = _image_and_map(image, model, weights, size, device, backend, threads)
    return to_pil(overlay_rgb(rgb, sal))
