"""CSNet: the ~100K-parameter salient object detector of SOD100K."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from sod100k.models.config import LayerConfig
from sod100k.nn.blocks import BranchCBR, CSFHead, ILBlock


class CSNet(nn.Module):
    """CSNet built from a [`LayerConfig`][sod100k.models.config.LayerConfig].

    Maps a normalised image batch ``(N, 3, H, W)`` to saliency logits ``(N, 1, H, W)``.
    Any ``H, W >= 16`` works; the reference code needs multiples of 16.

    Parameter names: ``stages.{s}.{b}.{expand,dw1,dw2}...``, ``head.{fuse,multiscale,merge}``
    and ``classifier`` (see [`sod100k.checkpoints.reference`][sod100k.checkpoints.reference]
    for the mapping from the reference checkpoints).

    Args:
        config: The widths of every unit; a pruned config builds the pruned net.

    Raises:
        ValueError: In ``forward``, when the input is not an ``(N, 3, H, W)`` batch.
    """

    arch = "csnet"

    def __init__(self, config: LayerConfig) -> None:
        super().__init__()
        self.config = config
        self.stages = nn.ModuleList(nn.ModuleList() for _ in range(1 + len(config.stage_depths)))
        for i, (unit, (stage, _)) in enumerate(zip(config.units, config.stage_of(), strict=True)):
            self.stages[stage].append(
                ILBlock(unit.in_channels, unit.out_channels, config.stride_of(i), first=i == 0)
            )
        h = config.head
        self.head = CSFHead(
            h.in_channels, h.fuse_channels, h.dilation_channels, h.out_channels, h.dilations
        )
        self.classifier = nn.Conv2d(h.out_channels, 1, kernel_size=1, bias=True)

    def blocks(self) -> list[ILBlock]:
        """Every ILBlock of the backbone, in forward order (stem first).

        Returns:
            The blocks, one per entry of ``config.units``.
        """
        return [b for stage in self.stages for b in stage]

    def branch_units(self) -> list[BranchCBR]:
        """Every per-branch CBR of the backbone, in forward order (for DWD and pruning).

        Returns:
            Three units per block: its gOctCBR and its two depthwise CBRs.
        """
        return [u for b in self.blocks() for u in b.units]

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"CSNet expects a (N, 3, H, W) batch, got shape {tuple(x.shape)}")
        feats: list = [x]
        taps = []
        for s, stage in enumerate(self.stages):
            for block in stage:
                feats = block(feats)
            if s >= 2:
                taps.append(feats[0])
        y = self.classifier(self.head(taps))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
