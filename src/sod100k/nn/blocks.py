"""Building blocks of CSNet and of the CSF head, all made of per-branch conv-norm-PReLU.

Parameter names are part of our checkpoint format and stay stable:
``conv`` / ``convs.{k}`` for convolutions, ``norms.{k}`` and ``acts.{k}`` for the
per-branch BatchNorm and PReLU (``k`` is the scale-branch index; absent branches have
no entry).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from sod100k.nn.goctconv import Branches, GOctConv, ScaledConv2d
from sod100k.nn.prelu import PReLU

NormFactory = Callable[[int], nn.Module]


class BranchCBR(nn.Module):
    """Base of the units that end with one norm + PReLU per non-empty output branch.

    Dynamic weight decay and pruning treat every such unit alike: its ``norms`` gammas
    say which output channels are alive.

    Args:
        out_channels: Width of every output branch (0: absent, no norm or PReLU).
        norm_layer: Builds the norm of a branch from its width (BatchNorm by default in
            the subclasses; GroupNorm in the CSF head).
    """

    def __init__(self, out_channels: Sequence[int], norm_layer: NormFactory) -> None:
        super().__init__()
        self.out_channels = [int(c) for c in out_channels]
        self.norms = nn.ModuleDict()
        self.acts = nn.ModuleDict()
        for k, c in enumerate(self.out_channels):
            if c > 0:
                self.norms[str(k)] = norm_layer(c)
                self.acts[str(k)] = PReLU(c)

    def _norm_act(self, ys: Branches) -> Branches:
        return [
            None if y is None else self.acts[str(k)](self.norms[str(k)](y))
            for k, y in enumerate(ys)
        ]


class GOctCBR(BranchCBR):
    """gOctConv followed by a norm and a PReLU on every output branch.

    Args:
        in_channels: Width of every input branch (0: absent).
        out_channels: Width of every output branch (0: absent).
        kernel_size: Kernel size of the gOctConv (1 or 3).
        stride: 1, or 2 to halve every branch.
        norm_layer: Builds a branch's norm from its width.
        resample: ``"maxpool"`` (CSNet) or ``"bilinear"`` (CSF + Res2Net); see
            [`GOctConv`][sod100k.nn.goctconv.GOctConv].
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: Sequence[int],
        kernel_size: int = 1,
        stride: int = 1,
        norm_layer: NormFactory = nn.BatchNorm2d,
        resample: str = "maxpool",
    ) -> None:
        super().__init__(out_channels, norm_layer)
        self.in_channels = [int(c) for c in in_channels]
        self.conv = GOctConv(in_channels, out_channels, kernel_size, stride, resample=resample)

    def forward(self, xs: Branches | Tensor) -> Branches:
        return self._norm_act(self.conv(xs))


class BranchDepthwiseCBR(BranchCBR):
    """A depthwise 3x3 conv (x100 weight scale), norm and PReLU on each branch separately.

    Args:
        channels: Width of every branch (the same in and out; 0: absent).
        norm_layer: Builds a branch's norm from its width.
    """

    def __init__(self, channels: Sequence[int], norm_layer: NormFactory = nn.BatchNorm2d) -> None:
        super().__init__(channels, norm_layer)
        self.in_channels = self.out_channels
        self.convs = nn.ModuleDict(
            {
                str(k): ScaledConv2d(c, c, 3, padding=1, groups=c, bias=False)
                for k, c in enumerate(self.out_channels)
                if c > 0
            }
        )

    def forward(self, xs: Branches) -> Branches:
        ys = [
            None if x is None or str(k) not in self.convs else self.convs[str(k)](x)
            for k, x in enumerate(xs)
        ]
        return self._norm_act(ys)


class ILBlock(nn.Module):
    """CSNet's inverted-bottleneck-free block: gOctCBR, then two per-branch depthwise CBRs.

    The gOctCBR is 3x3 for the first block of the network and for stride-2 blocks, 1x1
    otherwise.

    Args:
        in_channels: Width of every input branch.
        out_channels: Width of every output branch.
        stride: 1, or 2 for the first block of stages 2 to 4.
        first: The network's first block (3x3 gOctCBR on the image).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: Sequence[int],
        stride: int = 1,
        first: bool = False,
    ) -> None:
        super().__init__()
        kernel = 3 if first or stride == 2 else 1
        self.expand = GOctCBR(in_channels, out_channels, kernel, stride)
        self.dw1 = BranchDepthwiseCBR(out_channels)
        self.dw2 = BranchDepthwiseCBR(out_channels)

    @property
    def units(self) -> tuple[BranchCBR, ...]:
        """The block's three units: ``expand``, ``dw1``, ``dw2``."""
        return (self.expand, self.dw1, self.dw2)

    def forward(self, xs: Branches | Tensor) -> Branches:
        return self.dw2(self.dw1(self.expand(xs)))


