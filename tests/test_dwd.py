"""Dynamic weight decay equals its formula, in value and gradient."""

import torch

from sod100k.models.config import unpruned
from sod100k.models.csnet import CSNet
from sod100k.train.dwd import DynamicWeightDecay, branch_flop_weights


def tiny_net() -> CSNet:
    torch.manual_seed(0)
    return CSNet(unpruned(4)).train()


def test_flop_weights_follow_the_reference_schedule():
    w = branch_flop_weights(tiny_net(), expand=2.0)
    assert w[0] == [16.0, 8.0]  # stem: level 0 of 4, two branches
    assert w[3 * 4] == [8.0, 4.0]  # first unit of stage 2
    assert w[-1] == [1.0]  # last unit of stage 4: one branch at the lowest level


def test_default_flop_weights_are_all_one_as_in_the_reference_training_config():
    w = branch_flop_weights(tiny_net())
    assert {f for unit in w for f in unit} == {1.0}


def test_penalty_value_and_gradient_match_the_formula():
    net = tiny_net()
    dwd = DynamicWeightDecay(net, coefficient=3.0)
    outputs = {}
    hooks = [
        act.register_forward_hook(lambda m, i, o: outputs.__setitem__(id(m), o.detach()))
        for unit in net.branch_units()
        for act in unit.acts.values()
    ]
    act_of = {id(u.norms[k]): id(u.acts[k]) for u in net.branch_units() for k in u.norms}
    net(torch.randn(2, 3, 32, 32))
    for h in hooks:
        h.remove()
    expected = sum(
        0.5 * f * (outputs[act_of[id(n)]].mean(dim=(2, 3)).abs().mean(0) * n.weight**2).sum()
        for n, f in dwd.terms
    )
    value = dwd.penalty()
    torch.testing.assert_close(value, 3.0 * expected)
    value.backward()
    norm, f = dwd.terms[5]
    gap = outputs[act_of[id(norm)]].mean(dim=(2, 3)).abs().mean(0)
    torch.testing.assert_close(norm.weight.grad, 3.0 * f * gap * norm.weight.detach())


def test_penalty_keeps_no_state_between_steps():
    net = tiny_net()
    dwd = DynamicWeightDecay(net)
    net(torch.randn(1, 3, 32, 32))
    dwd.penalty()
    assert float(dwd.penalty()) == 0.0
    with torch.no_grad():
        net(torch.randn(1, 3, 32, 32))
    assert float(dwd.penalty()) == 0.0
