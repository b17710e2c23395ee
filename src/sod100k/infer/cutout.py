"""From a saliency map to what people want to see: an alpha matte, a cut-out, an overlay.

Edge refinement uses the guided filter of He, Sun and Tang (ECCV 2010 / TPAMI 2013),
written here with ``cv2.boxFilter`` in a few lines: ``cv2.ximgproc.guidedFilter`` would
need ``opencv-contrib-python-headless``, which replaces (and conflicts with) the
``opencv-python-headless`` wheel the rest of the project depends on. The filter lets the
network's coarse map (predicted at 224 x 224 and upsampled) snap to the colour edges of
the full-resolution image.

Big images are refined with He and Sun's *fast guided filter* (arXiv:1505.00996): the
filter's linear coefficients are computed on a copy reduced to about
:data:`LOW_RES_PIXELS`, upsampled bilinearly and applied to the full-resolution image in
strips of rows, so the memory it needs is a few strips plus the small copy instead of
~40 float32 planes of the full image (a 40 MP image would need > 8 GB).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image

#: Default guided-filter window radius, as a fraction of the image's shorter side.
RADIUS_FRACTION = 0.01
#: Default guided-filter regulariser (on colours in [0, 1]); larger keeps the map smoother.
EPS = 1e-4
#: Default overlay colour (RGB) and strength.
OVERLAY_COLOR = (255, 40, 40)
#: Images up to this many pixels are refined with the exact filter at full resolution.
FULL_RES_PIXELS = 2_000_000
#: Bigger ones get the fast guided filter, its coefficients computed at about this size.
LOW_RES_PIXELS = 1_000_000
#: Rows per strip when the fast filter's coefficients are applied at full resolution.
STRIP_ROWS = 256


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float = EPS) -> np.ndarray:
    """Colour guided filter: ``src`` (H x W, float in [0, 1]) edge-aligned to ``guide``.

    ``guide`` is ``H x W x 3`` uint8 RGB. Follows Algorithm 1 of He et al. with the 3x3
    colour covariance, so edges between colours of equal brightness are kept too.
    """
    if radius < 1:
        return src.astype(np.float32)
    I = guide.astype(np.float32) / 255.0  # noqa: E741 (the paper's name)
    mean_a, mean_b = _coefficients(I, src.astype(np.float32), radius, eps)
    return (mean_a * I).sum(axis=2) + mean_b


def _coefficients(
    I: np.ndarray,  # noqa: E741 (the paper's name)
    p: np.ndarray,
    radius: int,
    eps: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Box-averaged coefficients ``(mean_a, mean_b)`` of the colour guided filter.

    The 3 x 3 systems are solved in closed form (adjugate over determinant), plane by
    plane, so no ``H x W x 3 x 3`` array is built.
    """
    ksize = (2 * radius + 1, 2 * radius + 1)

    def mean(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, cv2.CV_32F, ksize, borderType=cv2.BORDER_REFLECT)

    mean_I = mean(I)
    mean_p = mean(p)
    cov = mean(I * p[:, :, None]) - mean_I * mean_p[:, :, None]
    v = {}
    for i in range(3):
        for j in range(i, 3):
            v[i, j] = mean(I[:, :, i] * I[:, :, j]) - mean_I[:, :, i] * mean_I[:, :, j]
            if i == j:
                v[i, j] += eps
    rr, rg, rb, gg, gb, bb = v[0, 0], v[0, 1], v[0, 2], v[1, 1], v[1, 2], v[2, 2]
    inv = {
        (0, 0): gg * bb - gb * gb,
        (0, 1): gb * rb - rg * bb,
        (0, 2): rg * gb - gg * rb,
        (1, 1): rr * bb - rb * rb,
        (1, 2): rb * rg - rr * gb,
        (2, 2): rr * gg - rg * rg,
    }
    det = rr * inv[0, 0] + rg * inv[0, 1] + rb * inv[0, 2]
    a = np.empty_like(cov)
    for i in range(3):
        a[:, :, i] = sum(inv[min(i, j), max(i, j)] * cov[:, :, j] for j in range(3)) / det
    b = mean_p - (a * mean_I).sum(axis=2)
    return mean(a), mean(b)


