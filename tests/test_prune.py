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


def _gapped_net() -> CSNet:
    """A width-8 net whose expand gammas are ~0.5 except 1/3 of them at ~1e-9 (a gap of
    ~8 decades); the head's gammas stay at 1."""
    torch.manual_seed(0)
    net = CSNet(unpruned(8))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for block in net.blocks():
            for norm in block.expand.norms.values():
                live = torch.rand(norm.num_features, generator=gen) * 0.5 + 0.25
                dead = torch.rand(norm.num_features, generator=gen) * 1e-9
                norm.weight.copy_(torch.where(torch.arange(norm.num_features) % 3 == 1, dead, live))
    return net.eval()


def test_natural_gap_is_the_widest_empty_log_interval_of_the_expand_gammas():
    from sod100k.train.prune import expand_gammas, natural_gap

    net = _gapped_net()
    g = expand_gammas(net)
    gap = natural_gap(net)
    dead = g[g < 1e-6]
    assert gap.lower == pytest.approx(float(dead.max()), rel=1e-6)
    assert gap.upper == pytest.approx(float(g[g > 1e-6].min()), rel=1e-6)
    assert gap.threshold == pytest.approx((gap.lower * gap.upper) ** 0.5, rel=1e-6)
    assert gap.below == len(dead) and gap.total == len(g) and gap.decades > 7
    result = prune_model(net, gap.threshold)
    assert sum(sum(u.out_channels) for u in result.config.units) == len(g) - len(dead)


def test_natural_gap_counts_exact_zeros_at_the_smallest_float32():
    from sod100k.train.prune import TINIEST, natural_gap

    net = _gapped_net()
    with torch.no_grad():
        for block in net.blocks():
            for norm in block.expand.norms.values():
                norm.weight[norm.weight < 1e-6] = 0.0
    gap = natural_gap(net)
    assert gap.lower == pytest.approx(TINIEST) and gap.decades > 40


def test_prune_to_budget_meets_a_budget_or_returns_the_deepest_usable_cut():
    from sod100k.train.prune import prune_to_budget

    torch.manual_seed(0)
    model = CSNet(unpruned(8))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.1, 1.0)
    full = count_params(model)
    cut = prune_to_budget(model, 0.5)
    assert cut.met and count_params(cut.result.model) <= 0.5 * full
    gammas = sorted({float(g) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)
                     for g in m.weight.detach().abs()})  # fmt: skip
    # the next smaller threshold (one gamma fewer removed) no longer meets the budget
    lower = max(g for g in gammas if g < cut.threshold)
    assert count_params(prune_model(model, lower).model) > 0.5 * full

    deep = prune_to_budget(model, 0.99)  # far beyond what leaves every unit a channel
    assert not deep.met and count_params(deep.result.model) > 0.01 * full
    with pytest.raises(PruneError):  # the next larger threshold empties a unit
        prune_model(model, min(g for g in gammas if g > deep.threshold))
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        prune_to_budget(model, 1.0)


def test_bn_reestimation_gives_the_plain_average_of_the_batch_statistics():
    from sod100k.train.bn_stats import reestimate_bn

    torch.manual_seed(0)
    net = CSNet(unpruned(4)).eval()
    first = net.blocks()[0].expand.norms["0"]
    seen = []
    hook = first.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    batches = [torch.randn(2, 3, 32, 32) + i for i in range(3)]
    params = {k: v.clone() for k, v in net.named_parameters()}
    assert reestimate_bn(net, batches) == 3
    hook.remove()
    means = torch.stack([x.mean(dim=(0, 2, 3)) for x in seen])
    torch.testing.assert_close(first.running_mean, means.mean(0))
    variances = torch.stack([x.var(dim=(0, 2, 3), unbiased=True) for x in seen])
    torch.testing.assert_close(first.running_var, variances.mean(0))
    assert not net.training and first.momentum == 0.1
    assert all(torch.equal(v, params[k]) for k, v in net.named_parameters())
    with pytest.raises(ValueError, match="no batches"):
        reestimate_bn(net, [])
