"""CSF + Res2Net-50: the cross-stage fusion head on a Res2Net-50 v1b backbone."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from sod100k.models.config import ConfigError
from sod100k.nn.blocks import CSFHead
from sod100k.nn.res2net import Res2Net50


@dataclass(frozen=True)
class CSFRes2NetConfig:
    """Head widths of CSF+Res2Net; the backbone is fixed (Res2Net-50 v1b 26w4s).

    ``fuse_channels`` are the per-scale widths after the 1x1 gOctConv over the four stage
    outputs (1408 together, split 1:2:4:4 as in the reference code);
    ``dilation_channels[k]`` are the widths of the dilation-1, 2, 4, 8, 16 convs of
    branch k (each sum divisible by ``groups``).

    Attributes:
        name: Label of the config.
        fuse_channels: Width of each of the four scale branches after the fuse unit.
        dilation_channels: Per branch, the widths of its five dilated convs.
        head_out_channels: Width of the single-scale merge before the classifier.
        groups: GroupNorm groups of every head unit (32 in the reference).
        frozen_bn: Keep the backbone's BatchNorms frozen (ImageNet statistics).

    Raises:
        ConfigError: On construction, when the branch count or widths do not fit.
    """

    name: str = "csf-res2net50"
    fuse_channels: tuple[int, ...] = (128, 256, 512, 512)
    dilation_channels: tuple[tuple[int, ...], ...] = (
        (25, 25, 25, 25, 28),
        (51, 51, 51, 51, 52),
        (102, 102, 102, 102, 104),
        (102, 102, 102, 102, 104),
    )
    head_out_channels: int = 1408
    groups: int = 32
    frozen_bn: bool = True

    def __post_init__(self) -> None:
        if len(self.fuse_channels) != 4 or len(self.dilation_channels) != 4:
            raise ConfigError(f"{self.name}: needs 4 scale branches (one per backbone stage)")
        for k, dils in enumerate(self.dilation_channels):
            if len(dils) != 5 or min(dils) < 0 or sum(dils) % self.groups:
                raise ConfigError(
                    f"{self.name}: branch {k} dilation widths {list(dils)} must be 5 "
                    f"non-negative numbers summing to a multiple of {self.groups}"
                )

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready data (stored in checkpoints).

        Returns:
            A dict of the fields.
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CSFRes2NetConfig:
        """Build a config from data shaped as ``to_dict`` writes it.

        Args:
            d: The data; ``name``, ``groups`` and ``frozen_bn`` may be omitted.

        Returns:
            The validated config.

        Raises:
            ConfigError: A field is missing or malformed.
        """
        try:
            return cls(
                name=str(d.get("name", "csf-res2net50")),
                fuse_channels=tuple(int(c) for c in d["fuse_channels"]),
                dilation_channels=tuple(tuple(int(c) for c in r) for r in d["dilation_channels"]),
                head_out_channels=int(d["head_out_channels"]),
                groups=int(d.get("groups", 32)),
                frozen_bn=bool(d.get("frozen_bn", True)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"bad csf-res2net50 config: {e}") from e


class CSFRes2Net(nn.Module):
    """CSF + Res2Net-50: Res2Net-50 stage outputs (1/4..1/32) as four scale branches of a CSF head.

    Maps a normalised ``(N, 3, H, W)`` batch to logits ``(N, 1, H, W)``; any size works.

    Args:
        config: The head's widths.
        pretrained_backbone: Optional local file with ImageNet Res2Net-50 v1b 26w4s
            weights in the public key layout; nothing is downloaded.

    Raises:
        sod100k.nn.res2net.BackboneWeightsError: ``pretrained_backbone`` is not a
            loadable Res2Net-50 v1b state dict (the message lists the wrong keys).
    """

    arch = "csf-res2net50"

    def __init__(self, config: CSFRes2NetConfig, pretrained_backbone: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = Res2Net50(frozen_bn=config.frozen_bn)
        groups = config.groups
        self.head = CSFHead(
            Res2Net50.stage_channels,
            config.fuse_channels,
            config.dilation_channels,
            config.head_out_channels,
            multiscale_norm_layer=lambda c: nn.GroupNorm(groups, c),
            # The reference CSF head uses plain dilated convs (no x100, unlike CSNet).
            multiscale_conv_layer=nn.Conv2d,
            # The reference CSF head normalises every unit with GroupNorm(32) and resizes
            # branches bilinearly in both directions (its gOctConv variant).
            norm_layer=lambda c: nn.GroupNorm(groups, c),
            resample="bilinear",
        )
        self.classifier = nn.Conv2d(config.head_out_channels, 1, 1)
        self._init_weights()
        if pretrained_backbone is not None:
            self.backbone.load_pretrained(pretrained_backbone)

    def _init_weights(self) -> None:
        """As the reference ``weights_init``: every ``nn.Conv2d`` N(0, 0.01), biases zero
        (the gOctConv weights keep their Kaiming-uniform init, as there)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        y = self.classifier(self.head(self.backbone(x)))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