def fast_guided_alpha(
    guide: np.ndarray,
    sal: np.ndarray,
    radius: int,
    eps: float = EPS,
    low_res_pixels: int = LOW_RES_PIXELS,
    strip_rows: int = STRIP_ROWS,
) -> np.ndarray:
    """Fast guided filter of a uint8 map: ``H x W`` uint8 alpha in bounded memory.

    ``guide`` (``H x W x 3`` uint8) and ``sal`` (``H x W`` uint8) are reduced by a factor
    ``s`` to about ``low_res_pixels`` (area averaging), the coefficients are computed there
    with radius ``radius / s``, then upsampled bilinearly and applied to the full-size
    guide strip by strip.
    """
    h, w = sal.shape
    s = max(1.0, math.sqrt(h * w / low_res_pixels))
    hl, wl = max(1, round(h / s)), max(1, round(w / s))
    I_low = cv2.resize(guide, (wl, hl), interpolation=cv2.INTER_AREA).astype(np.float32)
    I_low *= 1.0 / 255.0
    p_low = cv2.resize(sal, (wl, hl), interpolation=cv2.INTER_AREA).astype(np.float32)
    p_low *= 1.0 / 255.0
    mean_a, mean_b = _coefficients(I_low, p_low, max(1, round(radius / s)), eps)
    # Bilinear upsampling with half-pixel centres, as cv2.resize, row strip by row strip.
    map_x = ((np.arange(w, dtype=np.float32) + 0.5) * (wl / w) - 0.5)[None, :]
    alpha = np.empty((h, w), np.uint8)
    for y0 in range(0, h, strip_rows):
        y1 = min(h, y0 + strip_rows)
        map_y = ((np.arange(y0, y1, dtype=np.float32) + 0.5) * (hl / h) - 0.5)[:, None]
        mx = np.ascontiguousarray(np.broadcast_to(map_x, (y1 - y0, w)))
        my = np.ascontiguousarray(np.broadcast_to(map_y, (y1 - y0, w)))
        a = cv2.remap(mean_a, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        q = cv2.remap(mean_b, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        strip = guide[y0:y1].astype(np.float32)
        strip *= 1.0 / 255.0
        a *= strip
        q += a.sum(axis=2)
        q *= 255.0
        q += 0.5
        np.clip(q, 0, 255, out=q)
        alpha[y0:y1] = q.astype(np.uint8)
    return alpha


def alpha_matte(
    rgb: np.ndarray,
    sal: np.ndarray,
    threshold: int | None = None,
    refine: bool = True,
    radius: int | None = None,
    eps: float = EPS,
    subsample: int = 1,
) -> np.ndarray:
    """``H x W`` uint8 alpha from a saliency map.

    With ``threshold`` (0-255) the alpha is hard: 255 where the (refined) map is at or
    above it, else 0. Without, it is soft: the map itself, refined with the guided filter
    when ``refine`` is true. Images over :data:`FULL_RES_PIXELS` are refined with the
    fast guided filter (:func:`fast_guided_alpha`), in bounded memory; ``subsample`` > 1
    asks for the fast filter at any size, its coefficients computed on a grid that many
    times coarser per side (video uses it to keep up with the frame rate).
    """
    if threshold is not None and not 0 <= threshold <= 255:
        raise ValueError(f"threshold must be in 0..255, got {threshold}")
    if sal.shape != rgb.shape[:2]:
        raise ValueError(f"map size {sal.shape[::-1]} differs from image size {rgb.shape[1::-1]}")
    if not refine:
        alpha = np.asarray(sal, dtype=np.uint8).copy()
    else:
        r = radius if radius is not None else max(1, round(RADIUS_FRACTION * min(sal.shape)))
        if sal.size > FULL_RES_PIXELS or subsample > 1:
            low = max(1, sal.size // subsample**2) if subsample > 1 else LOW_RES_PIXELS
            if sal.size > FULL_RES_PIXELS:
                low = min(low, LOW_RES_PIXELS)
            alpha = fast_guided_alpha(rgb, np.asarray(sal, dtype=np.uint8), r, eps, low)
        else:
            refined = guided_filter(rgb, sal.astype(np.float32) / 255.0, r, eps)
            alpha = np.clip(refined * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if threshold is not None:
        alpha = np.where(alpha >= threshold, np.uint8(255), np.uint8(0))
    return alpha


def cutout_rgba(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``H x W x 4`` uint8 RGBA: the image with ``alpha`` as its transparency."""
    return np.dstack([rgb, alpha])


def overlay_rgb(
    rgb: np.ndarray, sal: np.ndarray, color=OVERLAY_COLOR, strength: float = 0.6
) -> np.ndarray:
    """``H x W x 3`` uint8: the image tinted with ``color`` in proportion to saliency."""
    weight = (sal.astype(np.float32) / 255.0 * strength)[:, :, None]
    tint = np.asarray(color, dtype=np.float32)
    out = rgb.astype(np.float32) * (1.0 - weight) + tint * weight
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def to_pil(array: np.ndarray) -> Image.Image:
    """A uint8 L, RGB or RGBA array as a PIL image."""
    return Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
