"""benchmarks/dwd_study.py: the function-preserving move, and the whole study end to end
in its --smoke configuration with its resumption."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import dwd_study
import dwd_study_report
from sod100k.models import create_model
from sod100k.train.bn_stats import reestimate_bn
from sod100k.train.init import init_batchnorm


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


def test_the_move_reaches_the_targets_and_keeps_the_eval_logits():
    torch.manual_seed(0)
    net = create_model("csnet-l-x1").double()
    init_batchnorm(net, "uniform", seed=0)
    x = torch.randn(8, 3, 48, 48, dtype=torch.float64)
    reestimate_bn(net, [x])
    before = net.eval()(x)
    s = dwd_study.Settings()
    scales = dwd_study.move_to_operating_point(net, s)
    torch.testing.assert_close(net.eval()(x), before, rtol=1e-9, atol=1e-9)
    medians = dwd_study.variance_medians(net)
    for kind, target in zip(dwd_study.KINDS, s.target_var, strict=True):
        assert medians[kind] == pytest.approx(target, rel=0.05), kind  # the stem aside
    gammas = np.concatenate(list(dwd_study.gamma_arrays(net).values()))
    assert np.median(gammas) == pytest.approx(s.target_gamma, rel=1e-3)
    assert 0 < scales["c_gamma"] < 1 and all(0 < c < 1 for c in scales["conv_scale"].values())


def test_batches_are_the_same_whenever_asked_for(tmp_path):
    data = _pairs(tmp_path / "tr", 10, 0)
    s = dwd_study.Settings(size=32, batch=4)
    a, b = dwd_study.Batches(str(data), s), dwd_study.Batches(str(data), s)
    for step in (0, 1, 3, 2):  # out of order, across an epoch boundary (2 batches/epoch)
        xa, ya = a("arms", step)
        xb, yb = b("arms", step)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(a("arms", 0)[0], a("arms", 1)[0])
    assert not torch.equal(a("arms", 0)[0], a("warmup", 0)[0])


def test_processes_sharing_a_study_keep_each_others_stages(tmp_path):
    """Two ``State`` objects on one folder (two ``--arm`` processes): neither overwrites
    what the other finished; other settings are still refused."""
    s = dwd_study.Settings()
    a, b = dwd_study.State(tmp_path, s), dwd_study.State(tmp_path, s)
    a.finish("train-dwd", {"x": 1})
    b.finish("train-plain", {"x": 2})  # b never saw train-dwd in memory
    a.finish("train-slim", {"x": 3})
    on_disk = json.loads((tmp_path / "state.json").read_text())
    assert set(on_disk["stages"]) == {"train-dwd", "train-plain", "train-slim"}
    assert len(on_disk["launches"]) == 2
    assert b.done("train-slim") and b.get("train-slim") == {"x": 3}
    with pytest.raises(SystemExit, match="other settings"):
        dwd_study.State(tmp_path, dwd_study.Settings(steps=3))


def test_a_job_runs_in_one_process_at_a_time(tmp_path):
    state = dwd_study.State(tmp_path, dwd_study.Settings())
    events: list[str] = []
    holding = threading.Event()

    def other() -> None:
        holding.wait()
        with dwd_study.State(tmp_path, dwd_study.Settings()).exclusive("train-dwd"):
            events.append("other")

    t = threading.Thread(target=other)
    t.start()
    with state.exclusive("train-dwd"):
        holding.set()
        time.sleep(0.3)  # the other thread is blocked on the lock meanwhile
        events.append("first")
    t.join(timeout=10)
    assert events == ["first", "other"]


def test_missing_stages_names_what_a_finished_study_has():
    s = dwd_study.Settings(budgets=(0.5,), key_budget=0.5)
    stages = {name: {} for name in ("warmup", "move")}
    for arm in dwd_study.ARMS:
        for stage in ("train", "unpruned", "prune-{}-1e-20", "prune-{}-gap", "prune-{}--50%"):
            stages[stage.format(arm) if "{}" in stage else f"{stage}-{arm}"] = {}
    assert dwd_study.missing_stages(stages, s) == ["ft-dwd", "ft-plain", "ft-slim"]
    stages["prune-slim--50%"] = {"error": "would empty a unit"}  # no fine-tune without it
    stages |= {"ft-dwd": {}, "ft-plain": {}}
    assert dwd_study.missing_stages(stages, s) == []


@pytest.mark.slow
def test_smoke_study_runs_to_the_end_and_resumes(tmp_path: Path) -> None:
    data, ecssd, out = _pairs(tmp_path / "tr", 12, 0), _pairs(tmp_path / "ec", 4, 1), tmp_path / "o"
    argv = ["--smoke", "--out", str(out), "--data", str(data), "--ecssd", str(ecssd)]
    assert dwd_study.main([*argv, "--threads", "1"]) == 0

    state = json.loads((out / "state.json").read_text())
    stages = state["stages"]
    move = stages["move"]
    assert move["logits_after_move"]["eval_max_abs"] < 1e-3
    assert move["after"]["var_median"]["expand"] == pytest.approx(1.4e-6, rel=0.2)
    for arm in dwd_study.ARMS:
        records = stages[f"train-{arm}"]["records"]
        assert [r["step"] for r in records] == [2, 4, 6]
        assert all(0 <= r["below_1e-6"] <= 1 and r["curve"]["images"] == 3 for r in records)
        assert stages[f"train-{arm}"]["full"]["images"] == 4
        assert stages[f"train-{arm}"]["previous_step"] == 4
        for cut in ("1e-20", "gap", "-30%", "-45%", "-55%", "-65%"):
            assert f"prune-{arm}-{cut}" in stages
        gap = stages[f"prune-{arm}-gap"]
        assert gap["params"] <= stages[f"unpruned-{arm}"]["params"] and "full" in gap
        assert stages[f"ft-{arm}"]["full"]["images"] == 4
        assert (out / f"arm-{arm}" / "pruned-gap.pt").exists()
        with np.load(out / f"arm-{arm}" / "gammas.npz") as g:
            assert {"expand_0", "dw1_2", "dw2_6"} <= set(g.files)
    assert stages["train-slim"]["l1_strength"] == move["dwd_gradient_mean"] > 0
    # the arms saw the same batches: plain and slim differ only by the L1 term
    plain, slim = stages["train-plain"]["records"][0], stages["train-slim"]["records"][0]
    assert plain["penalty"] == 0 and slim["penalty"] > 0

    # Resume: forget the last stage; a re-run redoes only that one.
    trained = out / "arm-dwd" / "trained.pt"
    stamp = trained.stat().st_mtime_ns
    del state["stages"]["ft-slim"]
    (out / "state.json").write_text(json.dumps(state))
    (out / "ft-slim" / "last.pt").unlink()
    assert dwd_study.main([*argv, "--threads", "1"]) == 0
    assert trained.stat().st_mtime_ns == stamp
    assert "ft-slim" in json.loads((out / "state.json").read_text())["stages"]

    # The report: tables, figures, compact checkpoints that re-score to the recorded numbers.
    results, figures = tmp_path / "results", tmp_path / "img"
    argv_report = [str(out), "--results", str(results), "--figures", str(figures)]
    assert dwd_study_report.main([*argv_report, "--verify", str(ecssd)]) == 0
    payload = json.loads((results / "results.json").read_text())
    assert payload["verdict"]["outcome"] in ("reproduced", "not reproduced", "inconclusive")
    assert len(payload["rescored"]) == 12 and all(v["ok"] for v in payload["rescored"].values())
    for arm in dwd_study.ARMS:
        for name in ("trained", "pruned-gap", "pruned-55", "finetuned-55"):
            assert 0 < (results / f"{arm}-{name}.pt").stat().st_size < 1_000_000
    assert "| dwd | gap" in (results / "results.md").read_text()
    for name in ("gammas", "shares", "curve"):
        assert (figures / f"dwd-study-v2-{name}.png").stat().st_size > 0

    # Other settings in the same folder are refused instead of mixed in.
    with pytest.raises(SystemExit, match="other settings"):
        dwd_study.main([*argv, "--steps", "3"])


@pytest.mark.slow
def test_one_process_per_arm_finishes_the_study_together(tmp_path: Path) -> None:
    """``--arm``: three processes started at once into one ``--out`` share the warm-up
    (one runs it, the others wait), keep each other's stages, and the last marks the
    study finished with every stage a one-process run has."""
    data, ecssd, out = _pairs(tmp_path / "tr", 12, 0), _pairs(tmp_path / "ec", 4, 1), tmp_path / "o"
    script = Path(dwd_study.__file__)
    base = [sys.executable, str(script), "--smoke", "--out", str(out), "--threads", "1"]
    base += ["--data", str(data), "--ecssd", str(ecssd)]
    procs = [subprocess.Popen([*base, "--arm", arm]) for arm in dwd_study.ARMS]
    assert [p.wait(timeout=900) for p in procs] == [0, 0, 0]
    state = json.loads((out / "state.json").read_text())
    assert "finished" in state and len(state["launches"]) == 3
    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in state["settings"].items()}
    assert dwd_study.missing_stages(state["stages"], dwd_study.Settings(**settings)) == []
    results = tmp_path / "results"
    argv = [str(out), "--results", str(results), "--figures", str(tmp_path / "img")]
    assert dwd_study_report.main(argv) == 0
