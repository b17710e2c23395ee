"""Training memory: activation checkpointing changes nothing but memory, and the peak is
logged."""

from __future__ import annotations

import contextlib
import copy
import csv
from pathlib import Path

import pytest
import torch

from sod100k.checkpoints.native import read_checkpoint
from sod100k.cli import main
from sod100k.models import create_model
from sod100k.models.config import ConfigError
from sod100k.train import memory
from sod100k.train.memory import enable_activation_checkpointing, peak_rss_bytes
from test_train_step import _step as adam_steps


def _steps(model: torch.nn.Module, dtype: torch.dtype):
    """Losses, gradients and the final state (BatchNorm buffers included) of two trainer
    steps (channels-last StepLoss with DWD, Adam) on a fixed batch."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 48, 32, generator=g, dtype=dtype)
    y = torch.rand(2, 1, 48, 32, generator=g, dtype=dtype)
    losses, grads, _ = adam_steps(model, x, y, channels_last=True)
    return losses, grads, {k: v.clone() for k, v in model.state_dict().items()}


def _plain_and_checkpointed(dtype: torch.dtype):
    torch.manual_seed(0)
    model = create_model("csnet-l-x1").to(dtype).train()
    checkpointed = copy.deepcopy(model)
    assert enable_activation_checkpointing(checkpointed) == len(model.blocks()) + 1
    return _steps(model, dtype), _steps(checkpointed, dtype)


def test_checkpointed_steps_are_the_plain_steps_bit_for_bit() -> None:
    """Same operators on the same inputs, in the trainer's float32: losses, every
    gradient, the parameters after Adam and the BatchNorm running statistics and
    counters are identical."""
    (loss_a, grad_a, state_a), (loss_b, grad_b, state_b) = _plain_and_checkpointed(torch.float32)
    for a, b in zip(loss_a, loss_b, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert loss_a[0][2] > 0  # the DWD penalty is part of the loss
    for step_a, step_b in zip(grad_a, grad_b, strict=True):
        for name, g in step_a.items():
            torch.testing.assert_close(g, step_b[name], rtol=0, atol=0, msg=name)
    assert any(k.endswith("running_var") for k in state_a)
    for key, value in state_a.items():
        torch.testing.assert_close(value, state_b[key], rtol=0, atol=0, msg=key)
    counters = [v for k, v in state_b.items() if k.endswith("num_batches_tracked")]
    assert counters and all(int(c) == 2 for c in counters)  # one update per step


def test_without_the_guard_the_recomputation_would_update_batchnorm_twice(monkeypatch) -> None:
    """The comparison above can fail: a recomputation that runs BatchNorm as in training
    moves the running statistics a second time and counts every batch twice."""
    monkeypatch.setattr(memory, "batchnorm_statistics_frozen", lambda _m: contextlib.nullcontext())
    (_, grad_a, state_a), (_, grad_b, state_b) = _plain_and_checkpointed(torch.float32)
    for name, g in grad_a[0].items():  # the first step's gradients do not see it ...
        torch.testing.assert_close(g, grad_b[0][name], rtol=0, atol=0, msg=name)
    counters = [v for k, v in state_b.items() if k.endswith("num_batches_tracked")]
    assert all(int(c) == 4 for c in counters)  # ... the statistics do
    key = "stages.0.0.expand.norms.0.running_mean"
    assert not torch.equal(state_a[key], state_b[key])


def test_blocks_are_recomputed_only_in_training_with_gradients() -> None:
    model = create_model("csnet-l-x1").train()
    enable_activation_checkpointing(model)
    calls = []
    model.blocks()[3].expand.register_forward_pre_hook(lambda *_: calls.append(1))
    x = torch.randn(1, 3, 32, 32)
    model(x).sum().backward()
    assert len(calls) == 2  # the forward pass and its recomputation
    calls.clear()
    with torch.no_grad():
        model(x)
    model.eval()
    model(x)
    assert len(calls) == 2  # once each: nothing to recompute without a backward pass


def test_other_architectures_name_the_option() -> None:
    with pytest.raises(ConfigError, match="checkpoint_activations"):
        enable_activation_checkpointing(torch.nn.Conv2d(3, 1, 1))


def test_peak_rss_is_the_kernels_high_water_mark() -> None:
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("no /proc on this system")
    line = next(x for x in status.read_text().splitlines() if x.startswith("VmHWM:"))
    high_water = int(line.split()[1]) * 1024
    assert abs(peak_rss_bytes() - high_water) <= 0.05 * high_water  # getrusage lags a little


def test_train_cli_with_checkpointing_trains_the_same_net(tiny_data, tmp_path, capsys) -> None:
    """``--checkpoint-activations`` end to end: the same checkpoint as without it, and
    the peak memory in metrics.csv and on the terminal."""
    runs = {}
    for flag in ("--no-checkpoint-activations", "--checkpoint-activations"):
        out = tmp_path / flag.strip("-")
        args = [
            "train", "--model", "csnet-l-x1", "--data", str(tiny_data), "--out", str(out),
            "--size", "32", "--batch-size", "4", "--epochs", "1", "--workers", "0", flag,
        ]  # fmt: skip
        assert main(args) == 0
        runs[flag] = read_checkpoint(out / "last.pt")
        [row] = list(csv.DictReader((out / "metrics.csv").open()))
        assert 0.05 < float(row["peak_rss_gb"]) < 100
        assert "peak memory (resident, main process):" in capsys.readouterr().out
    plain, checkpointed = runs.values()
    assert checkpointed["extra"]["train_config"]["checkpoint_activations"] is True
    for key, value in plain["state_dict"].items():
        torch.testing.assert_close(value, checkpointed["state_dict"][key], rtol=0, atol=0)
