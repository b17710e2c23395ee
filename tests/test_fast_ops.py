"""The training-speed replacements compute exactly what the plain PyTorch operators do."""

from __future__ import annotations

import io
import warnings

import onnx
import pytest
import torch
import torch.nn.functional as F

from sod100k.nn.atrous import atrous_conv2d, batch_to_space, space_to_batch
from sod100k.nn.goctconv import WEIGHT_SCALE, ScaledConv2d
from sod100k.nn.prelu import PReLU
from sod100k.nn.reductions import channel_sums, spatial_means
from sod100k.utils.malloc import keep_freed_memory, release_free_memory

LAYOUTS = [torch.contiguous_format, torch.channels_last]


def _x(shape, layout, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype).contiguous(memory_format=layout)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("channels", [1, 7])
def test_prelu_gradients_equal_torch_prelu(layout, channels):
    x = _x((3, 7, 9, 11), layout).requires_grad_()
    x.data[0, :, 0, 0] = 0.0  # the kink: both give the slope-a side's gradient
    ours = PReLU(channels).double()
    with torch.no_grad():
        ours.weight.uniform_(-0.5, 1.5)
    plain = torch.nn.PReLU(channels).double()
    plain.load_state_dict(ours.state_dict())
    grad = _x(x.shape, layout, seed=1)
    got = ours(x)
    (gx,) = torch.autograd.grad(got, x, grad, retain_graph=True)
    (gw,) = torch.autograd.grad(got, ours.weight, grad)
    want = plain(x)
    want_gx, want_gw = torch.autograd.grad(want, (x, plain.weight), grad)
    assert torch.equal(got, want)
    assert torch.allclose(gx, want_gx, rtol=0, atol=1e-15)
    assert torch.allclose(gw, want_gw, rtol=1e-13, atol=1e-13)


def test_prelu_exports_as_a_plain_prelu_node():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), PReLU(4)).train()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (torch.randn(1, 3, 8, 8),), buf, dynamo=False)
    ops = {n.op_type for n in onnx.load_from_string(buf.getvalue()).graph.node}
    assert "PRelu" in ops
    assert not any("Python" in op for op in ops)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_reductions_equal_sum_and_mean(layout):
    x = _x((3, 5, 13, 6), layout)
    assert torch.allclose(channel_sums(x), x.sum((0, 2, 3)), rtol=1e-14, atol=0)
    assert torch.allclose(spatial_means(x), x.mean((2, 3)), rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_space_to_batch_round_trip_keeps_the_layout(layout):
    x = _x((2, 3, 12, 8), layout)
    y = space_to_batch(x, 4)
    assert y.shape == (32, 3, 3, 2)
    # residue class (r, s) = (1, 3) of sample 1 sits in batch block (r * 4 + s) * 2 + 1
    assert torch.equal(y[(1 * 4 + 3) * 2 + 1, :, 1, 1], x[1, :, 4 * 1 + 1, 4 * 1 + 3])
    back = batch_to_space(y, 4)
    assert torch.equal(back, x)
    assert back.is_contiguous(memory_format=layout)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("size", [(16, 16), (13, 17), (7, 30)])
@pytest.mark.parametrize("dilation", [1, 2, 3, 4])
def test_atrous_conv_equals_the_dilated_conv(layout, size, dilation):
    x = _x((2, 5, *size), layout).requires_grad_()
    w = _x((4, 5, 3, 3), layout, seed=2).requires_grad_()
    got = atrous_conv2d(x, w, dilation)
    want = F.conv2d(x, w, None, 1, dilation, dilation)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=1e-13, atol=1e-13)
    grad = _x(want.shape, layout, seed=3)
    got_g = torch.autograd.grad(got, (x, w), grad)
    want_g = torch.autograd.grad(want, (x, w), grad)
    for a, b in zip(got_g, want_g, strict=True):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)


def test_scaled_conv_uses_space_to_batch_only_when_training_on_big_inputs(monkeypatch):
    conv = ScaledConv2d(4, 3, 3, padding=2, dilation=2, bias=False).double()
    calls = []
    import sod100k.nn.goctconv as goctconv

    real = goctconv.atrous_conv2d
    monkeypatch.setattr(goctconv, "atrous_conv2d", lambda *a: calls.append(a) or real(*a))
    x = _x((1, 4, 14, 14), torch.channels_last)
    with torch.no_grad():
        plain = conv(x)
    assert not calls  # inference: the plain operator
    got = conv(x)
    assert len(calls) == 1
    assert torch.allclose(got, plain, rtol=1e-13, atol=1e-13)
    assert torch.allclose(got, F.conv2d(x, WEIGHT_SCALE * conv.weight, None, 1, 2, 2))
    conv(_x((1, 4, 13, 14), torch.channels_last))  # under 7 dilations high: plain
    assert len(calls) == 1


def test_allocator_settings_are_accepted():
    assert keep_freed_memory() in (True, False)
    release_free_memory()
    big = torch.empty(64 << 20, dtype=torch.uint8)  # above glibc's mmap ceiling
    big.fill_(1)
    assert int(big[-1]) == 1
