"""``sod100k prune``: --at-gap, --budget, --recalibrate-bn and --report."""

from __future__ import annotations

import pytest
import torch

from sod100k.checkpoints.loading import load_model, save_model
from sod100k.checkpoints.native import read_checkpoint
from sod100k.cli import main
from sod100k.models.flops import count_params
from sod100k.train.prune import expand_gammas, natural_gap
from test_prune import _gapped_net


@pytest.fixture
def gapped(tmp_path):
    path = tmp_path / "trained.pt"
    save_model(path, _gapped_net())
    return path


def test_at_gap_cuts_in_the_widest_gap_and_says_so(gapped, tmp_path, capsys):
    out = tmp_path / "pruned.pt"
    assert main(["prune", str(gapped), "--at-gap", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    gap = natural_gap(load_model(weights=gapped))
    assert f"threshold {gap.threshold:.3g} removes {gap.below} of {gap.total}" in text
    pruned = load_model(weights=out)
    assert len(expand_gammas(pruned)) == gap.total - gap.below
    assert float(expand_gammas(pruned).min()) > 1e-3
    meta = read_checkpoint(out)["metadata"]
    assert meta["cut"] == "gap" and meta["threshold"] == pytest.approx(gap.threshold)


def test_budget_removes_at_least_that_share(gapped, tmp_path, capsys):
    out = tmp_path / "pruned.pt"
    assert main(["prune", str(gapped), "--budget", "0.5", "--out", str(out)]) == 0
    full = count_params(load_model(weights=gapped))
    assert count_params(load_model(weights=out)) <= 0.5 * full
    assert "budget -50%: threshold" in capsys.readouterr().out
    assert main(["prune", str(gapped), "--budget", "1.5", "--out", str(tmp_path / "x.pt")]) == 2
    assert "in [0, 1)" in capsys.readouterr().err
    two = ["--budget", "0.3", "0.5", "--out", str(tmp_path / "y.pt")]
    assert main(["prune", str(gapped), *two]) == 2  # one budget when writing a model


def test_recalibrate_bn_changes_only_the_running_statistics(gapped, tiny_data, tmp_path, capsys):
    plain, recal = tmp_path / "plain.pt", tmp_path / "recal.pt"
    assert main(["prune", str(gapped), "--at-gap", "--out", str(plain)]) == 0
    args = ["prune", str(gapped), "--at-gap", "--out", str(recal), "--recalibrate-bn"]
    args += [str(tiny_data), "--recalibrate-batches", "2", "--batch-size", "4", "--size", "32"]
    assert main(args) == 0
    assert "re-estimated BatchNorm statistics on 2 batch(es)" in capsys.readouterr().out
    a, b = read_checkpoint(plain), read_checkpoint(recal)
    stats = [k for k in a["state_dict"] if k.endswith(("running_mean", "running_var"))]
    assert all(not torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in stats)
    rest = [k for k in a["state_dict"] if k not in stats and "num_batches" not in k]
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in rest)
    assert b["metadata"]["bn_reestimated"]["batches"] == 2


def test_recalibrate_bn_on_an_empty_folder_is_a_clear_error(gapped, tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "masks").mkdir()
    args = ["prune", str(gapped), "--out", str(tmp_path / "p.pt"), "--recalibrate-bn", str(empty)]
    assert main(args) == 2
    assert str(empty) in capsys.readouterr().err
    assert not (tmp_path / "p.pt").exists()


def test_report_prints_the_histogram_and_every_cut_and_writes_no_model(gapped, tmp_path, capsys):
    plot = tmp_path / "hist.png"
    assert main(["prune", str(gapped), "--report", "--plot", str(plot)]) == 0
    text = capsys.readouterr().out
    net = load_model(weights=gapped)
    gap = natural_gap(net)
    assert f"{gap.total} expand gammas" in text and "[1e-10, 1e-09)" in text
    for label in ("1e-20", "gap (", "-30%", "-45%", "-55%", "-65%"):
        assert label in text, label
    full = count_params(net)
    assert f"params {full:,} (100.0%)" in text  # nothing is below 1e-20
    assert plot.stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hist.png", "trained.pt"]
    assert main(["prune", str(gapped), "--report", "--out", str(tmp_path / "o.pt")]) == 2
