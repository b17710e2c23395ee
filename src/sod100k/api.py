"""High-level Python API: one call from an image to a saliency map or a cut-out.

The functions load the model once per argument set and cache it, so calling them in a
loop is cheap after the first call. They are re-exported at the package top level
(``sod100k.saliency`` etc.).
"""

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
from sod100k.utils.files import sod100k_home

#: Preset used when no model is named.
DEFAULT_MODEL = "csnet-l-x2"
#: Folder names of the released checkpoints, per preset.
RELEASE_NAMES = {"csnet-l-x1": "csnet-L-x1", "csnet-l-x2": "csnet-L-x2"}


class WeightsNotFoundError(FileNotFoundError):
    """No weights were named and none are at the default place.

    Attributes:
        model: The preset whose weights were looked for.
        place: Where they were looked for.
    """

    def __init__(self, model: str, place: Path) -> None:
        self.model, self.place = model, place
        super().__init__(
            f"no weights given for {model} and none found at {place}; pass weights=PATH, "
            f"set the SOD100K_WEIGHTS environment variable, or copy the released "
            f"checkpoint folder ({place.name}) there"
        )


def weights_home() -> Path:
    """Folder where weights are looked up when none are named.

    Nothing is ever downloaded into it; copy the released checkpoint folders there.

    Returns:
        ``$SOD100K_HOME/weights``, or ``~/.cache/sod100k/weights`` when
        ``SOD100K_HOME`` is unset.
    """
    return sod100k_home() / "weights"


def default_weights(model: str) -> Path:
    """Weights for ``model`` when the caller names none.

    Args:
        model: A preset name such as ``"csnet-l-x2"``.

    Returns:
        ``$SOD100K_WEIGHTS`` when it is set; else ``weights_home()/<release name>``, for
        instance ``~/.cache/sod100k/weights/csnet-L-x2`` holding the released
        ``.pth.tar`` + ``.bin``.

    Raises:
        WeightsNotFoundError: Neither is there; the message says where to put them (a
            ``FileNotFoundError``).
    """
    env = os.environ.get("SOD100K_WEIGHTS")
    if env:
        return Path(env)
    candidate = weights_home() / RELEASE_NAMES.get(model.lower(), model)
    if candidate.exists():
        return candidate
    raise WeightsNotFoundError(model, candidate)


@functools.lru_cache(maxsize=8)
def get_predictor(
    model: str | None = None,
    weights: str | None = None,
    device: str = "cpu",
    size: int = DEFAULT_SIZE,
    backend: str = "auto",
    threads: int | None = None,
    precision: str = "fp32",
    calibration: str | None = None,
) -> Predictor:
    """A cached predictor: the model is loaded once per argument set.

    Args:
        model: Preset name (``csnet-l-x1``, ``csnet-l-x2``, ``csf-res2net50``). With
            ``weights`` it may be left out (the checkpoint says what it is); given, the
            checkpoint must be that model (or a pruned form of it). Without either:
            ``csnet-l-x2``.
        weights: A released checkpoint folder (``.pth.tar`` + ``.bin``), one of our
            checkpoint files, a training run folder, or (``onnx``/``openvino`` backends)
            an ``.onnx`` file. ``None``: [`default_weights`][sod100k.api.default_weights]
            of ``model``.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        size: Side of the square network input (the reference protocol uses 224).
        backend: ``"auto"`` (OpenVINO on CPU, torch on CUDA), ``"torch"``,
            ``"torch-fused"``, ``"onnx"`` (ONNX Runtime, CPU) or ``"openvino"`` (CPU).
        threads: CPU threads the backend may use; ``None`` leaves the runtime's default.
        precision: ``"fp32"`` (default, the same maps as torch) or, with OpenVINO,
            ``"bf16"`` (CPUs with bf16 arithmetic) or ``"int8"`` (NNCF post-training
            quantisation on the images of ``calibration``; below the accuracy bar on
            ECSSD, see the backends guide). Trades accuracy for speed.
        calibration: Folder of training images for ``precision="int8"``.

    Returns:
        A [`Predictor`][sod100k.infer.predictor.Predictor]: call it with an image to get
        its ``H x W`` uint8 saliency map.

    Raises:
        FileNotFoundError: No weights were given and none are at the default place.
        sod100k.checkpoints.CheckpointError: The weights cannot be read or do not fit
            ``model``.
        ValueError: Unknown model, backend or precision, or a precision the backend
            lacks.
    """
    if weights is None:
        model = model or DEFAULT_MODEL
        weights = str(default_weights(model))
    net = make_backend(
        backend,
        model,
        weights,
        device=device,
        threads=threads,
        precision=precision,
        calibration=calibration,
    )
    return Predictor(net, size)


