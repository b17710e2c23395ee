"""Predicting saliency maps for whole images with any backend."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sod100k.data.images import to_rgb
from sod100k.infer.backends import Backend
from sod100k.infer.preprocess import postprocess, preprocess_batch, quantization_for

DEFAULT_SIZE = 224


class Predictor:
    """Image(s) in, uint8 saliency map(s) at the original size out.

    Follows the reference test protocol: every image is resized to ``size x size``, so
    images of different sizes batch together. Maps are quantised as the model's reference
    test script does (``quantization``; default: from the backend's ``arch``, see
    :func:`~sod100k.infer.preprocess.quantization_for`).
    """

    def __init__(
        self, backend: Backend, size: int = DEFAULT_SIZE, quantization: str | None = None
    ) -> None:
        if size < 16:
            raise ValueError(f"input size must be at least 16, got {size}")
        self.backend = backend
        self.size = size
        self.quantization = quantization or quantization_for(getattr(backend, "arch", None))

    def to_map(self, logits: np.ndarray, height: int, width: int) -> np.ndarray:
        """One image's logits -> its uint8 saliency map at ``height x width``."""
        return postprocess(logits, height, width, self.quantization)

    def logits(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, size, size)`` logits for a list of ``H x W x 3`` uint8 images."""
        return self.backend(preprocess_batch(images, self.size))

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        logits = self.logits(images)
        return [
            self.to_map(lg, im.shape[0], im.shape[1]) for lg, im in zip(logits, images, strict=True)
        ]

    def __call__(self, image) -> np.ndarray:
        """Saliency map of one image (a path, bytes, PIL image or array)."""
        return self.predict_batch([to_rgb(image)])[0]
