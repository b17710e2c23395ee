"""Training runs end to end on a tiny net and tiny images; resume continues exactly."""

import csv
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sod100k.checkpoints.loading import save_model
from sod100k.checkpoints.native import read_checkpoint
from sod100k.cli import main
from sod100k.models.config import unpruned
from sod100k.models.csnet import CSNet
from sod100k.train.config import build_config

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def tiny_init(tmp_path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    save_model(path, CSNet(unpruned(4)))
    return path


def train_args(data: Path, init: Path, out: Path, epochs: int) -> list[str]:
    return [
        "train", "--init", str(init), "--data", str(data), "--val", str(data),
        "--out", str(out), "--size", "32", "--batch-size", "4", "--epochs", str(epochs),
        "--workers", "0", "--milestones", "1",
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def state(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["state_dict"]


def test_train_writes_checkpoints_and_logs(tiny_data, tiny_init, tmp_path):
    out = tmp_path / "run"
    assert main(train_args(tiny_data, tiny_init, out, 2)) == 0
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    lines = (out / "metrics.csv").read_text().splitlines()
    assert lines[0].split(",")[:5] == ["epoch", "train_loss", "train_bce", "train_dwd", "lr"]
    assert len(lines) == 3
    steps = list(csv.DictReader((out / "steps.csv").open()))
    # 8 images at batch 4: two optimizer steps per epoch, numbered globally.
    assert [(int(r["step"]), int(r["epoch"])) for r in steps] == [(1, 1), (2, 1), (3, 2), (4, 2)]
    assert all(float(r["loss"]) == pytest.approx(float(r["bce"]) + float(r["dwd"])) for r in steps)
    assert any((out / "tensorboard").iterdir())
    meta = read_checkpoint(out / "last.pt")["metadata"]
    assert meta["epoch"] == 2 and 0.0 <= meta["val_mae"] <= 1.0 and meta["train_dwd"] > 0


def test_resume_continues_exactly(tiny_data, tiny_init, tmp_path):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert main(train_args(tiny_data, tiny_init, straight, 2)) == 0
    assert main(train_args(tiny_data, tiny_init, interrupted, 1)) == 0
    assert main(["train", "--resume", str(interrupted), "--epochs", "2"]) == 0
    a, b = state(straight / "last.pt"), state(interrupted / "last.pt")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert main(train_args(tiny_data, tiny_init, straight, 2)) == 2  # never overwrites a run


def test_resume_after_a_kill(tiny_data, tiny_init, tmp_path):
    """Kill a training process after its first checkpoint; resume finishes the run."""
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    cmd = [sys.executable, "-m", "sod100k", *train_args(tiny_data, tiny_init, out, 50)]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300  # generous: CI machines can be loaded
        while time.monotonic() < deadline:
            if (out / "last.pt").exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        proc.kill()
    finally:
        proc.wait()
    done = read_checkpoint(out / "last.pt")["metadata"]["epoch"]
    assert main(["train", "--resume", str(out), "--epochs", str(done + 1)]) == 0
    assert read_checkpoint(out / "last.pt")["metadata"]["epoch"] == done + 1


def test_finetune_from_a_pruned_checkpoint(tiny_data, tiny_init, tmp_path):
    pruned = tmp_path / "pruned.pt"
    assert main(["prune", str(tiny_init), "--out", str(pruned)]) == 0
    out = tmp_path / "ft"
    args = ["finetune", str(pruned), "--data", str(tiny_data), "--out", str(out)]
    args += ["--size", "32", "--batch-size", "4", "--epochs", "1", "--workers", "0"]
    assert main(args) == 0
    extra = read_checkpoint(out / "last.pt")["extra"]
    assert tuple(extra["train_config"]["milestones"]) == (50, 100)
    assert extra["train_config"]["sparsity"] == "none"


def test_bn_recalibration_changes_only_running_statistics(tiny_data, tiny_init, tmp_path):
    out = tmp_path / "recal"
    args = ["finetune", str(tiny_init), "--data", str(tiny_data), "--out", str(out)]
    args += ["--size", "32", "--batch-size", "4", "--workers", "0", "--bn-recalibrate"]
    assert main([*args, "--epochs", "1"]) == 0
    before, after = state(tiny_init), state(out / "last.pt")
    stats = [k for k in before if k.endswith(("running_mean", "running_var"))]
    assert all(not torch.equal(before[k], after[k]) for k in stats)
    others = [k for k in before if k not in stats and not k.endswith("num_batches_tracked")]
    assert all(torch.equal(before[k], after[k]) for k in others)


def test_bn_recalibration_runs_the_reference_epochs():
    cfg = build_config("csnet", {"data": "d", "out": "o", "bn_recalibrate": True}, finetune=True)
    assert cfg.epochs == 20 and cfg.bn_recalibrate and not cfg.dwd  # FINETUNE.SOLVER


def test_two_process_ddp_matches_across_ranks(tiny_data, tiny_init, tmp_path):
    if shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists():
        pytest.fail("torchrun is not installed next to this Python")
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(free_port()), "-m", "sod100k",
        *train_args(tiny_data, tiny_init, out, 1),
    ]  # fmt: skip
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len((out / "metrics.csv").read_text().splitlines()) == 2


def test_training_skips_unreadable_pairs_and_names_them(tiny_data, tiny_init, tmp_path, caplog):
    (tiny_data / "images" / "03.jpg").write_bytes(b"not a jpeg")  # corrupt image
    mask = tiny_data / "masks" / "05.png"
    mask.write_bytes(mask.read_bytes()[:40])  # truncated mask
    out = tmp_path / "run"
    with caplog.at_level("WARNING"):
        assert main(train_args(tiny_data, tiny_init, out, 1)) == 0
    assert "03.jpg" in caplog.text and "05.png" in caplog.text
    meta = read_checkpoint(out / "last.pt")["metadata"]
    assert 0.0 <= meta["val_mae"] <= 1.0  # validation skipped them too
    steps = list(csv.DictReader((out / "steps.csv").open()))
    assert len(steps) == 2 and all(float(r["bce"]) > 0 for r in steps)
