"""Pooled evaluation gives the single-process numbers; bad files are skipped and named."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from sod100k.eval.pairing import pair_by_stem
from sod100k.eval.parallel import CHUNK, evaluate_pairs


def make_set(root: Path, rng: np.random.Generator, n: int) -> tuple[Path, Path]:
    pred_dir, gt_dir = root / "pred", root / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    for i in range(n):
        h, w = rng.integers(30, 60, 2)
        gt = np.zeros((h, w), np.uint8)
        y, x = rng.integers(0, 15, 2)
        gt[y : y + 15, x : x + 15] = 255
        noise = rng.integers(0, 256, gt.shape).astype(np.uint8)
        pred = cv2.addWeighted(gt, 0.7, noise, 0.3, 0)
        if i % 3 == 0:  # some maps at another size than their mask
            pred = cv2.resize(pred, (w // 2, h // 2))
        cv2.imwrite(str(pred_dir / f"{i:03d}.png"), pred)
        cv2.imwrite(str(gt_dir / f"{i:03d}.png"), gt)
    return pred_dir, gt_dir


def test_two_workers_match_one_exactly(tmp_path, rng):
    pred_dir, gt_dir = make_set(tmp_path, rng, 3 * CHUNK)
    pairs = pair_by_stem(pred_dir, gt_dir).pairs
    one = evaluate_pairs(pairs, workers=1, progress=False)
    two = evaluate_pairs(pairs, workers=2, progress=False)
    assert one.failed == two.failed == []
    assert one.scores.metrics == two.scores.metrics
    assert np.array_equal(one.scores.precision, two.scores.precision)
    assert np.array_equal(one.scores.f_curve, two.scores.f_curve)
    assert one.scores.count == 3 * CHUNK


def test_unreadable_png_is_skipped_and_reported(tmp_path, rng):
    pred_dir, gt_dir = make_set(tmp_path, rng, 4)
    png = (pred_dir / "001.png").read_bytes()
    (pred_dir / "001.png").write_bytes(png[: len(png) // 2])  # a truncated download
    outcome = evaluate_pairs(pair_by_stem(pred_dir, gt_dir).pairs, workers=1, progress=False)
    assert outcome.scores.count == 3
    [(what, message)] = outcome.failed
    assert what.endswith("001.png")
    assert "001.png" in message and "corrupt or truncated" in message
