"""Res2Net-50 v1b 26w4s backbone (deep stem, avg-pool shortcut downsampling).

Module names follow the public Res2Net v1b release (``conv1.0``, ``layer1.0.convs.0``,
``layer1.0.downsample.1``, ...) so its ImageNet state dict loads without remapping.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from sod100k.utils.sniff import UnreadableTorchFile, load_plain


class BackboneWeightsError(ValueError):
    """A backbone weight file that cannot be loaded; the message names the file."""


class Bottle2neck(nn.Module):
    """Scale-split bottleneck: the 3x3 stage works on ``scale`` channel groups in a cascade.

    Args:
        inplanes: Input channels.
        planes: Bottleneck channels (the output has ``4 * planes``).
        stride: Stride of the 3x3 convs.
        downsample: Shortcut projection, or ``None`` for the identity.
        base_width: Channels per group at ``planes = 64`` (26 in 26w4s).
        scale: Number of channel groups (4 in 26w4s).
        first: The first block of a stage (no cascade; the last group is pooled).
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int,
        downsample: nn.Module | None,
        base_width: int = 26,
        scale: int = 4,
        first: bool = False,
    ) -> None:
        super().__init__()
        width = planes * base_width // 64
        self.width, self.scale, self.first = width, scale, first
        self.conv1 = nn.Conv2d(inplanes, width * scale, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.convs = nn.ModuleList(
            nn.Conv2d(width, width, 3, stride, 1, bias=False) for _ in range(scale - 1)
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(scale - 1))
        # The first block of a stage cannot cascade (shapes change), so its last group
        # is only average-pooled, as in the release.
        self.pool = nn.AvgPool2d(3, stride, 1) if first else None
        self.conv3 = nn.Conv2d(width * scale, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        groups = torch.split(out, self.width, dim=1)
        parts = []
        sp = groups[0]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            sp = groups[i] if self.first or i == 0 else sp + groups[i]
            sp = self.relu(bn(conv(sp)))
            parts.append(sp)
        parts.append(self.pool(groups[-1]) if self.pool is not None else groups[-1])
        out = self.bn3(self.conv3(torch.cat(parts, dim=1)))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Res2Net50(nn.Module):
    """Res2Net-50 v1b 26w4s without its classifier.

    ``forward`` maps ``(N, 3, H, W)`` to the four stage outputs (256, 512, 1024 and 2048
    channels at 1/4, 1/8, 1/16 and 1/32 of the input).

    Args:
        layers: Blocks per stage.
        frozen_bn: Keep every BatchNorm in eval mode with frozen parameters, even in
            training mode (ImageNet statistics; the CSF recipe trains at batch 1).
    """

    stage_channels = (256, 512, 1024, 2048)

    def __init__(self, layers: tuple[int, ...] = (3, 4, 6, 3), frozen_bn: bool = True) -> None:
        super().__init__()
        self.frozen_bn = frozen_bn
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, 1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3, 1, 1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, 1, 1, bias=False),
        )
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.inplanes = 64
        self.layer1 = self._stage(64, layers[0], 1)
        self.layer2 = self._stage(128, layers[1], 2)
        self.layer3 = self._stage(256, layers[2], 2)
        self.layer4 = self._stage(512, layers[3], 2)
        if frozen_bn:
            self._freeze_bn()

    def _stage(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        out = planes * Bottle2neck.expansion
        # v1b: downsample the shortcut by average pooling, then a stride-1 1x1 conv.
        downsample = nn.Sequential(
            nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False),
            nn.Conv2d(self.inplanes, out, 1, bias=False),
            nn.BatchNorm2d(out),
        )
        layers = [Bottle2neck(self.inplanes, planes, stride, downsample, first=True)]
        self.inplanes = out
        layers += [Bottle2neck(out, planes, 1, None) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _freeze_bn(self) -> None:
        """Every BatchNorm on its running statistics, and the reference's frozen set.

        As the reference CSF + Res2Net code: the affine parameters of the stem's last BN
        (``bn1``) and of every bottleneck's ``bn1``, ``bns`` and ``bn3`` are frozen, and
        so is the 1x1 conv of each average-pool shortcut (``downsample[1]``); the two
        BNs inside the deep stem (``conv1[1]``, ``conv1[4]``) and the shortcut BNs
        (``downsample[2]``) keep trainable affine parameters.
        """
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        frozen: list[nn.Module] = [self.bn1]
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                frozen += [block.bn1, *block.bns, block.bn3]
                if block.downsample is not None:
                    frozen.append(block.downsample[1])
        for m in frozen:
            for p in m.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> Res2Net50:
        """Set training mode, keeping frozen BatchNorms in eval mode.

        Args:
            mode: Training (``True``) or eval mode.

        Returns:
            The backbone itself.
        """
        super().train(mode)
        # Frozen BN keeps ImageNet statistics even while the rest trains (batch size 1).
        if self.frozen_bn:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            outs.append(x)
        return outs

    def load_pretrained(self, path: str | Path) -> None:
        """Load ImageNet weights in the public Res2Net v1b layout from a local file.

        The classifier (``fc.*``) and a ``module.`` prefix are ignored; the file is
        read with ``torch.load(weights_only=True)``.

        Args:
            path: A state dict (or a dict holding one under ``state_dict``).

        Raises:
            BackboneWeightsError: Unreadable file, missing or unexpected keys, or wrong
                shapes; the message names the file and lists the keys.
        """
        path = Path(path)
        try:
            state = load_plain(path)
        except UnreadableTorchFile as e:
            raise BackboneWeightsError(f"{path}: not a torch state dict but {e}") from e
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise BackboneWeightsError(f"{path}: holds {type(state).__name__}, not a state dict")
        state = {
            k.removeprefix("module."): v
            for k, v in state.items()
            if not k.removeprefix("module.").startswith("fc.")
        }
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise BackboneWeightsError(
                f"{path}: not a Res2Net-50 v1b 26w4s state dict; "
                f"missing keys {_short(missing)}; unexpected keys {_short(unexpected)}"
            )
        bad = [k for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
        if bad:
            raise BackboneWeightsError(f"{path}: wrong shapes for keys {_short(bad)}")
        self.load_state_dict(state)


def _short(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return f"[{shown}]{more}"
