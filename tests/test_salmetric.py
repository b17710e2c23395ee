"""The SalMetric protocol against the compiled tool's recorded outputs (no C++ needed).

``tests/fixtures/salmetric/cases.json`` holds what the authors' SalMetric printed (at 9
significant digits) on the maps/masks that ``tests/salmetric_cases.py`` generates;
``scripts/salmetric_fixtures.py`` regenerates it from a SalMetric build.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import salmetric_cases
from sod100k.eval import salmetric

FIXTURES = Path(__file__).parent / "fixtures" / "salmetric"
CASES = json.loads((FIXTURES / "cases.json").read_text())["cases"]
TOL = 1e-6


def _score_case(name: str, root: Path, threads: int) -> salmetric.SalDatasetScores:
    list_file = salmetric_cases.write_case(name, root)
    scores = [salmetric.score_files(p, g)[0] for p, g in salmetric_cases.read_list(list_file)]
    return salmetric.summarize(scores, threads)


@pytest.mark.parametrize("key", sorted(CASES))
def test_matches_the_compiled_tool(key: str, tmp_path: Path) -> None:
    expected = CASES[key]
    got = _score_case(expected["case"], tmp_path, expected["threads"])
    for metric in salmetric.METRICS:
        assert abs(got.metrics[metric] - expected[metric]) <= TOL, (key, metric)
        # The tool printed float32 values at 9 digits: we reproduce them bit for bit.
        assert np.float32(got.metrics[metric]) == np.float32(expected[metric]), (key, metric)
    for curve, ours in (("precision", got.precision), ("recall", got.recall)):
        np.testing.assert_allclose(ours, expected[curve], rtol=0, atol=TOL, err_msg=curve)
    np.testing.assert_allclose(got.f_curve, expected["fmeasure"], rtol=0, atol=TOL)


def test_fixture_cases_cover_the_quirks() -> None:
    """The recorded cases include what the tool does oddly (so the test above checks it)."""
    assert CASES["mismatch"]["size_warnings"] == 3
    assert {f"mixed@{t}" for t in salmetric_cases.MIXED_THREADS if t != 4} <= set(CASES)
    # Thread chunking changes the float32 sums, so the counts are part of the protocol.
    assert len({CASES[k]["MAE"] for k in CASES if k.startswith("mixed")}) >= 1
    # All-black masks: recall is (0 + eps) / (0 + eps) = 1 at every threshold.
    assert CASES["black_masks"]["recall"] == [1.0] * 256


def _tool_mae(pred: np.ndarray, gt: np.ndarray) -> np.float32:
    """The tool's loop, one pixel at a time: double term, float32 running sum."""
    acc = np.float32(0)
    for d in np.abs(pred.astype(np.int64) - gt.astype(np.int64)).reshape(-1):
        acc = np.float32(float(acc) + d / 255.0)
    return np.float32(acc / np.float32(pred.size))


def test_mae_follows_the_tools_double_to_float_steps() -> None:
    """Each term is added in double and the sum rounded to float32, step by step; a plain
    float32 cumsum is one ulp off on this image, the protocol is not."""
    pred = salmetric_cases.saliency_like((30, 40), 60)
    gt = salmetric_cases.soft_ellipse((40, 50))[:30, :40]
    naive = np.cumsum(
        (np.abs(pred.astype(np.int64) - gt) / 255.0).astype(np.float32).reshape(-1),
        dtype=np.float32,
    )[-1] / np.float32(pred.size)
    assert naive != _tool_mae(pred, gt)
    assert salmetric.image_mae(pred, gt) == _tool_mae(pred, gt)


@pytest.mark.parametrize("block", [37, 1000, salmetric.MAE_BLOCK])
def test_mae_is_exact_across_blocks(block: int, monkeypatch) -> None:
    """Images whose float32 cumsum needs two corrections (in block 0, and after 12000
    pixels of zero error), summed in blocks of several sizes."""
    monkeypatch.setattr(salmetric, "MAE_BLOCK", block)
    shape = (150, 200)
    gt = salmetric_cases.soft_ellipse(shape, ramp=20.0)
    early = salmetric_cases.saliency_like(shape, 80)
    late = salmetric_cases.saliency_like(shape, 72)
    late[:60] = gt[:60]
    late[100:110] = 0
    for pred in (early, late):
        assert salmetric.image_mae(pred, gt) == _tool_mae(pred, gt)


