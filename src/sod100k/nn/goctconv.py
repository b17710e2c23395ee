"""Generalised octave convolution (gOctConv).

A gOctConv maps a list of feature maps ("scale branches", branch k at 1/2^k of the base
resolution) to another list of branches. Each (input i, output j) pair gets its own
convolution, summed per output branch:

* i > j (input coarser): convolve at the input's resolution, then bilinear-upsample;
* i < j (input finer): max-pool by 2^(j-i) first, then convolve;
* stride 2: every input branch is first 2x2 average-pooled.

That is CSNet's gOctConv. The CSF + Res2Net reference uses a variant
(``resample="bilinear"``) that moves branches in both directions by bilinear
interpolation to the exact size of the matching input branch.

All pair convolutions are slices of one weight tensor ``[sum(out), sum(in), k, k]``,
which keeps the parameter layout identical to the SOD100K reference checkpoints.
A branch of width zero is absent and travels through the network as ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sod100k.nn.atrous import atrous_conv2d
from sod100k.nn.capture import capturing_graph

Branches = list[Tensor | None]

#: Plain convolutions inside CSNet multiply their stored weight by this factor in the
#: forward pass (a reparametrisation of the reference code for faster convergence).
WEIGHT_SCALE = 100.0


def offsets(widths: Sequence[int]) -> list[int]:
    """Channel offsets of consecutive branches in a concatenated tensor.

    Args:
        widths: Width of every branch.

    Returns:
        ``[0, w0, w0 + w1, ...]``, one more entry than ``widths``.
    """
    out = [0]
    for w in widths:
        out.append(out[-1] + int(w))
    return out


def branch_sizes(xs: Sequence[Tensor | None]) -> list[tuple[int, int]]:
    """Spatial size of every branch, derived from the finest branch present.

    Coarser branches are floor-halvings of the finest one (as max/avg pooling produce),
    finer ones are doublings. Deriving all sizes from one branch lets inputs whose sides
    are not multiples of 2^k flow through the net: upsampled branches are interpolated to
    the exact size of their target instead of by a fixed factor.

    Args:
        xs: The branches, ``None`` for absent ones; at least one must be present.

    Returns:
        ``(height, width)`` of every branch, present or not.
    """
    finest = next(i for i, x in enumerate(xs) if x is not None)
    h, w = xs[finest].shape[-2:]
    sizes = []
    for k in range(len(xs)):
        shift = k - finest
        if shift >= 0:
            sizes.append((h >> shift, w >> shift))
        else:
            sizes.append((h << -shift, w << -shift))
    return sizes


def resample(x: Tensor, src: int, dst: int, size: tuple[int, int]) -> Tensor:
    """Move a branch from one scale to another, as CSNet's gOctConv does.

    Args:
        x: The feature map, ``(N, C, H, W)``.
        src: Its scale index (branch ``k`` is at 1/2^k of the base resolution).
        dst: The target scale index.
        size: The target ``(height, width)``, used when upsampling.

    Returns:
        ``x`` max-pooled by 2^(dst - src) when moving to a coarser scale, bilinearly
        resized to ``size`` when moving to a finer one, unchanged otherwise.
    """
    if dst > src:
        k = 2 ** (dst - src)
        return F.max_pool2d(x, k, stride=k)
    if dst < src:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x


class GOctConv(nn.Module):
    """Multi-branch convolution with per-branch-pair slices of one weight tensor.

    Args:
        in_channels: channels of every input branch (zero: branch absent).
        out_channels: channels of every output branch (zero: branch absent).
        kernel_size: 1 or 3 (any odd size works).
        stride: 1 or 2. With 2, each input branch is average-pooled 2x2 first.
        dilation: dilation of every pair convolution.
        resample: ``"maxpool"`` (CSNet) or ``"bilinear"`` (the CSF + Res2Net variant:
            finer inputs are bilinearly resized down too, and every output branch takes
            the size of the input branch of the same scale when that one is present).

    With a single input and a single output branch the unit is an ordinary convolution,
    and, as in the reference code, it then uses the x100 weight scale and a strided
    convolution instead of average pooling.

    ``forward`` takes a list of branches (or one tensor) and returns a list with one
    entry per output branch, ``None`` for absent ones.

    Raises:
        ValueError: Unknown ``resample``, a stride other than 1 or 2, or an even kernel.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: Sequence[int],
        kernel_size: int = 1,
        stride: int = 1,
        dilation: int = 1,
        resample: str = "maxpool",
    ) -> None:
        super().__init__()
        if resample not in ("maxpool", "bilinear"):
            raise ValueError(f"gOctConv resample must be maxpool or bilinear, got {resample!r}")
        if stride not in (1, 2):
            raise ValueError(f"gOctConv stride must be 1 or 2, got {stride}")
        if kernel_size % 2 != 1:
            raise ValueError(f"gOctConv kernel size must be odd, got {kernel_size}")
        self.in_channels = [int(c) for c in in_channels]
        self.out_channels = [int(c) for c in out_channels]
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation
        self.resample = resample
        self.padding = dilation * (kernel_size // 2)
        self.single = len(self.in_channels) == 1 and len(self.out_channels) == 1
        self.weight = nn.Parameter(
            torch.empty(sum(self.out_channels), sum(self.in_channels), kernel_size, kernel_size)
        )
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def extra_repr(self) -> str:
        return (
            f"in={self.in_channels}, out={self.out_channels}, k={self.kernel_size}, "
            f"stride={self.stride}, dilation={self.dilation}"
        )

    def forward(self, xs: Branches | Tensor) -> Branches:
        if isinstance(xs, Tensor):
            xs = [xs]
        if self.single:
            return [self._plain(xs[0])]
        if all(x is None for x in xs):
            return [None] * len(self.out_channels)
        if self.stride == 2:
            xs = [None if x is None else F.avg_pool2d(x, 2, stride=2) for x in xs]
        sizes = branch_sizes(list(xs) + [None] * (len(self.out_channels) - len(xs)))
        if self.resample == "bilinear":
            for k, x in enumerate(xs[: len(sizes)]):
                if x is not None:
                    sizes[k] = tuple(x.shape[-2:])
        in_off, out_off = offsets(self.in_channels), offsets(self.out_channels)
        ys: Branches = [None] * len(self.out_channels)
        for i, x in enumerate(xs):
            if x is None or self.in_channels[i] == 0:
                continue
            for j in range(len(self.out_channels)):
                if self.out_channels[j] == 0:
                    continue
                w = self.weight[out_off[j] : out_off[j + 1], in_off[i] : in_off[i + 1]]
                y = self._pair(x, w, i, j, sizes[j])
                ys[j] = y if ys[j] is None else ys[j] + y
        return ys

    def _pair(self, x: Tensor, w: Tensor, i: int, j: int, size: tuple[int, int]) -> Tensor:
        if i < j and self.resample == "bilinear":
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        elif i < j:
            x = resample(x, i, j, size)
        y = F.conv2d(x, w, None, 1, self.padding, self.dilation)
        if i > j:
            y = resample(y, i, j, size)
        return y

    def _plain(self, x: Tensor | None) -> Tensor | None:
        if x is None:
            return None
        return F.conv2d(
            x, WEIGHT_SCALE * self.weight, None, self.stride, self.padding, self.dilation
        )


class ScaledConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose weight is multiplied by `WEIGHT_SCALE` in the forward pass.

    Used for every plain convolution inside the CSNet blocks (depthwise convs, the head's
    dilated convs), exactly as the reference ``Conv2dX100``.

    When gradients are recorded on CPU (training), a dilated convolution whose input is
    at least 7 dilations high and wide runs as an ordinary convolution on the
    space-to-batch form of its input ([`atrous_conv2d`][sod100k.nn.atrous.atrous_conv2d]):
    the same sums, 1.3-2.3x faster forward + backward in oneDNN. Inference and graph
    capture (ONNX export) use the plain dilated convolution.
    """

    def forward(self, x: Tensor) -> Tensor:
        weight = WEIGHT_SCALE * self.weight
        if self._space_to_batch(x):
            y = atrous_conv2d(x, weight, self.dilation[0])
            return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)
        return self._conv_forward(x, weight, self.bias)

    def _space_to_batch(self, x: Tensor) -> bool:
        d = self.dilation[0]
        return (
            d > 1
            and self.dilation[1] == d
            and self.stride == (1, 1)
            and self.groups == 1
            and self.padding == (d * (self.kernel_size[0] // 2),) * 2
            and self.kernel_size[0] == self.kernel_size[1]
            and self.padding_mode == "zeros"
            and x.device.type == "cpu"
            and min(x.shape[-2:]) >= 7 * d
            and torch.is_grad_enabled()
            and not capturing_graph()
        )
