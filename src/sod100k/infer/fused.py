"""Inference form of a CSNet: folded, merged convolutions for fast CPU (and ONNX) runs.

:func:`fuse_csnet` turns any :class:`~sod100k.models.csnet.CSNet` (pruned ones included)
into a :class:`FusedCSNet` that computes the same logits with fewer, cheaper operations:

* every BatchNorm (eval statistics) and the x100 weight scale are folded into the weights
  and a bias of the convolution before it;
* within a gOctConv, the pair convolutions that read the same input branch at its own
  resolution (that input to itself and to every coarser output, which are upsampled
  afterwards) become one convolution with several outputs, sliced by channel;
* zero-width branches, and convolutions between them, are dropped.

PReLU stays a separate operation (it is not linear). Everything is traceable with fixed
Python control flow, so the module exports to ONNX with dynamic batch and image size.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sod100k.models.csnet import CSNet
from sod100k.nn.blocks import BranchDepthwiseCBR, CSFHead, DilatedConvBlock, GOctCBR
from sod100k.nn.goctconv import WEIGHT_SCALE, GOctConv, offsets

FusedBranches = list[Tensor | None]


def bn_affine(bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """``(scale, shift)`` with ``bn(x) == scale * x + shift`` per channel (eval mode)."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias.detach() - bn.running_mean * scale


def folded_conv(
    weight: Tensor,
    scale: Tensor,
    shift: Tensor | None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
) -> nn.Conv2d:
    """A biased ``nn.Conv2d`` computing ``scale * conv(x, weight) + shift``."""
    out_ch, in_per_group, k, _ = weight.shape
    conv = nn.Conv2d(in_per_group * groups, out_ch, k, stride, padding, dilation, groups, bias=True)
    with torch.no_grad():
        conv.weight.copy_(weight * scale.view(-1, 1, 1, 1))
        conv.bias.copy_(torch.zeros_like(scale) if shift is None else shift)
    return conv


