"""Pruning dead channels leaves the function unchanged and yields a loadable checkpoint."""

import pytest
import torch

from sod100k.checkpoints.loading import load_model, save_model
from sod100k.models.config import unpruned
from sod100k.models.csnet import CSNet
from sod100k.models.flops import count_params
from sod100k.train.prune import prune_model


def kill(norm, mask: torch.Tensor) -> None:
    with torch.no_grad():
        norm.weight[mask] = 0.0
        norm.bias[mask] = 0.0


def randomised_net(seed: int, p_dead: float) -> CSNet:
    """A width-8 CSNet with data-calibrated BN statistics, random BN shifts and a random
    set of channels whose gamma and beta are zero."""
    torch.manual_seed(seed)
    net = CSNet(unpruned(8))
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
            with torch.no_grad():
                m.bias.uniform_(-0.5, 0.5)
    with torch.no_grad():
        net.train()(torch.randn(4, 3, 32, 32))
    for block in net.blocks():
        for key, c in enumerate(block.expand.out_channels):
            if c == 0:
                continue
            dead = torch.rand(c) < p_dead
            for unit in block.units:
                kill(unit.norms[str(key)], dead)
    for norm in net.head.fuse.norms.values():
        kill(norm, torch.rand(norm.num_features) < p_dead)
    for ms in net.head.multiscale.values():
        kill(ms.norm, torch.rand(ms.norm.num_features) < p_dead)
    kill(net.head.merge.norms["0"], torch.rand(net.head.merge.norms["0"].num_features) < p_dead)
    return net.eval()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_removing_zero_channels_keeps_outputs(seed):
    net = randomised_net(seed, p_dead=0.4)
    pruned = prune_model(net).model.eval()
    assert count_params(pruned) < count_params(net)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), net(x), rtol=1e-4, atol=1e-5)


def test_live_channels_are_all_kept():
    net = CSNet(unpruned(4)).eval()
    result = prune_model(net)
    assert result.config.units == net.config.units
    assert result.config.head == net.config.head


def test_pruned_checkpoint_loads_with_load_model(tmp_path):
    net = randomised_net(3, p_dead=0.5)
    pruned = prune_model(net).model.eval()
    path = tmp_path / "pruned.pt"
    save_model(path, pruned)
    loaded = load_model(weights=path)
    assert loaded.config == pruned.config
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), pruned(x))


def test_prune_cli_writes_a_smaller_checkpoint(tmp_path, capsys):
    from sod100k.cli import main

    src, out = tmp_path / "trained.pt", tmp_path / "pruned.pt"
    save_model(src, randomised_net(4, p_dead=0.5))
    assert main(["prune", str(src), "--out", str(out)]) == 0
    before, after = capsys.readouterr().out.splitlines()[:2]
    assert before.split()[2] != after.split()[2]
    assert count_params(load_model(weights=out)) < count_params(load_model(weights=src))
    assert main(["prune", str(src), "--out", str(out)]) == 2  # never overwrites silently
