"""load_rgb's pixels: EXIF orientation applied to the decoded pixels, upright files as stored."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sod100k.data.images import load_rgb


def _png(pixels: np.ndarray, orientation: int | None) -> bytes:
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.fromarray(pixels).save(buf, "PNG", exif=exif.tobytes())
    return buf.getvalue()


# How each EXIF orientation maps stored pixels to the displayed image.
VIEW = {
    None: lambda a: a,
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


@pytest.mark.parametrize("orientation", list(VIEW))
def test_orientation_is_applied_to_the_pixels(orientation):
    stored = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    got = load_rgb(_png(stored, orientation))
    np.testing.assert_array_equal(got, VIEW[orientation](stored))
