"""U^2-Net-p (Qin et al., 2020), the small model rembg ships as ``u2netp``, for speed runs.

Written from the published architecture: six encoder stages of residual U-blocks
(RSU-7, 6, 5, 4 and two dilated RSU-4F), five decoder stages, a 3x3 side output per
decoder stage upsampled to the input size, and a 1x1 fusion of the six side outputs.
Every stage has 64 output and 16 middle channels; pooling is 2x2 max with ceil mode;
upsampling is bilinear to the size of the skip connection (``align_corners=False``).
Weights are random: this module exists to time the network, not to score it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvBnRelu(nn.Module):
    """3x3 conv (dilation ``d``) -> BatchNorm -> ReLU."""

    def __init__(self, c_in: int, c_out: int, d: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=d, dilation=d)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _up_to(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def _pool(x: Tensor) -> Tensor:
    return F.max_pool2d(x, 2, stride=2, ceil_mode=True)


class RSU(nn.Module):
    """Residual U-block of height ``height``.

    The encoder has ``height - 1`` convs with a 2x2 max pool between consecutive ones,
    then a dilation-2 conv at the coarsest level; the decoder mirrors it on
    concatenations of the upsampled coarser result and the encoder skip. With
    ``dilated=True`` (RSU-4F) there is no pooling: the levels use dilations 1, 2, 4, 8.
    """

    def __init__(self, height: int, c_in: int, c_mid: int, c_out: int, dilated: bool = False):
        super().__init__()
        self.dilated = dilated
        self.inp = ConvBnRelu(c_in, c_out)
        dil = [2**k for k in range(height)] if dilated else [1] * (height - 1) + [2]
        self.enc = nn.ModuleList(
            [ConvBnRelu(c_out if k == 0 else c_mid, c_mid, dil[k]) for k in range(height)]
        )
        # dec[k] produces level k from (level k+1 result, encoder level k).
        self.dec = nn.ModuleList(
            [ConvBnRelu(2 * c_mid, c_out if k == 0 else c_mid, dil[k]) for k in range(height - 1)]
        )

    def forward(self, x: Tensor) -> Tensor:
        hin = self.inp(x)
        skips = []
        h = hin
        for k, conv in enumerate(self.enc):
            if k > 0 and not self.dilated and k < len(self.enc) - 1:
                h = _pool(h)
            h = conv(h)
            skips.append(h)
        d = skips[-1]
        for k in range(len(self.dec) - 1, -1, -1):
            if k < len(self.dec) - 1 and not self.dilated:
                d = _up_to(d, skips[k])
            d = self.dec[k](torch.cat([d, skips[k]], dim=1))
        return d + hin


class U2NetP(nn.Module):
    """U^2-Net-p: ``(N, 3, H, W)`` normalised images -> fused saliency probabilities."""

    def __init__(self) -> None:
        super().__init__()
        enc = [(7, 3), (6, 64), (5, 64), (4, 64), (4, 64), (4, 64)]
        self.encoder = nn.ModuleList(
            [RSU(h, c, 16, 64, dilated=k >= 4) for k, (h, c) in enumerate(enc)]
        )
        self.decoder = nn.ModuleList(
            [RSU(h, 128, 16, 64, dilated=k >= 4) for k, (h, _) in enumerate(enc[:5])]
        )
        self.side = nn.ModuleList([nn.Conv2d(64, 1, 3, padding=1) for _ in range(6)])
        self.fuse = nn.Conv2d(6, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        h = x
        for k, stage in enumerate(self.encoder):
            if k > 0:
                h = _pool(h)
            h = stage(h)
            skips.append(h)
        outs = [h]  # the deepest encoder stage feeds the sixth side output
        d = h
        for k in range(4, -1, -1):
            d = self.decoder[k](torch.cat([_up_to(d, skips[k]), skips[k]], dim=1))
            outs.append(d)
        sides = [self.side[5 - i](o) for i, o in enumerate(outs)]  # side6 ... side1
        full = sides[-1]
        ups = [_up_to(s, full) for s in reversed(sides[:-1])]
        fused = self.fuse(torch.cat([full, *ups], dim=1))
        return torch.sigmoid(fused)