def saliency(
    image,
    model: str | None = None,
    weights: str | Path | None = None,
    size: int = DEFAULT_SIZE,
    device: str = "cpu",
    backend: str = "auto",
    threads: int | None = None,
    precision: str = "fp32",
    calibration: str | Path | None = None,
) -> np.ndarray:
    """Saliency map of an image, at the image's own size.

    Follows the reference test protocol (resize to ``size`` x ``size``, ImageNet
    normalisation, sigmoid, resize back, x255 to uint8: truncated for CSNet, rounded for
    CSF, as each reference test script). The model is loaded once per argument set and
    cached. ``sod100k.predict`` is the same function.

    Args:
        image: A path, encoded image bytes, a PIL image, or an ``H x W (x 1/3/4)``
            uint8/uint16/float array. EXIF orientation is honoured.
        model: Preset name; ``None``: what ``weights`` holds, or ``csnet-l-x2``.
        weights: Checkpoint folder or file; ``None`` looks in ``$SOD100K_WEIGHTS``, then
            ``~/.cache/sod100k/weights/<release name>``.
        size: Side of the square network input.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        backend: Inference backend, as in
            [`get_predictor`][sod100k.api.get_predictor].
        threads: CPU threads for the backend.
        precision: As in [`get_predictor`][sod100k.api.get_predictor].
        calibration: As in [`get_predictor`][sod100k.api.get_predictor].

    Returns:
        ``H x W`` uint8 array, 255 = salient.

    Raises:
        sod100k.data.images.ImageError: ``image`` cannot be decoded (the message names it).
        FileNotFoundError: No weights were given and none are at the default place.
        sod100k.checkpoints.CheckpointError: The weights cannot be read or do not fit.
    """
    weights_arg = None if weights is None else str(weights)
    calib = None if calibration is None else str(calibration)
    predictor = get_predictor(model, weights_arg, device, size, backend, threads, precision, calib)
    return predictor(image)


#: Another name for [`saliency`][sod100k.api.saliency].
predict = saliency


def _image_and_map(image, model, weights, size, device, backend, threads):
    rgb = to_rgb(image)
    return rgb, saliency(rgb, model, weights, size, device, backend, threads)


def remove_background(
    image,
    model: str | None = None,
    weights: str | Path | None = None,
    threshold: int | None = None,
    refine: bool = True,
    size: int = DEFAULT_SIZE,
    device: str = "cpu",
    backend: str = "auto",
    threads: int | None = None,
) -> Image.Image:
    """Cut the salient object out of an image.

    By default the alpha is soft: the saliency map, edge-refined with a guided filter
    (see [`sod100k.infer.cutout`][sod100k.infer.cutout]) so that it follows the colour
    edges of the full-size image.

    Args:
        image: A path, encoded bytes, a PIL image or an array, as for
            [`saliency`][sod100k.api.saliency].
        model: Preset name; ``None``: what ``weights`` holds, or ``csnet-l-x2``.
        weights: Checkpoint folder or file (``None``: the default place).
        threshold: 0-255; when given, the alpha is hard: 255 where the (refined) map is
            ``>= threshold``, else 0.
        refine: Edge-refine the map with the guided filter before using it as alpha.
        size: Side of the square network input.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        backend: Inference backend, as in [`get_predictor`][sod100k.api.get_predictor].
        threads: CPU threads for the backend.

    Returns:
        RGBA PIL image of the (EXIF-rotated) image's size.

    Raises:
        sod100k.data.images.ImageError: ``image`` cannot be decoded.
        FileNotFoundError: No weights were given and none are at the default place.
        sod100k.checkpoints.CheckpointError: The weights cannot be read or do not fit.
    """
    rgb, sal = _image_and_map(image, model, weights, size, device, backend, threads)
    return to_pil(cutout_rgba(rgb, alpha_matte(rgb, sal, threshold, refine)))


def overlay(
    image,
    model: str | None = None,
    weights: str | Path | None = None,
    size: int = DEFAULT_SIZE,
    device: str = "cpu",
    backend: str = "auto",
    threads: int | None = None,
) -> Image.Image:
    """The image tinted red where it is salient, for a quick look at a prediction.

    Args:
        image: A path, encoded bytes, a PIL image or an array, as for
            [`saliency`][sod100k.api.saliency].
        model: Preset name; ``None``: what ``weights`` holds, or ``csnet-l-x2``.
        weights: Checkpoint folder or file (``None``: the default place).
        size: Side of the square network input.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        backend: Inference backend, as in [`get_predictor`][sod100k.api.get_predictor].
        threads: CPU threads for the backend.

    Returns:
        RGB PIL image of the image's size.

    Raises:
        sod100k.data.images.ImageError: ``image`` cannot be decoded.
        FileNotFoundError: No weights were given and none are at the default place.
        sod100k.checkpoints.CheckpointError: The weights cannot be read or do not fit.
    """
    rgb, sal = _image_and_map(image, model, weights, size, device, backend, threads)
    return to_pil(overlay_rgb(rgb, sal))
