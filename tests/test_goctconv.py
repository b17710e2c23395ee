"""gOctConv and block shapes, absent branches, odd sizes and the x100 reparametrisation."""

import pytest
import torch
import torch.nn.functional as F

from sod100k.nn.blocks import BranchDepthwiseCBR, DilatedConvBlock, GOctCBR, ILBlock
from sod100k.nn.goctconv import WEIGHT_SCALE, GOctConv, branch_sizes


def branches(n: int, widths, size=(32, 32)):
    h, w = size
    return [None if c == 0 else torch.randn(n, c, h >> k, w >> k) for k, c in enumerate(widths)]


@pytest.mark.parametrize(
    ("cin", "cout", "stride", "kernel"),
    [
        ((4, 4), (6, 2), 1, 1),
        ((4, 4), (6, 2), 2, 3),
        ((3,), (5, 5), 1, 3),
        ((4, 4), (8,), 1, 1),
        ((2, 3, 4), (3, 3, 3), 1, 1),
        ((2, 3, 4), (5,), 1, 1),
        ((4, 0), (0, 6), 1, 3),
    ],
)
def test_output_shapes(cin, cout, stride, kernel):
    conv = GOctConv(cin, cout, kernel, stride)
    ys = conv(branches(2, cin))
    assert len(ys) == len(cout)
    for k, (y, c) in enumerate(zip(ys, cout, strict=True)):
        if c == 0:
            assert y is None
            continue
        side = 32 // stride >> k
        assert y.shape == (2, c, side, side)


def test_weight_is_one_tensor_sliced_by_offsets():
    conv = GOctConv((3, 5), (2, 4), 3)
    assert conv.weight.shape == (6, 8, 3, 3)
    x = branches(1, (3, 5))
    ys = conv(x)
    w = conv.weight
    low_to_high = F.interpolate(
        F.conv2d(x[1], w[0:2, 3:8], padding=1),
        size=(32, 32),
        mode="bilinear",
        align_corners=False,
    )
    expect0 = F.conv2d(x[0], w[0:2, 0:3], padding=1) + low_to_high
    expect1 = F.conv2d(F.max_pool2d(x[0], 2), w[2:6, 0:3], padding=1) + F.conv2d(
        x[1], w[2:6, 3:8], padding=1
    )
    torch.testing.assert_close(ys[0], expect0)
    torch.testing.assert_close(ys[1], expect1)


def test_single_branch_is_a_plain_scaled_strided_conv():
    conv = GOctConv((4,), (6,), 3, stride=2)
    x = torch.randn(1, 4, 17, 17)
    expect = F.conv2d(x, WEIGHT_SCALE * conv.weight, stride=2, padding=1)
    torch.testing.assert_close(conv([x])[0], expect)


def test_odd_sizes_flow_through_upsampling():
    conv = GOctConv((2, 2, 2), (3,), 1)
    xs = [torch.randn(1, 2, 25, 19), torch.randn(1, 2, 12, 9), torch.randn(1, 2, 6, 4)]
    assert conv(xs)[0].shape == (1, 3, 25, 19)
    assert branch_sizes([None, torch.zeros(1, 1, 12, 9)]) == [(24, 18), (12, 9)]


def test_all_branches_absent_gives_absent_outputs():
    conv = GOctConv((2, 2), (3, 3), 1)
    assert conv([None, None]) == [None, None]


def test_depthwise_cbr_scales_weights_by_100():
    block = BranchDepthwiseCBR((3, 0)).eval()
    x = torch.randn(1, 3, 8, 8)
    conv = block.convs["0"]
    raw = F.conv2d(x, WEIGHT_SCALE * conv.weight, padding=1, groups=3)
    expect = block.acts["0"](block.norms["0"](raw))
    y = block([x, None])
    torch.testing.assert_close(y[0], expect)
    assert y[1] is None
    assert "1" not in block.norms


def test_ilblock_kernel_choice():
    assert ILBlock((3,), (4, 4), first=True).expand.conv.kernel_size == 3
    assert ILBlock((4, 4), (4, 4), stride=2).expand.conv.kernel_size == 3
    assert ILBlock((4, 4), (4, 4)).expand.conv.kernel_size == 1


def test_dilated_block_skips_zero_width_dilations():
    block = DilatedConvBlock(4, (1, 0, 2, 0, 3), (1, 2, 4, 8, 16))
    assert sorted(block.convs) == ["0", "2", "4"]
    assert block(torch.randn(1, 4, 20, 20)).shape == (1, 6, 20, 20)


def test_goct_cbr_norms_only_for_present_branches():
    unit = GOctCBR((4, 4), (5, 0, 2))
    assert sorted(unit.norms) == ["0", "2"]


@pytest.mark.parametrize("bad", [{"stride": 3}, {"kernel_size": 2}])
def test_bad_arguments(bad):
    args = {"in_channels": (2,), "out_channels": (2, 2), "kernel_size": 1, "stride": 1} | bad
    with pytest.raises(ValueError):
        GOctConv(**args)
