"""benchmarks/dwd_study.py end to end in its --smoke configuration, and its resumption."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import dwd_study


def _pairs(root: Path, n: int, seed: int) -> Path:
    """``n`` small images with a bright disc and its mask, in images/ + masks/."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        h, w = rng.integers(40, 64, size=2)
        img = rng.integers(0, 120, size=(h, w, 3), dtype=np.uint8)
        mask = np.zeros((h, w), np.uint8)
        center = (int(rng.integers(10, w - 10)), int(rng.integers(10, h - 10)))
        cv2.circle(mask, center, int(rng.integers(5, 12)), 255, -1)
        img[mask > 0] = (230, 200, 60)
        cv2.imwrite(str(root / "images" / f"{i:03d}.jpg"), img)
        cv2.imwrite(str(root / "masks" / f"{i:03d}.png"), mask)
    return root


@pytest.mark.slow
def test_smoke_study_runs_to_the_end_and_resumes(tmp_path: Path) -> None:
    data, ecssd, out = _pairs(tmp_path / "tr", 16, 0), _pairs(tmp_path / "ec", 4, 1), tmp_path / "o"
    argv = ["--smoke", "--out", str(out), "--data", str(data), "--ecssd", str(ecssd)]
    assert dwd_study.main([*argv, "--threads", "1"]) == 0

    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert [r["stage"].replace("*", "") for r in rows[:5]] == [
        "trained",
        "pruned -50%",
        "pruned -50% + fine-tuned",
        "pruned -80%",
        "pruned -80% + fine-tuned",
    ]
    assert {r["run"] for r in rows} == {"dwd", "plain"} and len(rows) == 10
    full = rows[0]["params"]
    for r in rows:
        assert r["images"] == 4 and 0.0 <= r["mae"] <= 1.0 and 0.0 <= r["max_f"] <= 1.0
        for budget, floor in ((0.5, 0.4), (0.8, 0.0)):
            if r["stage"].startswith(f"pruned -{budget:.0%}"):
                # met, or marked "*": the reference rule would have emptied a unit first
                met = r["params"] <= full * (1 - budget)
                assert met == ("*" not in r["stage"]), r
                assert r["params"] > full * floor
    assert rows[5]["params"] == full  # both runs start from the same full net
    for run in ("dwd", "plain"):
        share = results["gamma_share"][run]
        assert [s["epoch"] for s in share] == [0, 1, 2]
        assert share[0]["median"] == 1.0  # BN gammas start at 1
    assert results["gamma_share"]["dwd"][-1]["median"] < 1.0  # gammas moved
    for name in ("gamma_hist.png", "gamma_share.png", "results.md", "gamma_share.json"):
        assert (out / name).stat().st_size > 0

    # Resume: forget the last stage; a re-run redoes only that one.
    trained = out / "train-dwd" / "trained.pt"
    stamp = trained.stat().st_mtime_ns
    state = json.loads((out / "state.json").read_text())
    del state["stages"]["ft-plain-0.8"]
    (out / "state.json").write_text(json.dumps(state))
    (out / "ft-plain-0.8" / "last.pt").unlink()
    assert dwd_study.main([*argv, "--threads", "1"]) == 0
    assert trained.stat().st_mtime_ns == stamp
    assert "ft-plain-0.8" in json.loads((out / "state.json").read_text())["stages"]

    # Other settings in the same folder are refused instead of mixed in.
    with pytest.raises(SystemExit, match="other settings"):
        dwd_study.main([*argv, "--epochs", "3"])


def test_prune_to_budget_meets_a_budget_or_returns_the_deepest_usable_cut() -> None:
    import torch

    from sod100k.models import create_model
    from sod100k.models.flops import count_params
    from sod100k.train.prune import PruneError, prune_model

    torch.manual_seed(0)
    model = create_model("csnet-l-x1")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.1, 1.0)
    full = count_params(model)
    pruned, threshold, met = dwd_study.prune_to_budget(model, 0.5)
    assert met and count_params(pruned) <= 0.5 * full
    gammas = sorted({float(g) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)
                     for g in m.weight.detach().abs()})  # fmt: skip
    # the next smaller threshold (one gamma fewer removed) no longer meets the budget
    lower = max(g for g in gammas if g < threshold)
    assert count_params(prune_model(model, lower).model) > 0.5 * full

    pruned, threshold, met = dwd_study.prune_to_budget(model, 0.01)  # far beyond any unit
    assert not met and count_params(pruned) > 0.01 * full
    with pytest.raises(PruneError):  # the next larger threshold empties a unit
        prune_model(model, min(g for g in gammas if g > threshold))
