"""From a saliency map to what people want to see: an alpha matte, a cut-out, an overlay.

Edge refinement uses the guided filter of He, Sun and Tang (ECCV 2010 / TPAMI 2013),
written here with ``cv2.boxFilter`` in a few lines: ``cv2.ximgproc.guidedFilter`` would
need ``opencv-contrib-python-headless``, which replaces (and conflicts with) the
``opencv-python-headless`` wheel the rest of the project depends on. The filter lets the
network's coarse map (predicted at 224 x 224 and upsampled) snap to the colour edges of
the full-resolution image.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

#: Default guided-filter window radius, as a fraction of the image's shorter side.
RADIUS_FRACTION = 0.01
#: Default guided-filter regulariser (on colours in [0, 1]); larger keeps the map smoother.
EPS = 1e-4
#: Default overlay colour (RGB) and strength.
OVERLAY_COLOR = (255, 40, 40)


def guided_filter(
    guide: np.ndarray, src: np.ndarray, radius: int, eps: float = EPS, subsample: int = 1
) -> np.ndarray:
    """Colour guided filter: ``src`` (H x W, float in [0, 1]) edge-aligned to ``guide``.

    ``guide`` is ``H x W x 3`` uint8 RGB. Follows Algorithm 1 of He et al. with the 3x3
    colour covariance, so edges between colours of equal brightness are kept too.

    Args:
        guide: ``H x W x 3`` uint8 RGB image whose edges the output follows.
        src: ``H x W`` float map to filter.
        radius: box window radius in pixels at full resolution.
        eps: regulariser; larger keeps the output smoother.
        subsample: above 1, the fast guided filter of He and Sun (arXiv 1505.00996): the
            linear coefficients are solved on both inputs shrunk by this factor, then
            upsampled and applied to the full-resolution guide (about ``subsample**2``
            times less work, for video).

    Returns:
        ``H x W`` float32, the filtered map.
    """
    if radius < 1:
        return src.astype(np.float32)
    p = src.astype(np.float32)
    if subsample > 1:
        h, w = p.shape
        small = (max(1, round(w / subsample)), max(1, round(h / subsample)))
        guide_small = cv2.resize(guide, small, interpolation=cv2.INTER_AREA)
        mean_a, mean_b = _coefficients(
            guide_small.astype(np.float32) / 255.0,
            cv2.resize(p, small, interpolation=cv2.INTER_AREA),
            max(1, round(radius / subsample)),
            eps,
        )
        # One resize for all four coefficient planes; 1/255 folded into a, so the
        # full-resolution guide is used as it is (this part dominates the cost).
        coef = cv2.resize(np.dstack([mean_a / 255.0, mean_b]), (w, h))
        return np.einsum("hwc,hwc->hw", coef[..., :3], guide.astype(np.float32)) + coef[..., 3]
    I = guide.astype(np.float32) / 255.0  # noqa: E741 (the paper's name)
    mean_a, mean_b = _coefficients(I, p, radius, eps)
    return (mean_a * I).sum(axis=2) + mean_b


def _coefficients(
    I: np.ndarray,  # noqa: E741 (the paper's name)
    p: np.ndarray,
    radius: int,
    eps: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Box-averaged linear coefficients (``H x W x 3`` a, ``H x W`` b) of the filter."""
    ksize = (2 * radius + 1, 2 * radius + 1)

    def mean(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, cv2.CV_32F, ksize, borderType=cv2.BORDER_REFLECT)

    mean_I = mean(I)
    mean_p = mean(p)
    cov_Ip = mean(I * p[:, :, None]) - mean_I * mean_p[:, :, None]

    # Per-pixel 3x3 covariance of the guide, regularised, then solved for a (H x W x 3)
    # in closed form (symmetric 3x3 inverse by cofactors: ~5x faster than a batched
    # np.linalg.solve). Float64 keeps the cofactors exact where channels correlate.
    def cov(i: int, j: int) -> np.ndarray:
        v = mean(I[:, :, i] * I[:, :, j]) - mean_I[:, :, i] * mean_I[:, :, j]
        return v.astype(np.float64) + (eps if i == j else 0.0)

    s00, s01, s02, s11, s12, s22 = cov(0, 0), cov(0, 1), cov(0, 2), cov(1, 1), cov(1, 2), cov(2, 2)
    c00, c01, c02 = s11 * s22 - s12 * s12, s02 * s12 - s01 * s22, s01 * s12 - s02 * s11
    c11, c12, c22 = s00 * s22 - s02 * s02, s01 * s02 - s00 * s12, s00 * s11 - s01 * s01
    det = s00 * c00 + s01 * c01 + s02 * c02
    v0, v1, v2 = (cov_Ip[:, :, k].astype(np.float64) / det for k in range(3))
    a = np.dstack(
        [
            c00 * v0 + c01 * v1 + c02 * v2,
            c01 * v0 + c11 * v1 + c12 * v2,
            c02 * v0 + c12 * v1 + c22 * v2,
        ]
    ).astype(np.float32)
    b = mean_p - (a * mean_I).sum(axis=2)
    return mean(a), mean(b)


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
    when ``refine`` is true (``subsample``: see :func:`guided_filter`).
    """
    if threshold is not None and not 0 <= threshold <= 255:
        raise ValueError(f"threshold must be in 0..255, got {threshold}")
    if sal.shape != rgb.shape[:2]:
        raise ValueError(f"map size {sal.shape[::-1]} differs from image size {rgb.shape[1::-1]}")
    alpha = sal.astype(np.float32) / 255.0
    if refine:
        r = radius if radius is not None else max(1, round(RADIUS_FRACTION * min(sal.shape)))
        alpha = guided_filter(rgb, alpha, r, eps, subsample)
    alpha = np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if threshold is not None:
        alpha = np.where(alpha >= threshold, 255, 0).astype(np.uint8)
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
