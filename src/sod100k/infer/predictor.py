"""Predicting saliency maps for whole images with any backend."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sod100k.data.images import to_rgb
from sod100k.infer.backends import Backend
from sod100k.infer.preprocess import postprocess, preprocess_batch

DEFAULT_SIZE = 224


class Predictor:
    """Image(s) in, uint8 saliency map(s) at the original size out.

    Follows the reference test protocol: every image is resized to ``size x size``, so
    images of different sizes batch together.
    """

    def __init__(self, backend: Backend, size: int = DEFAULT_SIZE) -> None:
        if size < 16:
            raise ValueError(f"input size must be at least 16, got {size}")
        self.backend = backend
        self.size = size

    def logits(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, size, size)`` logits for a list of ``H x W x 3`` uint8 images."""
        return self.backend(preprocess_batch(images, self.size))

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        logits = self.logits(images)
        return [
            postprocess(lg, im.shape[0], im.shape[1]) for lg, im in zip(logits, images, strict=True)
        ]

    def __call__(self, image) -> np.ndarray:
        """Saliency map of one image (a path, bytes, PIL image or array)."""
        return self.predict_batch([to_rgb(image)])[0]
