"""The reference test protocol for big images, in bounded memory and with the same numbers.

:func:`~sod100k.infer.preprocess.preprocess` converts the whole image to float32 before
resizing it (16 bytes a pixel: 640 MB for a 40 MP image) and
:func:`~sod100k.infer.preprocess.postprocess` makes three float32 copies of the map at
full size. The functions here give bit-identical results from a fraction of that:

* :func:`network_input` resizes in two separable OpenCV passes, horizontal on strips of
  rows then vertical. With the other axis' size unchanged, OpenCV's bilinear weights on
  that axis are (1, 0), so each pass computes exactly what the one-shot resize computes
  for its axis (checked in ``tests/test_bounded.py``).

The map side needs nothing of its own: :func:`~sod100k.infer.preprocess.postprocess`
upsamples once and scales and quantises in place.
"""

from __future__ import annotations

import cv2
import numpy as np

from sod100k.infer.preprocess import MEAN, STD, preprocess

#: Images up to this many pixels take the one-shot path (its float copy is <= 64 MB).
ONE_SHOT_PIXELS = 4_000_000
#: Rows converted to float32 at a time by the horizontal pass.
STRIP_ROWS = 512


def network_input(rgb: np.ndarray, size: int) -> np.ndarray:
    """``H x W x 3`` uint8 -> ``3 x size x size`` float32, equal to ``preprocess(rgb, size)``."""
    h, w = rgb.shape[:2]
    if h * w <= ONE_SHOT_PIXELS or h < size or w < size:
        return preprocess(rgb, size)
    narrow = np.empty((h, size, 3), np.float32)
    for y0 in range(0, h, STRIP_ROWS):
        strip = rgb[y0 : y0 + STRIP_ROWS].astype(np.float32) * (1.0 / 255.0)
        narrow[y0 : y0 + strip.shape[0]] = cv2.resize(
            strip, (size, strip.shape[0]), interpolation=cv2.INTER_LINEAR
        )
    x = cv2.resize(narrow, (size, size), interpolation=cv2.INTER_LINEAR)
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))
