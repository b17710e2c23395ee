"""Pruning selects, slices and computes exactly as the reference code on its own fixture.

``../shared/parity/prune-csnet-x1.npz`` (see README-train.md there): the full x1 net with
40 % of the DWD-penalised gammas set to 0, pruned by the reference ``finetune_model`` /
``build_model_with_weight``.
"""

from __future__ import annotations

import json

import pytest
import torch

from conftest import load_npz
from sod100k.checkpoints.loading import load_model
from sod100k.checkpoints.reference import convert_key, layer_config_from_reference
from sod100k.models.csnet import CSNet
from sod100k.models.flops import count_params
from sod100k.train.prune import prune_model


@pytest.fixture(scope="module")
def fixture(parity_dir):
    return load_npz(parity_dir / "prune-csnet-x1.npz")


def zeroed_net(parity_dir, fixture) -> CSNet:
    """The reference's unpruned net: initial weights with the listed gammas set to 0."""
    net = load_model(weights=parity_dir / "train-csnet-x1-init")
    params = dict(net.named_parameters())
    with torch.no_grad():
        for name, channels in json.loads(str(fixture["zeroed_json"])).items():
            params[convert_key(name)][channels] = 0.0
    return net


def test_pruned_layer_config_and_size_equal_the_reference(parity_dir, fixture):
    net = zeroed_net(parity_dir, fixture)
    assert count_params(net) == int(fixture["params_before"]) == 210_985
    result = prune_model(net, 1e-20)
    expected = layer_config_from_reference(json.loads(str(fixture["layer_config_json"])))
    assert result.config.units == expected.units
    assert result.config.head == expected.head
    assert count_params(result.model) == int(fixture["params_after"]) == 105_841


def test_pruned_weights_equal_the_reference(parity_dir, fixture):
    pruned = prune_model(zeroed_net(parity_dir, fixture), 1e-20).model
    ours = pruned.state_dict()
    keys = [k.removeprefix("pruned/") for k in fixture if k.startswith("pruned/")]
    params = {convert_key(k) for k in keys} & {n for n, _ in pruned.named_parameters()}
    assert params == {n for n, _ in pruned.named_parameters()}
    for key in keys:
        name = convert_key(key)
        if name in params:  # buffers: the reference loses the BN running statistics
            expected = torch.from_numpy(fixture[f"pruned/{key}"])
            assert torch.equal(ours[name], expected), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pruned_train_mode_logits_equal_the_reference(parity_dir, fixture, dtype, one_thread):
    suffix, tol = ("", 2e-4) if dtype == torch.float32 else ("_f64", 1e-9)
    net = zeroed_net(parity_dir, fixture).to(dtype)
    pruned = prune_model(net, 1e-20).model
    x = torch.from_numpy(fixture["x"]).to(dtype)
    with torch.no_grad():
        before = net.train()(x)
        after = pruned.train()(x)
    for got, key in ((before, "logits_unpruned_train"), (after, "logits_train")):
        expected = torch.from_numpy(fixture[key + suffix]).to(dtype)
        assert float((got - expected).abs().max()) <= tol, key
