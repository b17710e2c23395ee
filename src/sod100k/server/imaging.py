"""The server's image work: header checks, decoding, and the PNG/JPEG answers.

Everything here runs in worker threads and keeps memory proportional to the image: the
network input and the map go through :mod:`sod100k.infer.bounded` (no full-size float
copy of the image), the cut-out alpha through the fast guided filter above 2 MP, and the
cut-out PNG is encoded from one BGRA buffer. See ``docs/guide/serving.md`` for the
numbers.
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from sod100k.data.images import ImageError, load_rgb, pillow_guard_at_limit, to_rgb
from sod100k.data.png import encode_png_bgr
from sod100k.infer.bounded import network_input
from sod100k.infer.cutout import alpha_matte
from sod100k.infer.predictor import Predictor


class RequestError(Exception):
    """A request the service refuses: an HTTP status and a one-line message.

    Args:
        status: The HTTP status code.
        message: Names the uploaded file and the problem.
        headers: Extra response headers (``Retry-After`` on 503).
    """

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def probe(data: bytes, name: str, max_pixels: int) -> tuple[int, int]:
    """``(width, height)`` from the image header alone, before any pixel is decoded.

    Raises:
        RequestError: 400 for an empty or corrupt file, 415 for a file that is not an
            image, 413 for an image over ``max_pixels`` or a decompression bomb.
    """
    if not data:
        raise RequestError(400, f"{name}: empty file (0 bytes)")
    pillow_guard_at_limit()  # the decoder's limit, at least max_pixels (see serve)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
    except UnidentifiedImageError as e:
        raise RequestError(415, f"{name}: not an image file (unrecognised format)") from e
    except Image.DecompressionBombError as e:
        raise RequestError(413, f"{name}: refused as a decompression bomb ({e})") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise RequestError(400, f"{name}: corrupt or truncated image ({e})") from e
    if w * h > max_pixels:
        raise RequestError(413, f"{name}: image too large ({w}x{h}, limit {max_pixels / 1e6:g} MP)")
    return w, h


def decode(data: bytes, name: str) -> np.ndarray:
    """``H x W x 3`` uint8 RGB (EXIF orientation applied); errors as :class:`RequestError`."""
    try:
        return load_rgb(data, name)
    except ImageError as e:
        text = str(e)
        status = 415 if "not an image" in text else 413 if "too large" in text else 400
        raise RequestError(status, text) from e


def predict_map(predictor: Predictor, rgb: np.ndarray) -> np.ndarray:
    """The ``H x W`` uint8 saliency map, equal to ``predictor(rgb)``, in bounded memory."""
    x = network_input(rgb, predictor.size)
    logits = predictor.backend(x[None])[0]
    return predictor.to_map(logits, rgb.shape[0], rgb.shape[1])


def saliency_png(predictor: Predictor, data: bytes, name: str) -> bytes:
    """The grey saliency-map PNG of an uploaded image."""
    return encode_png_bgr(predict_map(predictor, decode(data, name)))


def cutout_png(
    predictor: Predictor, data: bytes, name: str, threshold: int | None, refine: bool
) -> bytes:
    """The RGBA cut-out PNG of an uploaded image (alpha from the refined map)."""
    rgb = decode(data, name)
    alpha = alpha_matte(rgb, predict_map(predictor, rgb), threshold, refine)
    bgra = np.empty((*rgb.shape[:2], 4), np.uint8)
    for i in range(3):
        bgra[:, :, i] = rgb[:, :, 2 - i]
    bgra[:, :, 3] = alpha
    del rgb, alpha
    return encode_png_bgr(bgra)


def preview_jpeg(data: bytes, name: str, max_side: int) -> bytes:
    """A JPEG no larger than ``max_side`` on either side, for browsers that cannot show
    the upload itself (TIFF, 16-bit PNG...). JPEGs are decoded at reduced scale (``draft``)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (max_side, max_side))
            rgb = to_rgb(img)
    except ImageError as e:
        raise RequestError(400, f"{name}: {e}") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise RequestError(400, f"{name}: corrupt or truncated image ({e})") from e
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]
    )
    if not ok:
        raise OSError("JPEG encoding failed")
    return buf.tobytes()
