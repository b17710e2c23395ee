"""benchmarks/bf16_emulated.py: its rounding is bf16's, and the emulation leaves no trace."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bf16_emulated import emulate_bf16, to_bf16


def test_to_bf16_rounds_to_nearest_even() -> None:
    ulp = 2.0**-7  # bf16 keeps 7 fraction bits: the spacing of bf16 numbers in [1, 2)
    x = torch.tensor([1 + ulp / 2, 1 + 3 * ulp / 2, 1 + 0.6 * ulp, -(1 + ulp / 2)])
    assert to_bf16(x).tolist() == [1.0, 1 + 2 * ulp, 1 + ulp, -1.0]
    assert to_bf16(x).dtype == torch.float32


def test_emulation_rounds_between_layers_and_is_undone() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.PReLU(4), nn.Conv2d(4, 2, 1)).eval()
    x = torch.randn(1, 3, 8, 8)
    conv1, act, conv2 = net
    weights = [conv1.weight.clone(), conv2.weight.clone()]
    with torch.no_grad():
        fp32 = net(x)
        with emulate_bf16(net):
            emulated = net(x)
            assert torch.equal(conv1.weight, to_bf16(weights[0]))
        # What the emulation should compute: bf16 storage, fp32 arithmetic.
        y = to_bf16(nn.functional.conv2d(to_bf16(x), to_bf16(weights[0]), conv1.bias, padding=1))
        y = to_bf16(act(y))
        expected = to_bf16(nn.functional.conv2d(y, to_bf16(weights[1]), conv2.bias))
        assert torch.equal(emulated, expected)
        assert not torch.equal(emulated, fp32)
        assert torch.equal(net(x), fp32)
    assert torch.equal(conv1.weight, weights[0]) and torch.equal(conv2.weight, weights[1])
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
