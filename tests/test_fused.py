"""The fused inference form computes the same logits as the eager CSNet."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sod100k.checkpoints.loading import load_model
from sod100k.infer.fused import FusedCSNet, fuse_csnet
from sod100k.models import CSNet, HeadConfig, LayerConfig, UnitConfig, unpruned
from sod100k.nn.goctconv import GOctConv, ScaledConv2d

TOL = 1e-4


def randomise_bn(model: CSNet, rng: np.random.Generator) -> None:
    """Non-trivial BN statistics and PReLU slopes, so that folding is really exercised."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, n)))
                m.bias.copy_(torch.from_numpy(rng.normal(0, 0.1, n)))
                m.running_mean.copy_(torch.from_numpy(rng.normal(0, 0.1, n)))
                m.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, n)))
            elif isinstance(m, torch.nn.PReLU):
                m.weight.copy_(torch.from_numpy(rng.uniform(0.0, 0.5, m.num_parameters)))
            elif isinstance(m, ScaledConv2d) or (isinstance(m, GOctConv) and m.single):
                m.weight.mul_(0.01)  # x100 convs: keep activations in a sane range


def random_pruned_config(rng: np.random.Generator, scales: int) -> LayerConfig:
    """A pruned-looking config: random widths, some branches and dilations at zero."""
    base = unpruned(8, split=tuple([1.0 / scales] * scales))
    outs = []
    for i, unit in enumerate(base.units):
        widths = [int(rng.integers(1, 9)) for _ in unit.out_channels]
        if len(widths) > 1:
            for k in range(len(widths)):
                if rng.random() < 0.3:
                    widths[k] = 0
            if i in base.tap_units or sum(widths) == 0:
                widths[0] = max(widths[0], 1)  # the head taps the first branch
        outs.append(tuple(widths))
    units = [UnitConfig((3,), outs[0])]
    units += [UnitConfig(outs[i - 1], outs[i]) for i in range(1, len(outs))]
    taps = tuple(outs[u][0] for u in base.tap_units)
    fuse = tuple(int(rng.integers(2, 6)) for _ in taps)
    dils = []
    for _ in taps:
        d = [int(rng.integers(0, 3)) for _ in base.head.dilations]
        d[int(rng.integers(0, len(d)))] = max(1, d[0])
        dils.append(tuple(d))
    head = HeadConfig(taps, fuse, tuple(dils), int(rng.integers(3, 8)))
    return LayerConfig(tuple(units), head, base.stage_depths)


def assert_same(eager: torch.nn.Module, fused: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.inference_mode():
        a, b = eager(x), fused(x)
    assert a.shape == b.shape
    assert (a - b).abs().max().item() < TOL


@pytest.mark.parametrize("name", ["csnet-L-x1", "csnet-L-x2"])
def test_fused_matches_reference_logits(name: str, parity_dir, request) -> None:
    weights = request.getfixturevalue("weights_x1" if name.endswith("x1") else "weights_x2")
    eager = load_model(weights=weights)
    fused = fuse_csnet(eager, merge_convs=name.endswith("x1"))  # both forms
    data = np.load(parity_dir / f"{name}.npz")
    x = torch.from_numpy(data["inputs"][:2])
    with torch.inference_mode():
        got = fused(x)[:, 0].numpy()
    assert np.abs(got - data["logits"][:2]).max() < TOL
    assert_same(eager, fused, x)
    assert_same(eager, fused, torch.randn(1, 3, 101, 77))  # sides not multiples of 16


@pytest.mark.parametrize("merge", [True, False], ids=["merged", "pairwise"])
@pytest.mark.parametrize("seed", range(6))
def test_fused_matches_eager_on_random_pruned_configs(seed: int, merge: bool) -> None:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    config = random_pruned_config(rng, scales=1 + seed % 3)  # 1 scale: plain strided convs
    eager = CSNet(config).eval()
    randomise_bn(eager, rng)
    fused = fuse_csnet(eager, merge_convs=merge)
    # Sides are multiples of 32: the eager net itself cannot run every pruned config on
    # other sizes (an absent finest branch makes its size ambiguous).
    assert_same(eager, fused, torch.randn(2, 3, 64, 96))


def test_fused_drops_zero_width_branches() -> None:
    rng = np.random.default_rng(1)
    config = random_pruned_config(rng, scales=3)
    fused = fuse_csnet(CSNet(config).eval())
    expected = sum(1 for u in config.units for c in u.out_channels if c > 0)
    dw = sum(len(d.branches) for stage in fused.stages for _, d in stage)
    assert dw == expected
    for stage in fused.stages:
        for expand, _ in stage:
            for conv in [*expand.direct.values(), *expand.pooled.values()]:
                assert conv.out_channels > 0 and conv.in_channels > 0


def test_fused_has_fewer_convolutions_and_no_batchnorm(weights_x2) -> None:
    eager = load_model(weights=weights_x2)
    fused = fuse_csnet(eager)
    assert isinstance(fused, FusedCSNet)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    # One conv per gOctConv (input, output) branch pair in the eager net; the fused net
    # merges the pairs that read the same input at its own resolution.
    eager_pairs = sum(
        sum(1 for c in u.in_channels if c) * sum(1 for c in u.out_channels if c)
        for u in eager.config.units
    )
    fused_convs = sum(
        len(expand.direct) + len(expand.pooled) for stage in fused.stages for expand, _ in stage
    )
    assert fused_convs < eager_pairs
    # fusing leaves the source model intact
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in eager.modules())


def test_fuse_rejects_other_models() -> None:
    with pytest.raises(TypeError, match="CSNet"):
        fuse_csnet(torch.nn.Conv2d(3, 1, 1))
