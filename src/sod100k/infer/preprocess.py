"""The reference test protocol: image -> network input, logits -> uint8 saliency map.

Read RGB as float in [0, 1]; resize to ``size x size`` (bilinear, half-pixel centres, no
anti-aliasing); normalise with the ImageNet mean/std. Back: sigmoid, bilinear resize to
the original size, x255 and truncation to uint8 (the reference casts with ``astype``).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _resize(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    if arr.shape[:2] == (height, width):
        return arr
    return cv2.resize(arr, (width, height), interpolation=cv2.INTER_LINEAR)


def preprocess(rgb: np.ndarray, size: int | tuple[int, int] = 224) -> np.ndarray:
    """``H x W x 3`` uint8 RGB -> ``3 x size x size`` float32, normalised."""
    h, w = (size, size) if isinstance(size, int) else size
    x = _resize(rgb.astype(np.float32) * (1.0 / 255.0), h, w)
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def preprocess_batch(images: Sequence[np.ndarray], size: int | tuple[int, int] = 224):
    return np.stack([preprocess(im, size) for im in images])


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * logits) + 1.0)  # overflow-free logistic


def postprocess(logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """``h x w`` logits -> ``height x width`` uint8 saliency map."""
    prob = sigmoid(logits.astype(np.float32))
    prob = _resize(prob, height, width)
    return (np.clip(prob, 0.0, 1.0) * 255.0).astype(np.uint8)