class DilatedConvBlock(nn.Module):
    """Parallel 3x3 convs of several dilations, concatenated, then one norm + PReLU.

    ``dilation_channels[d]`` is the output width of the conv with ``dilations[d]``; a
    zero removes that conv (after pruning).

    Args:
        in_channels: Input width.
        dilation_channels: Output width of each dilated conv.
        dilations: Dilation of each conv.
        norm_layer: Builds the norm from the total output width.
        conv_layer: The conv class (x100-scaled in CSNet, plain in CSF + Res2Net).

    Raises:
        ValueError: ``dilation_channels`` and ``dilations`` differ in length.
    """

    def __init__(
        self,
        in_channels: int,
        dilation_channels: Sequence[int],
        dilations: Sequence[int],
        norm_layer: NormFactory = nn.BatchNorm2d,
        conv_layer: type[nn.Conv2d] = ScaledConv2d,
    ) -> None:
        super().__init__()
        if len(dilation_channels) != len(dilations):
            raise ValueError(
                f"{len(dilation_channels)} dilation widths given for {len(dilations)} dilations"
            )
        self.in_channels = int(in_channels)
        self.dilation_channels = [int(c) for c in dilation_channels]
        self.dilations = [int(d) for d in dilations]
        self.convs = nn.ModuleDict(
            {
                str(d): conv_layer(in_channels, c, 3, padding=dil, dilation=dil, bias=False)
                for d, (c, dil) in enumerate(
                    zip(self.dilation_channels, self.dilations, strict=True)
                )
                if c > 0
            }
        )
        out = sum(self.dilation_channels)
        self.out_channels = out
        self.norm = norm_layer(out)
        self.act = PReLU(out)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.cat([conv(x) for conv in self.convs.values()], dim=1)
        return self.act(self.norm(y))


class CSFHead(nn.Module):
    """Cross-stage fusion head.

    Stage outputs at several resolutions are the scale branches of a 1x1 gOctCBR
    (``fuse``); each branch then goes through a `DilatedConvBlock`
    (``multiscale.{k}``); a second 1x1 gOctCBR (``merge``) brings them to one scale.

    Args:
        in_channels: Width of every input branch (one per tapped stage).
        fuse_channels: Width of every branch after ``fuse``.
        dilation_channels: Per branch, the width of each dilated conv.
        out_channels: Width of the single-scale output.
        dilations: Dilations of the multi-scale blocks.
        norm_layer: Norm of ``fuse`` and ``merge``.
        multiscale_norm_layer: Norm of the dilated blocks.
        multiscale_conv_layer: Conv class of the dilated blocks.
        resample: gOctConv variant of ``fuse`` and ``merge``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        fuse_channels: Sequence[int],
        dilation_channels: Sequence[Sequence[int]],
        out_channels: int,
        dilations: Sequence[int] = (1, 2, 4, 8, 16),
        norm_layer: NormFactory = nn.BatchNorm2d,
        multiscale_norm_layer: NormFactory = nn.BatchNorm2d,
        multiscale_conv_layer: type[nn.Conv2d] = ScaledConv2d,
        resample: str = "maxpool",
    ) -> None:
        super().__init__()
        self.fuse = GOctCBR(in_channels, fuse_channels, 1, norm_layer=norm_layer, resample=resample)
        self.multiscale = nn.ModuleDict(
            {
                str(k): DilatedConvBlock(
                    c, dils, dilations, multiscale_norm_layer, multiscale_conv_layer
                )
                for k, (c, dils) in enumerate(zip(fuse_channels, dilation_channels, strict=True))
                if sum(dils) > 0
            }
        )
        ms_channels = [sum(d) for d in dilation_channels]
        self.merge = GOctCBR(
            ms_channels, [out_channels], 1, norm_layer=norm_layer, resample=resample
        )

    def forward(self, xs: Branches) -> Tensor:
        fused = self.fuse(xs)
        ms = [
            None if x is None or str(k) not in self.multiscale else self.multiscale[str(k)](x)
            for k, x in enumerate(fused)
        ]
        return self.merge(ms)[0]
