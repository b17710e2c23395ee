"""Big-image paths: same numbers as the one-shot protocol, fast guided filter close to exact."""

from __future__ import annotations

import cv2
import numpy as np

from sod100k.infer import bounded
from sod100k.infer.cutout import alpha_matte, fast_guided_alpha, guided_filter
from sod100k.infer.preprocess import MEAN, STD, postprocess, preprocess


def _photo_like(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth colour fields with a sharp-edged object and some noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    rgb = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    rgb[h // 4 : 3 * h // 4, w // 3 : 2 * w // 3] = (250, 200, 20)
    noise = rng.integers(0, 12, (h, w, 3), dtype=np.uint8)
    return cv2.add(rgb, noise)


def test_network_input_is_bit_identical_to_the_one_shot_resize(monkeypatch):
    monkeypatch.setattr(bounded, "ONE_SHOT_PIXELS", 0)
    monkeypatch.setattr(bounded, "STRIP_ROWS", 97)  # strips that do not divide the height
    for h, w, size in [(1201, 1799, 224), (900, 640, 224), (2000, 333, 160)]:
        rgb = _photo_like(h, w)
        np.testing.assert_array_equal(bounded.network_input(rgb, size), preprocess(rgb, size))


def test_preprocess_is_bit_identical_to_the_reference_formula():
    """float in [0, 1], resize, normalise per pixel, then channels first, as test.py does."""
    for h, w, size in [(300, 400, 224), (224, 224, 224), (37, 2900, 192)]:
        rgb = _photo_like(h, w, seed=h)
        x = rgb.astype(np.float32) * np.float32(1.0 / 255.0)
        x = cv2.resize(x, (size, size), interpolation=cv2.INTER_LINEAR)
        x = ((x - MEAN) / STD).transpose(2, 0, 1)
        got = preprocess(rgb, size)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        assert got.tobytes() == np.ascontiguousarray(x).tobytes()


def test_in_place_postprocess_equals_the_reference_formula():
    logits = np.random.default_rng(0).normal(0, 4, (224, 224)).astype(np.float32)
    for h, w in [(224, 224), (1000, 1500), (37, 2900)]:
        prob = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        prob = cv2.resize(prob.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        scaled = np.clip(prob, 0.0, 1.0) * np.float32(255.0)
        truncated, rounded = scaled.astype(np.uint8), np.rint(scaled).astype(np.uint8)
        # The sigmoid is evaluated as tanh: a level may differ only where 255 * p is within
        # float32 rounding of an integer.
        assert np.abs(postprocess(logits, h, w).astype(int) - truncated).max() <= 1
        assert np.abs(postprocess(logits, h, w, "round").astype(int) - rounded).max() <= 1
        assert np.mean(postprocess(logits, h, w) == truncated) > 0.999


def test_fast_guided_filter_matches_the_exact_filter_closely():
    h, w = 900, 1200
    rgb = _photo_like(h, w)
    truth = np.zeros((h, w), np.uint8)
    truth[h // 4 : 3 * h // 4, w // 3 : 2 * w // 3] = 255
    coarse = cv2.blur(truth, (41, 41))
    exact = guided_filter(rgb, coarse.astype(np.float32) / 255.0, 9)
    exact = np.clip(exact * 255.0 + 0.5, 0, 255).astype(np.uint8)
    fast = fast_guided_alpha(rgb, coarse, 9, low_res_pixels=h * w // 9, strip_rows=100)
    diff = np.abs(fast.astype(int) - exact.astype(int))
    assert np.mean(diff) < 1.0 and np.percentile(diff, 99) <= 8


def test_fast_guided_filter_snaps_a_blurred_map_to_the_colour_edge():
    rgb = np.zeros((600, 800, 3), np.uint8)
    rgb[:, 400:] = (240, 220, 30)
    truth = np.zeros((600, 800), np.uint8)
    truth[:, 400:] = 255
    coarse = cv2.blur(truth, (61, 61), borderType=cv2.BORDER_REFLECT)
    fast = fast_guided_alpha(rgb, coarse, 20, low_res_pixels=600 * 800 // 9)
    assert int(fast[:, 400].min()) - int(fast[:, 399].max()) > 80
    assert int(coarse[:, 400].min()) - int(coarse[:, 399].max()) < 10
    np.testing.assert_array_equal(fast[:, :395] < 128, True)
    np.testing.assert_array_equal(fast[:, 405:] >= 128, True)


def test_alpha_matte_switches_to_the_fast_filter_above_the_limit(monkeypatch):
    import sod100k.infer.cutout as cutout

    rgb = _photo_like(300, 400)
    sal = cv2.blur(np.where(rgb[..., 0] > 240, 255, 0).astype(np.uint8), (9, 9))
    exact = alpha_matte(rgb, sal)
    monkeypatch.setattr(cutout, "FULL_RES_PIXELS", 1000)
    monkeypatch.setattr(cutout, "LOW_RES_PIXELS", 300 * 400)  # no reduction: same filter
    fast = alpha_matte(rgb, sal)
    assert fast.dtype == np.uint8 and fast.shape == sal.shape
    assert np.abs(fast.astype(int) - exact.astype(int)).max() <= 1
    hard = alpha_matte(rgb, sal, threshold=128)
    assert hard.dtype == np.uint8 and set(np.unique(hard)) <= {0, 255}
