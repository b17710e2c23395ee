"""PNG writing: same pixels back, and the fixed row filter (not libpng's per-row search)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from sod100k.data.png import encode_png_bgr
from sod100k.infer.batch import encode_png


def _filters(png: bytes) -> set[int]:
    """The row filter types of an 8-bit PNG (the first byte of each decompressed row)."""
    pos, idat, width, channels = 8, b"", 0, 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        body = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, _, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8
            channels = {0: 1, 2: 3, 6: 4}[colour]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels + 1
    return {raw[i] for i in range(0, len(raw), stride)}


def _smooth(h: int, w: int, channels: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    planes = [(xx * 3 + yy * (k + 1)) % 256 for k in range(channels)]
    image = np.stack(planes, axis=-1).astype(np.uint8)
    return image[..., 0] if channels == 1 else image


@pytest.mark.parametrize(
    ("channels", "mode", "row_filter"), [(1, "L", 2), (3, "RGB", 4), (4, "RGBA", 4)]
)
def test_png_round_trip_with_a_fixed_filter(channels, mode, row_filter):
    image = _smooth(37, 53, channels)
    png = encode_png(image)
    back = Image.open(io.BytesIO(png))
    assert back.mode == mode
    np.testing.assert_array_equal(np.asarray(back), image)
    assert _filters(png) == {row_filter}  # 2: up (grey), 4: Paeth (colour)


def test_bgr_encoder_keeps_the_channel_order_it_is_given():
    bgra = _smooth(9, 11, 4)
    png = encode_png_bgr(bgra)
    rgba = np.asarray(Image.open(io.BytesIO(png)))
    np.testing.assert_array_equal(rgba, bgra[..., [2, 1, 0, 3]])
