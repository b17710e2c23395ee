"""A corpus of awkward and broken image files, generated on the fly for the tests.

``write_corpus(folder)`` writes every case and returns which are usable (with the size
their map must have, EXIF orientation applied) and which must be refused.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    #: ``(height, width)`` of the map for a usable image; ``None`` for a bad one.
    map_size: tuple[int, int] | None


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _photo(width: int = 64, height: int = 48) -> Image.Image:
    """A bright square on a dark, noisy ground (something salient to find)."""
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    arr[height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = (230, 200, 40)
    return Image.fromarray(arr)


def _exif_rotated() -> bytes:
    """Stored 64 wide x 48 high, with EXIF orientation 6 (rotate 90° clockwise to view)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(_photo(), "JPEG", exif=exif.tobytes())


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _bomb(side: int = 20000) -> bytes:
    """A PNG of a few kB that decodes to ``side x side`` pixels (400 MP): 1-bit, all black.

    Written by hand, row by row, so the test never holds the 400 MP image in memory.
    """
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed 1-bit pixels
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def corpus() -> list[Case]:
    photo = _photo()
    jpeg = _encode(photo, "JPEG")
    png = _encode(photo, "PNG")
    sixteen = Image.fromarray(np.asarray(photo.convert("L"), np.uint16) * 257)
    return [
        Case("good.jpg", jpeg, (48, 64)),
        Case("zero_byte.jpg", b"", None),
        Case("truncated.jpg", jpeg[: len(jpeg) // 2], None),
        Case("truncated.png", png[: len(png) // 2], None),
        Case("text_renamed.jpg", b"this is not an image, just some text\n" * 4, None),
        Case("cmyk.jpg", _encode(photo.convert("CMYK"), "JPEG"), (48, 64)),
        Case("sixteen_bit.png", _encode(sixteen, "PNG"), (48, 64)),
        Case("rgba.png", _encode(photo.convert("RGBA"), "PNG"), (48, 64)),
        Case("gray.png", _encode(photo.convert("L"), "PNG"), (48, 64)),
        Case("palette.png", _encode(photo.convert("P"), "PNG"), (48, 64)),
        Case("exif_rotated.jpg", _exif_rotated(), (64, 48)),
        Case("bomb.png", _bomb(), None),
        Case("one_pixel.png", _encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"), (1, 1)),
    ]


def write_corpus(folder: Path) -> list[Case]:
    folder.mkdir(parents=True, exist_ok=True)
    cases = corpus()
    for case in cases:
        (folder / case.name).write_bytes(case.data)
    return cases
