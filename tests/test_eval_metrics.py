"""Metric values on small generated maps whose answers are known in closed form."""

from __future__ import annotations

import numpy as np
import py_sod_metrics as psm
import pytest

from sod100k.eval.metrics import BETA2, METRICS, fit_to_mask, score_image, summarize


def square_mask(h: int = 60, w: int = 80, top: int = 15, left: int = 20, side: int = 30):
    gt = np.zeros((h, w), np.uint8)
    gt[top : top + side, left : left + side] = 255
    return gt


def f_beta(precision: float, recall: float) -> float:
    return (1 + BETA2) * precision * recall / (BETA2 * precision + recall)


def test_perfect_map_scores_best_everywhere():
    gt = square_mask()
    m = summarize([score_image(gt.copy(), gt)]).metrics
    assert m["MAE"] == 0.0
    assert m["maxF"] == pytest.approx(1.0)
    assert m["adpF"] == pytest.approx(1.0)
    assert m["wF"] == pytest.approx(1.0)
    assert m["Sm"] == pytest.approx(1.0, abs=1e-9)
    # The library divides the alignment sum by (pixels - 1), as the MATLAB original.
    assert m["maxE"] == pytest.approx(gt.size / (gt.size - 1))


def test_inverted_map_scores_known_values():
    gt = square_mask()
    share = (gt > 128).mean()  # foreground fraction = precision when all is predicted
    m = summarize([score_image(255 - gt, gt)]).metrics
    assert m["MAE"] == 1.0
    # Only threshold 0 selects any foreground pixel: precision = share, recall = 1.
    assert m["maxF"] == pytest.approx(f_beta(share, 1.0))
    assert m["meanF"] == pytest.approx(f_beta(share, 1.0) / 256)
    assert m["adpF"] == 0.0
    assert m["wF"] == 0.0
    assert m["Sm"] == pytest.approx(0.0, abs=1e-9)


def test_constant_map_is_chance_level():
    gt = square_mask()
    share = (gt > 128).mean()
    m = summarize([score_image(np.full_like(gt, 128), gt)]).metrics
    # A flat map cannot be min-max normalised and stays at 128/255.
    level = 128 / 255
    assert m["MAE"] == pytest.approx(share * (1 - level) + (1 - share) * level)
    assert m["maxF"] == pytest.approx(f_beta(share, 1.0))


def test_curves_run_from_threshold_0_to_255():
    gt = square_mask()
    pred = np.zeros_like(gt)
    pred[gt > 128] = 200  # foreground found at thresholds 1..200 only
    pred[0, 0] = 255  # keeps the library's min-max normalisation an identity
    s = score_image(pred, gt)
    assert s.recall.shape == (256,)
    assert s.recall[200] == 1.0 and s.recall[201] == 0.0
    assert s.f_curve[100] == pytest.approx(f_beta(900 / 901, 1.0))  # 30x30 + the stray pixel


def test_rgb_and_soft_masks_binarise_at_128():
    gt = square_mask()
    soft = np.where(gt > 0, 200, 30).astype(np.uint8)
    assert score_image(gt, soft).mae == 0.0


def test_prediction_is_resized_to_the_mask():
    gt = square_mask(h=120, w=160, top=30, left=40, side=60)
    small = square_mask(h=60, w=80, top=15, left=20, side=30)
    pred = fit_to_mask(small, gt)
    assert pred.shape == gt.shape
    assert summarize([score_image(pred, gt)]).metrics["maxF"] > 0.99


def test_dataset_numbers_equal_the_library_streamed(rng):
    gts = [square_mask(top=int(t), left=int(t)) for t in rng.integers(0, 25, 6)]
    preds = [rng.integers(0, 256, gt.shape).astype(np.uint8) // 2 + gt // 2 for gt in gts]
    ours = summarize([score_image(p, g) for p, g in zip(preds, gts, strict=True)]).metrics
    mae, sm, wfm, em = psm.MAE(), psm.Smeasure(), psm.WeightedFmeasure(), psm.Emeasure()
    fm = psm.FmeasureV2({"f": psm.FmeasureHandler(True, True, beta=BETA2)})
    for p, g in zip(preds, gts, strict=True):
        for metric in (mae, sm, wfm, em, fm):
            metric.step(pred=p, gt=g)
    f = fm.get_results()["f"]
    e = em.get_results()["em"]
    expected = {
        "MAE": mae.get_results()["mae"],
        "maxF": f["dynamic"].max(),
        "meanF": f["dynamic"].mean(),
        "adpF": f["adaptive"],
        "Sm": sm.get_results()["sm"],
        "maxE": e["curve"].max(),
        "meanE": e["curve"].mean(),
        "adpE": e["adp"],
        "wF": wfm.get_results()["wfm"],
    }
    assert set(ours) == set(METRICS)
    for name in METRICS:
        assert ours[name] == pytest.approx(expected[name], rel=1e-12, abs=1e-15), name


def test_summarize_refuses_nothing():
    with pytest.raises(ValueError, match="no images"):
        summarize([])
