"""Pruning dead channels leaves the function unchanged and yields a loadable checkpoint."""

import pytest
import torch

from sod100k.checkpoints.loading import load_model, save_model
from sod100k.models.config import unpruned
from sod100k.models.csnet import CSNet
from sod100k.models.flops import count_params
from sod100k.train.prune import PruneError, prune_model


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


def _stride2_next(net: CSNet) -> set[int]:
    """Blocks whose output feeds a stride-2 (3x3) expand."""
    return {i - 1 for i in range(1, len(net.blocks())) if net.config.stride_of(i) == 2}


def shifted_net(seed: int) -> CSNet:
    """Dead channels whose BN betas are not zero, placed where folding them is exact:
    whole backbone channels (all three gammas 0) feeding a 1x1 expand or the head's 1x1
    fuse, dead multiscale and merge channels; dead fuse channels keep beta 0."""
    torch.manual_seed(seed)
    net = randomised_net(seed, p_dead=0.0)
    skip = _stride2_next(net)
    with torch.no_grad():
        for b, block in enumerate(net.blocks()):
            if b in skip:
                continue
            for key, c in enumerate(block.expand.out_channels):
                dead = torch.rand(c) < 0.4
                for unit in block.units:
                    unit.norms[str(key)].weight[dead] = 0.0
        for ms in net.head.multiscale.values():
            ms.norm.weight[torch.rand(ms.norm.num_features) < 0.4] = 0.0
        merge = net.head.merge.norms["0"]
        merge.weight[torch.rand(merge.num_features) < 0.4] = 0.0
        for norm in net.head.fuse.norms.values():
            kill(norm, torch.rand(norm.num_features) < 0.4)
    return net.eval()


def test_exact_folding_keeps_eval_outputs_with_nonzero_betas():
    net = shifted_net(5)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = net(x)
        folded = prune_model(net, fold="exact")
        dropped = prune_model(net, fold="none")
        torch.testing.assert_close(folded.model.eval()(x), expected, rtol=1e-4, atol=1e-4)
        assert (dropped.model.eval()(x) - expected).abs().max() > 1e-2
    assert folded.folded_exact > 0 and folded.folded_approx == 0 and folded.dropped == 0
    assert dropped.dropped == folded.removed


def test_selection_follows_the_expand_gammas_only():
    torch.manual_seed(0)
    net = CSNet(unpruned(8)).eval()
    block = net.blocks()[2]
    with torch.no_grad():
        block.dw1.norms["0"].weight[:2] = 0.0  # dead depthwise gammas: channel stays
        block.dw2.norms["1"].weight[0] = 0.0
        block.expand.norms["1"].weight[1:3] = 0.0  # dead expand gammas: channel goes
    result = prune_model(net)
    assert result.config.units[2].out_channels == (4, 2)
    assert result.config.units[3].in_channels == (4, 2)
    dw1 = result.model.blocks()[2].dw1.norms["0"].weight
    assert torch.equal(dw1[:2], torch.zeros(2))  # kept as zeros, as the reference does


def test_a_whole_branch_can_die():
    net = randomised_net(6, p_dead=0.0)
    block = net.blocks()[5]
    for unit in block.units:
        kill(unit.norms["1"], torch.ones(8, dtype=torch.bool))
    result = prune_model(net)
    assert result.config.units[5].out_channels == (8, 0)
    assert result.config.units[6].in_channels == (8, 0)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(result.model.eval()(x), net(x), rtol=1e-4, atol=1e-5)


def test_a_dead_fuse_branch_drops_its_dilated_block():
    net = randomised_net(7, p_dead=0.0)
    kill(net.head.fuse.norms["1"], torch.ones(net.head.fuse.out_channels[1], dtype=torch.bool))
    result = prune_model(net, fold="exact")
    assert result.config.head.fuse_channels[1] == 0
    assert sum(result.config.head.dilation_channels[1]) == 0
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(result.model.eval()(x), net(x), rtol=1e-4, atol=1e-5)


def test_a_dead_unit_is_a_clear_error():
    net = CSNet(unpruned(4)).eval()
    with torch.no_grad():
        for norm in net.blocks()[3].expand.norms.values():
            norm.weight.zero_()
    with pytest.raises(PruneError, match=r"unit 3 \(stages.1.2\): all 4 channels"):
        prune_model(net)
