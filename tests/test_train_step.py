"""The fast training step (channels-last, torch.compile) computes what the eager NCHW step does."""

from __future__ import annotations

import copy

import pytest
import torch

from sod100k.models import create_model
from sod100k.models.config import ConfigError
from sod100k.train.config import TrainConfig
from sod100k.train.dwd import DynamicWeightDecay
from sod100k.train.step import StepLoss, use_channels_last


def _net_and_batch(dtype: torch.dtype = torch.float64):
    torch.manual_seed(0)
    model = create_model("csnet-l-x1").to(dtype).train()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 64, 64, generator=g, dtype=dtype)
    y = torch.rand(2, 1, 64, 64, generator=g, dtype=dtype)
    return model, x, y


def _step(model, x, y, steps: int = 2, **kwargs):
    """Losses and gradients of ``steps`` Adam steps through a :class:`StepLoss`."""
    dwd = DynamicWeightDecay(model)
    loss_fn = StepLoss(model, dwd, **kwargs)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=5e-3)
    losses, grads = [], []
    for _ in range(steps):
        loss, bce, penalty = loss_fn(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        losses.append(torch.stack([loss, bce, penalty]).detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        opt.step()
    dwd.remove()
    return losses, grads, dict(model.named_parameters())


def _assert_same(a, b, rtol: float, atol: float) -> None:
    (la, ga, pa), (lb, gb, pb) = a, b
    for x, y in zip(la, lb, strict=True):
        torch.testing.assert_close(x, y, rtol=rtol, atol=0)
    for step_a, step_b in zip(ga, gb, strict=True):
        for name, grad in step_a.items():
            torch.testing.assert_close(grad, step_b[name], rtol=rtol, atol=atol, msg=name)
    for name, p in pa.items():
        torch.testing.assert_close(p, pb[name], rtol=rtol, atol=atol, msg=name)


def test_channels_last_step_equals_eager_step_in_float64() -> None:
    model, x, y = _net_and_batch()
    fast = copy.deepcopy(model)
    eager = _step(model, x, y)
    result = _step(fast, x, y, channels_last=True)
    assert next(fast.parameters()).dim() == 1 or any(
        p.dim() == 4
        and p.is_contiguous(memory_format=torch.channels_last)
        and not p.is_contiguous()
        for p in fast.parameters()
    )
    assert eager[0][0][2] > 0  # the DWD penalty is part of the compared loss
    _assert_same(eager, result, rtol=1e-9, atol=1e-12)


def test_step_loss_is_the_plain_computation() -> None:
    """Independent of StepLoss: model output, BCE and DWD penalty added by hand."""
    model, x, y = _net_and_batch()
    dwd = DynamicWeightDecay(model)
    logits = model(x)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
    expected = bce + dwd.penalty()
    loss, got_bce, penalty = StepLoss(model, dwd)(x, y)
    torch.testing.assert_close(got_bce, bce, rtol=0, atol=0)
    torch.testing.assert_close(loss, expected, rtol=1e-15, atol=0)
    torch.testing.assert_close(loss - got_bce, penalty, rtol=1e-12, atol=0)


def test_layout_choice() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert use_channels_last("auto", cpu) and not use_channels_last("auto", cuda)
    assert use_channels_last("channels_last", cuda)
    assert not use_channels_last("contiguous", cpu)
    with pytest.raises(ValueError, match="memory layout"):
        use_channels_last("nhwc", cpu)
    with pytest.raises(ConfigError, match="memory_format"):
        TrainConfig(data="d", out="o", memory_format="nhwc")


@pytest.mark.slow
def test_compiled_step_equals_eager_step_in_float64() -> None:
    model, x, y = _net_and_batch()
    fast = copy.deepcopy(model)
    eager = _step(model, x, y)
    _assert_same(eager, _step(fast, x, y, channels_last=True, compile=True), 1e-9, 1e-12)
