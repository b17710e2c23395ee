"""The reference test protocol: image -> network input, logits -> uint8 saliency map.

Read RGB as float in [0, 1]; resize to ``size x size`` (bilinear, half-pixel centres, no
anti-aliasing); normalise with the ImageNet mean/std. Back: sigmoid, bilinear resize to
the original size, x255 to uint8. How x255 becomes uint8 depends on the model, as in each
reference test script: CSNet's ``test.py`` truncates (``(map * 255).astype(np.uint8)``),
the CSF + Res2Net solver writes ``255 * map`` with ``cv2.imwrite``, which rounds to the
nearest level (halves to even). :func:`quantization_for` picks the model's way.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_INV_255 = np.float32(1.0 / 255.0)
_MEAN_PLANES = MEAN[:, None, None]
_STD_PLANES = STD[:, None, None]
#: How each architecture's reference test script turns ``map * 255`` into uint8.
QUANTIZATION = {"csnet": "truncate", "csf-res2net50": "round"}
QUANTIZATION_MODES = ("truncate", "round")


def _resize(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    if arr.shape[:2] == (height, width):
        return arr
    return cv2.resize(arr, (width, height), interpolation=cv2.INTER_LINEAR)


def preprocess(rgb: np.ndarray, size: int | tuple[int, int] = 224) -> np.ndarray:
    """``H x W x 3`` uint8 RGB -> ``3 x size x size`` float32, normalised."""
    h, w = (size, size) if isinstance(size, int) else size
    # One pass to float32 and one array: the same numbers as ``astype`` then ``* (1/255)``.
    x = _resize(np.multiply(rgb, _INV_255, dtype=np.float32), h, w)
    # Planes first, then each plane's own mean and std: the same two float32 operations on
    # every element as on the interleaved array, in long runs instead of runs of 3 (0.44
    # -> ~0.1 ms at 224 x 224).
    x = np.ascontiguousarray(x.transpose(2, 0, 1))
    x -= _MEAN_PLANES
    x /= _STD_PLANES
    return x


def preprocess_batch(images: Sequence[np.ndarray], size: int | tuple[int, int] = 224):
    return np.stack([preprocess(im, size) for im in images])


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * logits) + 1.0)  # overflow-free logistic


def quantization_for(arch: str | None) -> str:
    """The reference's map quantisation for an architecture (``truncate`` if unknown)."""
    return QUANTIZATION.get(arch or "", "truncate")


def postprocess(
    logits: np.ndarray, height: int, width: int, quantization: str = "truncate"
) -> np.ndarray:
    """``h x w`` logits -> ``height x width`` uint8 saliency map.

    Args:
        logits: the network's output for one image.
        height: the original image height.
        width: the original image width.
        quantization: ``"truncate"`` (CSNet's test.py) or ``"round"`` (the CSF solver's
            ``cv2.imwrite`` of ``255 * map`` in float32: nearest level, halves to even).

    Raises:
        ValueError: an unknown quantization.
    """
    if quantization not in QUANTIZATION_MODES:
        raise ValueError(f"unknown quantization {quantization!r}; use {QUANTIZATION_MODES}")
    # One full-size float32 plane, scaled in place: a 40 MP map needs 160 MB, not 3 copies.
    prob = _resize(sigmoid(logits.astype(np.float32)), height, width)
    np.clip(prob, 0.0, 1.0, out=prob)
    prob *= np.float32(255.0)
    if quantization == "round":
        np.rint(prob, out=prob)
    return prob.astype(np.uint8)
