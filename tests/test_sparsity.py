"""Network slimming (L1 on BN gammas), the sparsity switch and the reference BN init."""

from __future__ import annotations

import pytest
import torch

from sod100k.models.config import unpruned
from sod100k.models.csnet import CSNet
from sod100k.train.config import build_config, read_toml
from sod100k.train.dwd import DynamicWeightDecay
from sod100k.train.init import init_batchnorm
from sod100k.train.loop import Trainer
from sod100k.train.sparsity import L1Sparsity, build_sparsity
from sod100k.train.step import StepLoss


def _gammas(model):
    return [n.weight for u in model.branch_units() for n in u.norms.values()]


def test_l1_gradient_on_the_gammas_is_strength_times_sign():
    torch.manual_seed(0)
    net = CSNet(unpruned(4))
    init_batchnorm(net, "uniform", seed=1)
    with torch.no_grad():
        net.blocks()[1].expand.norms["0"].weight[0] = -0.3  # a negative gamma too
    l1 = L1Sparsity(net, strength=2.5e-3)
    l1.penalty().backward()
    for g in _gammas(net):
        torch.testing.assert_close(g.grad, 2.5e-3 * torch.sign(g.detach()), rtol=0, atol=0)
    head = net.head.merge.norms["0"].weight
    assert head.grad is None  # the head is not penalised, as under DWD


def test_l1_covers_exactly_the_dwd_gammas():
    net = CSNet(unpruned(4))
    dwd = DynamicWeightDecay(net)
    assert [id(p) for p in L1Sparsity(net).gammas()] == [id(p) for p in dwd.gammas()]
    dwd.remove()


def test_dwd_selected_is_the_dynamic_weight_decay_unchanged():
    torch.manual_seed(0)
    net = CSNet(unpruned(4)).double()
    x, y = torch.randn(2, 3, 32, 32).double(), torch.rand(2, 1, 32, 32).double()
    direct = DynamicWeightDecay(net, 3.0, 1.0)
    _, _, expected = StepLoss(net, direct)(x, y)
    direct.remove()
    built = build_sparsity(net, "dwd", dwd_coefficient=3.0, dwd_expand=1.0, l1_strength=1e-4)
    assert isinstance(built, DynamicWeightDecay)
    _, _, got = StepLoss(net, built)(x, y)
    built.remove()
    assert got.item() == expected.item() > 0
    assert build_sparsity(net, "none", dwd_coefficient=3.0, dwd_expand=1.0, l1_strength=0) is None


def test_sparsity_option_and_its_legacy_spelling():
    base = {"data": "d", "out": "o"}
    assert build_config("csnet", base).sparsity == "dwd"
    assert (
        build_config("csnet", {**base, "sparsity": "l1", "l1_strength": 1e-5}).l1_strength == 1e-5
    )
    assert build_config("csnet", {**base, "dwd": False}).sparsity == "none"  # old checkpoints
    with pytest.raises(ValueError, match="sparsity must be one of"):
        build_config("csnet", {**base, "sparsity": "l2"})


def test_legacy_dwd_key_is_read_from_toml(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("dwd = false\n")
    assert read_toml(path) == {"dwd": False}
    assert build_config("csnet", {"data": "d", "out": "o"}, path).sparsity == "none"


def _trainer(tiny_data, tmp_path, **options) -> Trainer:
    overrides = {"data": str(tiny_data), "out": str(tmp_path / "run"), "model": "csnet-l-x1",
                 "size": 32, "batch_size": 4, "workers": 0, **options}  # fmt: skip
    return Trainer(build_config("csnet", overrides))


def test_l1_gammas_get_no_plain_weight_decay(tiny_data, tmp_path):
    trainer = _trainer(tiny_data, tmp_path, sparsity="l1")
    try:
        assert isinstance(trainer.sparsity, L1Sparsity)
        decayed, exempt = trainer.optimizer.param_groups
        assert exempt["weight_decay"] == 0.0 and decayed["weight_decay"] == 5e-3
        assert {id(p) for p in exempt["params"]} == {id(p) for p in trainer.sparsity.gammas()}
    finally:
        trainer.close()


def test_csnet_recipe_starts_gammas_from_seeded_uniform(tiny_data, tmp_path):
    bns = lambda m: [x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)]  # noqa: E731
    a = _trainer(tiny_data, tmp_path / "a", seed=3)
    b = _trainer(tiny_data, tmp_path / "b", seed=3)
    c = _trainer(tiny_data, tmp_path / "c", seed=4)
    ones = _trainer(tiny_data, tmp_path / "d", seed=3, bn_init="ones")
    try:
        assert a.cfg.bn_init == "uniform"
        ga = torch.cat([m.weight.detach() for m in bns(a.model)])
        assert len(bns(a.model)) > 60 and float(ga.min()) >= 0.0 and float(ga.max()) < 1.0
        assert 0.4 < float(ga.mean()) < 0.6  # U(0, 1)
        assert torch.equal(ga, torch.cat([m.weight.detach() for m in bns(b.model)]))
        assert not torch.equal(ga, torch.cat([m.weight.detach() for m in bns(c.model)]))
        assert all(m.bias.abs().max().item() == 0.0 for m in bns(a.model))
        assert all(bool((m.weight == 1).all()) for m in bns(ones.model))
        # only the gammas differ between the two modes: the convs are the same draws
        conv = a.model.blocks()[0].expand.conv.weight
        torch.testing.assert_close(conv, ones.model.blocks()[0].expand.conv.weight)
    finally:
        for t in (a, b, c, ones):
            t.close()


def test_a_net_started_from_init_keeps_its_gammas(tiny_data, tmp_path):
    from sod100k.checkpoints.loading import save_model

    net = CSNet(unpruned(4))
    with torch.no_grad():
        for g in _gammas(net):
            g.fill_(0.25)
    save_model(tmp_path / "init.pt", net)
    trainer = _trainer(tiny_data, tmp_path, init=str(tmp_path / "init.pt"), model=None)
    try:
        assert all(bool((g == 0.25).all()) for g in _gammas(trainer.model))
    finally:
        trainer.close()
