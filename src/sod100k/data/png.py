"""PNG encoding with one set of settings for every writer (command line, Ray, server).

zlib level 1 with its run-length strategy and one fixed row filter instead of libpng's
try-every-filter heuristic. On the ECSSD outputs (Xeon, one thread) a grey map encodes in
0.58 instead of 1.11 ms and comes out 14 % smaller ("up" filter); an RGBA cut-out in 5.7
instead of 8.3 ms and 1 % larger (Paeth). The pixels are the same whatever the settings.
"""

from __future__ import annotations

import cv2
import numpy as np

_GREY = [
    cv2.IMWRITE_PNG_COMPRESSION, 1,
    cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
    cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP,
]  # fmt: skip
_COLOUR = [
    cv2.IMWRITE_PNG_COMPRESSION, 1,
    cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
    cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH,
]  # fmt: skip


def encode_png_bgr(image: np.ndarray) -> bytes:
    """PNG bytes of an ``H x W`` grey, ``H x W x 3`` BGR or ``H x W x 4`` BGRA uint8 array.

    Raises:
        OSError: OpenCV could not encode it.
    """
    ok, buf = cv2.imencode(".png", image, _GREY if image.ndim == 2 else _COLOUR)
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()