def scaled_sizes(xs: FusedBranches, n: int) -> list[tuple[Tensor | int, Tensor | int]]:
    """Spatial size of each of ``n`` scale branches, from the finest branch present.

    Same rule as :func:`sod100k.nn.goctconv.branch_sizes` (floor halving), written with
    ``//`` and ``*`` so that the sizes stay symbolic under ONNX export.
    """
    finest = next(i for i, x in enumerate(xs) if x is not None)
    h, w = xs[finest].shape[-2], xs[finest].shape[-1]
    sizes = []
    for k in range(n):
        shift = k - finest
        f = 2 ** abs(shift)
        sizes.append((h // f, w // f) if shift >= 0 else (h * f, w * f))
    return sizes


def upsample(x: Tensor, size) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class FusedGOctCBR(nn.Module):
    """A gOctConv with its per-branch BatchNorm folded in, then a PReLU per branch.

    ``direct.{i}`` convolves input branch ``i`` once into the channels of every output
    branch ``j <= i`` (coarser-or-equal resolution comes first in the channel order),
    split afterwards; with ``merge=False`` each such pair gets its own conv
    (``direct.{i}_{j}``) instead, for runtimes whose channel split is slow;
    ``pooled.{i}_{j}`` convolves the max-pooled input ``i`` into a finer-indexed output
    ``j > i``. Each output's BN shift is added once, by the first conv that feeds it.
    """

    def __init__(self, unit: GOctCBR, merge: bool = True) -> None:
        super().__init__()
        conv: GOctConv = unit.conv
        self.n_out = len(conv.out_channels)
        self.avg_pool = conv.stride == 2 and not conv.single
        self.direct = nn.ModuleDict()
        self.pooled = nn.ModuleDict()
        # direct_split[i] = [(j, channels), ...] slices of direct.{i}'s output, in order.
        self.direct_split: dict[int, list[tuple[int, int]]] = {}
        self.acts = nn.ModuleDict({k: unit.acts[k] for k in unit.acts})
        in_off, out_off = offsets(conv.in_channels), offsets(conv.out_channels)
        affine = {int(k): bn_affine(unit.norms[k]) for k in unit.norms}
        fed: set[int] = set()
        gain = WEIGHT_SCALE if conv.single else 1.0
        stride = conv.stride if conv.single else 1
        pad, dil = conv.padding, conv.dilation
        w = conv.weight.detach() * gain
        for i, c_in in enumerate(conv.in_channels):
            if c_in == 0:
                continue
            w_i = w[:, in_off[i] : in_off[i + 1]]
            outs = [j for j in range(min(i + 1, self.n_out)) if conv.out_channels[j] > 0]
            if outs:
                weight = torch.cat([w_i[out_off[j] : out_off[j + 1]] for j in outs])
                scale = torch.cat([affine[j][0] for j in outs])
                shift = torch.cat(
                    [torch.zeros_like(affine[j][1]) if j in fed else affine[j][1] for j in outs]
                )
                fed.update(outs)
                self.direct_split[i] = [(j, conv.out_channels[j]) for j in outs]
                if merge:
                    self.direct[str(i)] = folded_conv(weight, scale, shift, stride, pad, dil)
                else:
                    for (j, _), w_j, s_j, b_j in zip(
                        self.direct_split[i],
                        weight.split([c for _, c in self.direct_split[i]]),
                        scale.split([c for _, c in self.direct_split[i]]),
                        shift.split([c for _, c in self.direct_split[i]]),
                        strict=True,
                    ):
                        self.direct[f"{i}_{j}"] = folded_conv(w_j, s_j, b_j, stride, pad, dil)
            for j in range(i + 1, self.n_out):
                if conv.out_channels[j] == 0:
                    continue
                scale, shift = affine[j]
                self.pooled[f"{i}_{j}"] = folded_conv(
                    w_i[out_off[j] : out_off[j + 1]],
                    scale,
                    None if j in fed else shift,
                    1,
                    pad,
                    dil,
                )
                fed.add(j)

    def forward(self, xs: FusedBranches) -> FusedBranches:
        if self.avg_pool:
            xs = [None if x is None else F.avg_pool2d(x, 2, stride=2) for x in xs]
        sizes = scaled_sizes(xs, max(self.n_out, len(xs)))
        ys: FusedBranches = [None] * self.n_out
        for i, x in enumerate(xs):
            if x is None:
                continue
            key, pairs = str(i), self.direct_split.get(i, [])
            if key in self.direct:
                parts = self.direct[key](x).split([c for _, c in pairs], dim=1)
            else:
                parts = [self.direct[f"{i}_{j}"](x) for j, _ in pairs]
            for (j, _), y in zip(pairs, parts, strict=True):
                if j < i:
                    y = upsample(y, sizes[j])
                ys[j] = y if ys[j] is None else ys[j] + y
            for j in range(i + 1, self.n_out):
                pair = f"{i}_{j}"
                if pair in self.pooled:
                    k = 2 ** (j - i)
                    y = self.pooled[pair](F.max_pool2d(x, k, stride=k))
                    ys[j] = y if ys[j] is None else ys[j] + y
        return [None if y is None else self.acts[str(j)](y) for j, y in enumerate(ys)]


class FusedDepthwise(nn.Module):
    """Two depthwise CBRs per branch, each folded into one biased depthwise conv + PReLU."""

    def __init__(self, first: BranchDepthwiseCBR, second: BranchDepthwiseCBR) -> None:
        super().__init__()
        self.branches = nn.ModuleDict(
            {k: nn.Sequential(*_fold_dw(first, k), *_fold_dw(second, k)) for k in first.convs}
        )

    def forward(self, xs: FusedBranches) -> FusedBranches:
        return [
            None if x is None or str(k) not in self.branches else self.branches[str(k)](x)
            for k, x in enumerate(xs)
        ]


def _fold_dw(unit: BranchDepthwiseCBR, k: str) -> tuple[nn.Conv2d, nn.PReLU]:
    conv = unit.convs[k]
    scale, shift = bn_affine(unit.norms[k])
    folded = folded_conv(
        WEIGHT_SCALE * conv.weight.detach(), scale, shift, 1, 1, 1, groups=conv.groups
    )
    return folded, unit.acts[k]


class FusedDilated(nn.Module):
    """The head's parallel dilated convs with the shared BatchNorm folded into each."""

    def __init__(self, block: DilatedConvBlock) -> None:
        super().__init__()
        scale, shift = bn_affine(block.norm)
        self.convs = nn.ModuleList()
        start = 0
        for conv in block.convs.values():
            stop = start + conv.out_channels
            self.convs.append(
                folded_conv(
                    WEIGHT_SCALE * conv.weight.detach(),
                    scale[start:stop],
                    shift[start:stop],
                    1,
                    conv.padding[0],
                    conv.dilation[0],
                )
            )
            start = stop
        self.act = block.act

    def forward(self, x: Tensor) -> Tensor:
        ys = [conv(x) for conv in self.convs]
        return self.act(ys[0] if len(ys) == 1 else torch.cat(ys, dim=1))


class FusedHead(nn.Module):
    def __init__(self, head: CSFHead, merge: bool = True) -> None:
        super().__init__()
        self.fuse = FusedGOctCBR(head.fuse, merge)
        self.multiscale = nn.ModuleDict({k: FusedDilated(b) for k, b in head.multiscale.items()})
        self.merge = FusedGOctCBR(head.merge, merge)

    def forward(self, xs: FusedBranches) -> Tensor:
        fused = self.fuse(xs)
        ms = [
            None if x is None or str(k) not in self.multiscale else self.multiscale[str(k)](x)
            for k, x in enumerate(fused)
        ]
        return self.merge(ms)[0]


class FusedCSNet(nn.Module):
    """Inference-only CSNet with folded BatchNorms and merged convolutions.

    Same interface as :class:`CSNet`: ``(N, 3, H, W)`` normalised images in, logits
    ``(N, 1, H, W)`` out. Build it with :func:`fuse_csnet`; it cannot be trained.
    """

    arch = "csnet-fused"

    def __init__(self, model: CSNet, merge_convs: bool = True) -> None:
        super().__init__()
        self.config = model.config
        self.stages = nn.ModuleList()
        for stage in model.stages:
            blocks = nn.ModuleList()
            for block in stage:
                blocks.append(
                    nn.ModuleList(
                        [
                            FusedGOctCBR(block.expand, merge_convs),
                            FusedDepthwise(block.dw1, block.dw2),
                        ]
                    )
                )
            self.stages.append(blocks)
        self.head = FusedHead(model.head, merge_convs)
        self.classifier = model.classifier

    def forward(self, x: Tensor) -> Tensor:
        feats: FusedBranches = [x]
        taps: FusedBranches = []
        for s, stage in enumerate(self.stages):
            for expand, depthwise in stage:
                feats = depthwise(expand(feats))
            if s >= 2:
                taps.append(feats[0])
        y = self.classifier(self.head(taps))
        return upsample(y, (x.shape[-2], x.shape[-1]))


def fuse_csnet(model: CSNet, merge_convs: bool = True) -> FusedCSNet:
    """The inference form of ``model`` (which is left unchanged), in eval mode.

    ``merge_convs`` merges the convs that read the same input branch into one conv whose
    output is split (fewer, larger convs: best for torch and ONNX Runtime); without it
    every branch pair keeps its own conv (no split ops: best for OpenVINO).
    """
    if not isinstance(model, CSNet):
        raise TypeError(f"fuse_csnet needs a CSNet, got {type(model).__name__}")
    source = copy.deepcopy(model).cpu().eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        fused = FusedCSNet(source, merge_convs)
    for p in fused.parameters():
        p.requires_grad_(False)
    return fused.to(device).eval()