def test_counts_stall_at_2_pow_24() -> None:
    """Float32 sums of ones stop at 2^24: the tool's counts on very large images."""
    hist = np.zeros(256, np.int64)
    hist[200] = 2**24 + 1000
    above = salmetric._counts_above(hist)
    assert above[0] == 2**24 and above[199] == 2**24 and above[200] == 0


def test_strict_threshold_and_gt_level() -> None:
    """``pred > th`` and ``gt > 128``: a 128 mask pixel is background."""
    pred = np.array([[0, 1, 128, 255]], np.uint8)
    gt = np.array([[128, 129, 128, 255]], np.uint8)
    s = salmetric.score_image(pred, gt)
    eps = np.float32(1e-4)
    # th = 0: positives are 1, 128, 255 -> TP = 2 (129 and 255 in the mask), 3 predicted.
    assert s.precision[0] == (np.float32(2) + eps) / (np.float32(3) + eps)
    # th = 255: nothing is predicted -> precision (0 + eps) / (0 + eps) = 1, recall ~ 0.
    assert s.precision[255] == 1.0
    assert s.recall[255] == eps / (np.float32(2) + eps)
    # MAE compares with the raw mask: |0-128| + |1-129| + 0 + 0 over 4 pixels, / 255.
    assert s.mae == pytest.approx(256 / 255 / 4, abs=1e-7)


def test_mask_as_read_crops_wraps_and_refuses_overreads() -> None:
    gt = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(salmetric.mask_as_read(gt, (2, 3)), gt[:2, :3])
    np.testing.assert_array_equal(
        salmetric.mask_as_read(gt, (2, 6)), np.array([[0, 1, 2, 3, 4, 5], [4, 5, 6, 7, 8, 9]])
    )
    with pytest.raises(ValueError, match="past the end of the mask"):
        salmetric.mask_as_read(gt, (4, 4))


def test_resize_mode_scores_maps_of_another_size(tmp_path: Path) -> None:
    import cv2

    pred, gt = salmetric_cases.saliency_like((30, 40), 1), salmetric_cases.soft_ellipse((60, 80))
    cv2.imwrite(str(tmp_path / "p.png"), pred)
    cv2.imwrite(str(tmp_path / "g.png"), gt)
    scores, differs = salmetric.score_files(tmp_path / "p.png", tmp_path / "g.png", "resize")
    resized = cv2.resize(pred, (80, 60), interpolation=cv2.INTER_LINEAR)
    assert differs
    assert scores.mae == salmetric.score_image(resized, gt).mae
    with pytest.raises(ValueError, match="size-mismatch mode"):
        salmetric.score_files(tmp_path / "p.png", tmp_path / "g.png", "stretch")


def test_unreadable_map_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"bad\.png: not an image"):
        salmetric.read_gray(bad)


def test_counts_are_pysodmetrics_counts_one_threshold_up() -> None:
    """Our histogram counts are PySODMetrics' ``pred >= t`` counts at ``t = th + 1`` (on
    the raw map: ``x / 255 * 255`` is exact for every 8-bit level)."""
    import py_sod_metrics as psm

    pred = salmetric_cases.saliency_like((90, 120), 5)
    positive = salmetric_cases.soft_ellipse((90, 120)) > salmetric.GT_LEVEL
    fg = int(positive.sum())
    counts = psm.FmeasureV2().dynamically_binarizing(pred / 255.0, positive, fg, positive.size - fg)
    tp_at_least = np.flip(counts["tp"])  # index t: pred >= t
    hist = np.bincount(pred[positive], minlength=256)
    np.testing.assert_array_equal(salmetric._counts_above(hist), np.append(tp_at_least[1:], 0))
