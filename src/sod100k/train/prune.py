"""Channel pruning: drop channels whose BN gamma collapsed under dynamic weight decay.

A backbone channel lives through the three units of its ILBlock (gOctCBR, then two
depthwise CBRs on the same channel), so it is removed when its ``|gamma|`` is below the
threshold in every one of them; it is then also removed from the inputs of the next
block's gOctConv. In the head, dead channels of ``fuse`` leave the dilated convs'
inputs, dead channels of each dilated block shrink its dilation groups and leave the
``merge`` input, and dead ``merge`` channels leave the classifier. Each non-empty branch
keeps at least its strongest channel so the net's structure stays intact.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import torch
from torch import Tensor

from sod100k.models.config import HeadConfig, LayerConfig, UnitConfig
from sod100k.models.csnet import CSNet
from sod100k.nn.blocks import BranchCBR

DEFAULT_THRESHOLD = 1e-20
Keep = list[Tensor]  # kept channel indices per branch


@dataclass(frozen=True)
class PruneResult:
    """The smaller net and what was kept."""

    model: CSNet
    config: LayerConfig


def _alive(gammas: list[Tensor], threshold: float) -> Tensor:
    """Channels whose |gamma| reaches the threshold in at least one of the given units."""
    alive = torch.zeros_like(gammas[0], dtype=torch.bool)
    for g in gammas:
        alive |= g.detach().abs() >= threshold
    if not alive.any():
        strongest = torch.stack([g.detach().abs() for g in gammas]).amax(0).argmax()
        alive[strongest] = True
    return alive.nonzero().flatten()


def _unit_keep(units: tuple[BranchCBR, ...], threshold: float) -> Keep:
    widths = units[0].out_channels
    return [
        _alive([u.norms[str(k)].weight for u in units], threshold)
        if c > 0
        else torch.zeros(0, dtype=torch.long)
        for k, c in enumerate(widths)
    ]


def _flat(keep: Keep, widths: list[int]) -> Tensor:
    """Indices into a tensor whose channels are the branches concatenated."""
    starts = torch.tensor([0, *widths]).cumsum(0)
    return torch.cat([k + starts[i] for i, k in enumerate(keep)]).long()


def _widths(keep: Keep) -> tuple[int, ...]:
    return tuple(len(k) for k in keep)


def _copy_cbr(dst: BranchCBR, src: BranchCBR, keep: Keep) -> None:
    for key, norm in dst.norms.items():
        idx = keep[int(key)]
        s_norm, s_act = src.norms[key], src.acts[key]
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(norm, name).data.copy_(getattr(s_norm, name).data[idx])
        norm.num_batches_tracked.copy_(s_norm.num_batches_tracked)
        dst.acts[key].weight.data.copy_(s_act.weight.data[idx])


def prune_model(model: CSNet, threshold: float = DEFAULT_THRESHOLD) -> PruneResult:
    """Return a new, smaller :class:`CSNet` with the dead channels of ``model`` removed."""
    cfg = model.config
    blocks = model.blocks()
    keeps = [_unit_keep(b.units, threshold) for b in blocks]
    units, prev = [], [torch.arange(3)]
    for keep in keeps:
        units.append(UnitConfig(_widths(prev), _widths(keep)))
        prev = keep

    head = model.head
    tap_keep = [keeps[u][0] for u in cfg.tap_units]
    fuse_keep = _unit_keep((head.fuse,), threshold)
    ms_keep: Keep = []
    dil_channels = []
    for k, dils in enumerate(cfg.head.dilation_channels):
        if str(k) not in head.multiscale:
            ms_keep.append(torch.zeros(0, dtype=torch.long))
            dil_channels.append(dils)
            continue
        kept = _alive([head.multiscale[str(k)].norm.weight], threshold)
        ms_keep.append(kept)
        bounds = torch.tensor([0, *dils]).cumsum(0)
        dil_channels.append(
            tuple(int(((kept >= lo) & (kept < hi)).sum()) for lo, hi in pairwise(bounds.tolist()))
        )
    merge_keep = _unit_keep((head.merge,), threshold)
    new_head = HeadConfig(
        in_channels=_widths(tap_keep),
        fuse_channels=_widths(fuse_keep),
        dilation_channels=tuple(dil_channels),
        out_channels=len(merge_keep[0]),
        dilations=cfg.head.dilations,
    )
    new_cfg = LayerConfig(tuple(units), new_head, cfg.stage_depths, cfg.name + "-pruned")
    new = CSNet(new_cfg).to(next(model.parameters()).device)
    _copy_backbone(new, model, keeps)
    _copy_head(new, model, tap_keep, fuse_keep, ms_keep, merge_keep)
    return PruneResult(new.train(model.training), new_cfg)


@torch.no_grad()
def _copy_backbone(new: CSNet, old: CSNet, keeps: list[Keep]) -> None:
    prev_keep, prev_widths = [torch.arange(3)], [3]
    for nb, ob, keep in zip(new.blocks(), old.blocks(), keeps, strict=True):
        out_idx = _flat(keep, ob.expand.out_channels)
        in_idx = _flat(prev_keep, prev_widths)
        nb.expand.conv.weight.copy_(ob.expand.conv.weight[out_idx][:, in_idx])
        _copy_cbr(nb.expand, ob.expand, keep)
        for name in ("dw1", "dw2"):
            n_unit, o_unit = getattr(nb, name), getattr(ob, name)
            for key, conv in n_unit.convs.items():
                conv.weight.copy_(o_unit.convs[key].weight[keep[int(key)]])
            _copy_cbr(n_unit, o_unit, keep)
        prev_keep, prev_widths = keep, ob.expand.out_channels


@torch.no_grad()
def _copy_head(
    new: CSNet, old: CSNet, tap_keep: Keep, fuse_keep: Keep, ms_keep: Keep, merge_keep: Keep
) -> None:
    nh, oh = new.head, old.head
    in_idx = _flat(tap_keep, oh.fuse.in_channels)
    nh.fuse.conv.weight.copy_(
        oh.fuse.conv.weight[_flat(fuse_keep, oh.fuse.out_channels)][:, in_idx]
    )
    _copy_cbr(nh.fuse, oh.fuse, fuse_keep)
    ms_widths = []
    for k, kept in enumerate(ms_keep):
        key = str(k)
        if key not in oh.multiscale:
            ms_widths.append(0)
            continue
        o_ms, n_ms = oh.multiscale[key], nh.multiscale[key]
        ms_widths.append(o_ms.out_channels)
        start = 0
        for d, width in enumerate(o_ms.dilation_channels):
            rows = kept[(kept >= start) & (kept < start + width)] - start
            if len(rows):
                n_ms.convs[str(d)].weight.copy_(o_ms.convs[str(d)].weight[rows][:, fuse_keep[k]])
            start += width
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(n_ms.norm, name).copy_(getattr(o_ms.norm, name)[kept])
        n_ms.norm.num_batches_tracked.copy_(o_ms.norm.num_batches_tracked)
        n_ms.act.weight.copy_(o_ms.act.weight[kept])
    m_in = _flat(ms_keep, ms_widths)
    m_out = merge_keep[0]
    nh.merge.conv.weight.copy_(oh.merge.conv.weight[m_out][:, m_in])
    _copy_cbr(nh.merge, oh.merge, merge_keep)
    new.classifier.weight.copy_(old.classifier.weight[:, m_out])
    new.classifier.bias.copy_(old.classifier.bias)
