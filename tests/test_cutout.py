"""Cut-out API: guided-filter alpha, hard threshold, RGBA and overlay outputs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

import sod100k
from sod100k.infer.cutout import (
    alpha_matte,
    cutout_rgba,
    fast_guided_alpha,
    guided_filter,
    overlay_rgb,
)


def _two_colour_image(h: int = 60, w: int = 80) -> np.ndarray:
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, w // 2 :] = (240, 220, 30)
    return rgb


def test_guided_filter_snaps_a_blurred_map_to_the_colour_edge():
    rgb = _two_colour_image()
    truth = np.zeros(rgb.shape[:2], np.float32)
    truth[:, 40:] = 1.0
    coarse = cv2.blur(truth, (15, 15), borderType=cv2.BORDER_REFLECT)
    refined = guided_filter(rgb, coarse, radius=4, eps=1e-4)
    # The soft ramp becomes a step exactly at the colour edge (column 40).
    assert refined[:, 40].min() - refined[:, 39].max() > 0.3
    assert coarse[:, 40].min() - coarse[:, 39].max() < 0.1
    np.testing.assert_array_equal(refined > 0.5, truth > 0.5)


def test_guided_filter_keeps_a_flat_map_flat():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    flat = np.full((30, 40), 0.7, np.float32)
    np.testing.assert_allclose(guided_filter(rgb, flat, 3), flat, atol=1e-3)


def test_hard_threshold_gives_binary_alpha_and_soft_keeps_grey_levels():
    rgb = _two_colour_image()
    sal = np.tile(np.linspace(0, 255, 80).astype(np.uint8), (60, 1))
    hard = alpha_matte(rgb, sal, threshold=128, refine=False)
    assert set(np.unique(hard)) == {0, 255}
    assert (hard[:, :60] == 0).all() == (sal[:, :60] < 128).all()
    soft = alpha_matte(rgb, sal, refine=False)
    np.testing.assert_array_equal(soft, sal)


def test_alpha_refuses_bad_threshold_and_mismatched_sizes():
    rgb = _two_colour_image()
    with pytest.raises(ValueError, match="threshold"):
        alpha_matte(rgb, np.zeros((60, 80), np.uint8), threshold=300)
    with pytest.raises(ValueError, match="differs"):
        alpha_matte(rgb, np.zeros((10, 10), np.uint8))


def test_cutout_and_overlay_shapes():
    rgb = _two_colour_image()
    sal = np.zeros((60, 80), np.uint8)
    sal[:, 40:] = 255
    rgba = cutout_rgba(rgb, sal)
    assert rgba.shape == (60, 80, 4)
    np.testing.assert_array_equal(rgba[..., :3], rgb)
    tinted = overlay_rgb(rgb, sal)
    np.testing.assert_array_equal(tinted[:, :40], rgb[:, :40])
    assert (tinted[:, 40:] != rgb[:, 40:]).any()


def test_remove_background_on_ecssd(ecssd, weights_x2):
    path = sorted((ecssd / "images").glob("*.jpg"))[0]
    mask = np.asarray(Image.open(ecssd / "masks" / (path.stem + ".png")).convert("L")) > 127
    cut = sod100k.remove_background(path, weights=weights_x2)
    assert cut.mode == "RGBA"
    assert cut.size == Image.open(path).size
    alpha = np.asarray(cut)[..., 3].astype(np.float32) / 255
    # The object is mostly kept and the background mostly removed.
    assert alpha[mask].mean() > 0.7
    assert alpha[~mask].mean() < 0.2
    hard = np.asarray(sod100k.remove_background(path, weights=weights_x2, threshold=128))
    assert set(np.unique(hard[..., 3])) <= {0, 255}
    sal = sod100k.saliency(path, weights=weights_x2)
    assert sal.dtype == np.uint8 and sal.shape == mask.shape
    assert sod100k.overlay(path, weights=weights_x2).mode == "RGB"


def test_fast_guided_filter_approximates_the_full_one_and_still_snaps_to_the_edge():
    rgb = _two_colour_image(120, 160)
    truth = np.zeros(rgb.shape[:2], np.float32)
    truth[:, 80:] = 1.0
    coarse = cv2.blur(truth, (21, 21), borderType=cv2.BORDER_REFLECT)
    full = guided_filter(rgb, coarse, radius=8)
    fast = fast_guided_alpha(rgb, (coarse * 255).astype(np.uint8), 8, low_res_pixels=120 * 10)
    fast = fast.astype(np.float32) / 255.0
    assert fast.shape == full.shape
    assert 0 < np.abs(fast - full).mean() < 0.02  # an approximation, and a close one
    assert fast[:, 80].min() - fast[:, 79].max() > 0.3
    assert alpha_matte(rgb, (coarse * 255).astype(np.uint8), subsample=4).shape == (120, 160)
