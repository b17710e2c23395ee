"""Deterministic maps and masks for checking the SalMetric protocol against the C++ tool.

Pure integer arithmetic (a splitmix64 hash, ellipses), no random generator, so the
pixels are the same on every platform and NumPy version; ``scripts/salmetric_fixtures.py``
runs the compiled tool on them and ``tests/test_salmetric.py`` checks our numbers
against its recorded output. Every case is one list file (one "dataset").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

#: Thread counts the tool is run with on the ``mixed`` case (its default is 4).
MIXED_THREADS = (1, 3, 4, 7)


def hash_noise(shape: tuple[int, int], seed: int, levels: int = 256) -> np.ndarray:
    """Uniform-looking uint8 values in ``0..levels-1`` from a splitmix64 hash of the index."""
    x = np.arange(shape[0] * shape[1], dtype=np.uint64) + np.uint64(seed) * np.uint64(1 << 32)
    x = x * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(30)
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x = x * np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return (x % np.uint64(levels)).astype(np.uint8).reshape(shape)


def soft_ellipse(shape: tuple[int, int], ramp: float = 6.0) -> np.ndarray:
    """A centred ellipse mask, 255 inside, 0 outside, with a grey linear edge."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.sqrt(((yy + 0.5 - h / 2) / (0.35 * h)) ** 2 + ((xx + 0.5 - w / 2) / (0.3 * w)) ** 2)
    edge = np.clip((1.0 - r) * min(h, w) / ramp, 0.0, 1.0)
    return np.floor(edge * 255.0 + 0.5).astype(np.uint8)


def saliency_like(shape: tuple[int, int], seed: int, levels: int = 256) -> np.ndarray:
    """The soft ellipse blurred by noise: a map that agrees with :func:`soft_ellipse` in part."""
    noise = hash_noise(shape, seed, levels).astype(np.int32) * (255 // max(levels - 1, 1))
    blend = (soft_ellipse(shape, ramp=3.0).astype(np.int32) * 3 + noise) // 4
    return np.clip(blend, 0, 255).astype(np.uint8)


def _levels_map(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Only gray levels at and next to the protocol's edges (0, 1, 127..129, 254, 255)."""
    table = np.array([0, 1, 127, 128, 129, 254, 255], np.uint8)
    return table[hash_noise(shape, seed, len(table))]


def _mask_128(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A mask made of 0, 128 (background for ``gt > 128``), 129 and 255 only."""
    table = np.array([0, 128, 129, 255], np.uint8)
    return table[hash_noise(shape, seed, len(table))]


Pair = tuple[np.ndarray, np.ndarray]


def _sizes() -> list[Pair]:
    shapes = [(1, 1), (3, 7), (17, 13), (64, 48), (150, 200), (333, 500)]
    return [(saliency_like(s, i + 1), soft_ellipse(s)) for i, s in enumerate(shapes)]


def _ties() -> list[Pair]:
    shapes = [(40, 60), (61, 37), (128, 128)]
    pairs = [(_levels_map(s, 10 + i), _mask_128(s, 20 + i)) for i, s in enumerate(shapes)]
    # Few levels (heavy ties at every threshold used) against the soft ellipse.
    pairs.append((saliency_like((90, 120), 30, levels=5), soft_ellipse((90, 120))))
    return pairs


def _black_masks() -> list[Pair]:
    s = (48, 64)
    black = np.zeros(s, np.uint8)
    return [
        (saliency_like(s, 40), black),
        (np.zeros(s, np.uint8), black),
        (np.full(s, 255, np.uint8), black),
        (_levels_map(s, 41), black),
    ]


def _white_masks() -> list[Pair]:
    s = (50, 70)
    white = np.full(s, 255, np.uint8)
    return [
        (saliency_like(s, 50), white),
        (np.full(s, 255, np.uint8), white),
        (np.zeros(s, np.uint8), white),
        (np.full(s, 128, np.uint8), np.full(s, 129, np.uint8)),
    ]


def _mixed() -> list[Pair]:
    """Nine images (uneven thread chunks) of different sizes and kinds."""
    return [*_sizes()[2:5], *_ties()[:2], *_black_masks()[:2], *_white_masks()[:2]]


def _mismatch() -> list[Pair]:
    """Maps of another size than their masks, read the tool's way (no resize).

    A map with more rows than its mask always makes the tool read past the mask's buffer
    (undefined behaviour), so there is no such case.
    """
    mask = soft_ellipse((40, 50))
    return [
        (saliency_like((30, 40), 60), mask),  # smaller: the mask's top-left crop
        (saliency_like((30, 60), 61), mask),  # wider: rows wrap into the next mask row
        (saliency_like((20, 100), 62), mask),  # twice as wide: each row spans two mask rows
        (saliency_like((40, 50), 63), mask),  # same size, for reference
    ]


def _big() -> list[Pair]:
    """One image above 2^24 pixels: float32 counts stall, the float32 MAE sum drifts."""
    s = (4100, 4100)
    yy, xx = np.mgrid[0 : s[0], 0 : s[1]].astype(np.int64)
    pred = ((xx * 7 + yy * 3) % 256).astype(np.uint8)
    mask = np.full(s, 255, np.uint8)
    mask[100:200, 100:300] = 0
    mask[300:310, :] = 128
    return [(pred, mask)]


#: Case name -> its pairs, in list order.
CASES: dict[str, Callable[[], list[Pair]]] = {
    "sizes": _sizes,
    "ties": _ties,
    "black_masks": _black_masks,
    "white_masks": _white_masks,
    "mixed": _mixed,
    "mismatch": _mismatch,
    "big": _big,
}


def write_case(name: str, root: Path) -> Path:
    """Write case ``name``'s PNGs under ``root/name`` and its list file; return the list."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (pred, mask) in enumerate(CASES[name]()):
        pred_path, mask_path = folder / f"{i:02d}_sal.png", folder / f"{i:02d}_gt.png"
        for path, img in ((pred_path, pred), (mask_path, mask)):
            if not cv2.imwrite(str(path), img):
                raise OSError(f"{path}: cannot write")
        lines.append(f"{pred_path} {mask_path}\n")
    list_file = root / f"{name}.txt"
    list_file.write_text("".join(lines))
    return list_file


def read_list(list_file: Path) -> list[tuple[Path, Path]]:
    """The pairs of a list file (whitespace-separated, as the tool reads it)."""
    words = list_file.read_text().split()
    return [(Path(a), Path(b)) for a, b in zip(words[::2], words[1::2], strict=True)]


def maps_digest(pairs: list[tuple[Path, Path]]) -> str:
    """SHA-256 over the map files' names and bytes, in pair order (which maps a record is of)."""
    h = hashlib.sha256()
    for pred, _ in pairs:
        h.update(pred.name.encode() + b"\0" + pred.read_bytes())
    return h.hexdigest()
