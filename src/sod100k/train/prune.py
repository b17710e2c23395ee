"""Channel pruning after dynamic weight decay, with the reference code's selection rule.

Which channels survive (as ``finetune_model`` in the reference ``CSNet_training/model/
csnet.py``): a backbone channel survives iff ``|gamma| >= threshold`` for its BatchNorm in
the block's gOctCBR (``expand``, the reference ``conv1x1``); the block's two depthwise
units (``dw1``, ``dw2``) follow that mask, whatever their own gammas (a dead depthwise
gamma stays in the pruned net as a zero). In the head, ``fuse``, each dilated block
(``multiscale``) and ``merge`` follow their own BN gammas; the dilated block's per-dilation
widths are the survivors of each dilation's slice. Every next layer loses the removed
channels from its inputs.

Unlike the reference, BatchNorm running statistics are carried over (the reference copies
only gamma and beta, so its pruned net has no usable eval mode), and the output a removed
channel still had is folded into the next layer (``fold``):

* a removed channel's BN output is its beta (gamma is ~0), so the unit emits the constant
  ``PReLU(beta)``. A constant entering a 1x1 convolution adds a constant per output
  channel: that is folded exactly into the next BatchNorm's running mean (``merge`` and
  the next block's 1x1 ``expand``) or into the classifier's bias;
* through a zero-padded 3x3 convolution (the depthwise units of the same block, the
  stride-2 ``expand`` of the next stage, the head's dilated convs) a constant map stays
  constant only away from the border. ``fold="all"`` also folds these, using the value
  away from the border (exact there, approximate within the receptive field of the border);
  ``fold="exact"`` folds only where the result is exact; ``fold="none"`` drops every
  removed channel's output, as the reference does.

In train mode (batch statistics) a BatchNorm removes any constant added to its input, so
folding into running means changes nothing there; it keeps eval mode consistent.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from itertools import pairwise

import torch
from torch import Tensor, nn

from sod100k.models.config import HeadConfig, LayerConfig, UnitConfig
from sod100k.models.csnet import CSNet
from sod100k.nn.blocks import BranchCBR, DilatedConvBlock, GOctCBR, ILBlock
from sod100k.nn.goctconv import WEIGHT_SCALE, GOctConv, ScaledConv2d

DEFAULT_THRESHOLD = 1e-20
FOLD_MODES = ("all", "exact", "none")
DEFAULT_FOLD = "all"
Keep = list[Tensor]  # kept channel indices per branch


class PruneError(ValueError):
    """The net cannot be pruned as asked (e.g. every channel of a unit is dead)."""


@dataclass(frozen=True)
class PruneResult:
    """The smaller net, its layer config and what happened to the removed channels.

    ``folded_exact`` / ``folded_approx`` count the removed channels whose constant output
    was folded into the next layer exactly / with the away-from-the-border value;
    ``dropped`` those whose output was left out.
    """

    model: CSNet
    config: LayerConfig
    removed: int
    folded_exact: int
    folded_approx: int
    dropped: int


def _dead(norm: nn.BatchNorm2d, threshold: float) -> Tensor:
    return norm.weight.detach().abs() < threshold


def _survivors(norm: nn.BatchNorm2d, threshold: float) -> Tensor:
    return (~_dead(norm, threshold)).nonzero().flatten()


def _branch_keep(unit: BranchCBR, threshold: float, what: str) -> Keep:
    keep = [
        _survivors(unit.norms[str(k)], threshold) if c > 0 else torch.zeros(0, dtype=torch.long)
        for k, c in enumerate(unit.out_channels)
    ]
    if sum(len(k) for k in keep) == 0:
        raise PruneError(
            f"{what}: all {sum(unit.out_channels)} channels have |gamma| < {threshold:g}; "
            "pruning would cut the network in two (use a lower threshold)"
        )
    return keep


def _flat(keep: Keep, widths: list[int]) -> Tensor:
    """Indices into a tensor whose channels are the branches concatenated."""
    starts = torch.tensor([0, *widths]).cumsum(0)
    return torch.cat([k + starts[i] for i, k in enumerate(keep)]).long()


def _widths(keep: Keep) -> tuple[int, ...]:
    return tuple(len(k) for k in keep)


def _bn_eval(norm: nn.BatchNorm2d, idx: Tensor, z: Tensor) -> Tensor:
    scale = norm.weight[idx] / torch.sqrt(norm.running_var[idx] + norm.eps)
    return (z - norm.running_mean[idx]) * scale + norm.bias[idx]


def _prelu(act: nn.PReLU, idx: Tensor, v: Tensor) -> Tensor:
    slope = act.weight[idx] if act.weight.numel() > 1 else act.weight
    return torch.where(v >= 0, v, slope * v)


class _Folder:
    """Folds constant outputs of removed channels into the running means of the next
    BatchNorms (and the classifier bias) of a working copy of the net."""

    def __init__(self, mode: str) -> None:
        if mode not in FOLD_MODES:
            raise ValueError(f"fold must be one of {FOLD_MODES}, got {mode!r}")
        self.mode = mode
        self.exact = self.approx = self.dropped = 0

    def wanted(self, exact: Tensor) -> Tensor:
        """Which of the channels (``exact``: their folded value would be exact) to fold."""
        if self.mode == "all":
            return torch.ones_like(exact)
        if self.mode == "exact":
            return exact.clone()
        return torch.zeros_like(exact)

    def count(self, fold: Tensor, exact: Tensor) -> None:
        self.exact += int((fold & exact).sum())
        self.approx += int((fold & ~exact).sum())
        self.dropped += int((~fold).sum())

    @torch.no_grad()
    def into_unit(
        self, unit: GOctCBR, in_index: Tensor, values: Tensor, exact: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Fold constants on the inputs ``in_index`` (flat) of ``unit``'s gOctConv into
        its BNs; returns the masks of the inputs folded exactly and approximately."""
        conv: GOctConv = unit.conv
        exact = exact & ((values == 0) | (conv.kernel_size == 1))
        fold = self.wanted(exact)
        if fold.any():
            scale = WEIGHT_SCALE if conv.single else 1.0
            w = scale * conv.weight[:, in_index[fold]].sum(dim=(2, 3))
            delta = w @ values[fold].to(w.dtype)
            start = 0
            for k, c in enumerate(conv.out_channels):
                if c > 0:
                    unit.norms[str(k)].running_mean.sub_(delta[start : start + c])
                start += c
        return fold & exact, fold & ~exact

    @torch.no_grad()
    def into_dilated(
        self, block: DilatedConvBlock, in_index: Tensor, values: Tensor, exact: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Fold constants on inputs ``in_index`` of a head dilated block into its BN."""
        exact = exact & (values == 0)
        fold = self.wanted(exact)
        if fold.any():
            parts = [
                _scale_of(conv) * conv.weight[:, in_index[fold]].sum(dim=(2, 3))
                for conv in block.convs.values()
            ]
            delta = torch.cat(parts) @ values[fold].to(parts[0].dtype)
            block.norm.running_mean.sub_(delta)
        return fold & exact, fold & ~exact


def _scale_of(conv: nn.Conv2d) -> float:
    """The factor a conv applies to its stored weight (x100 for CSNet's plain convs)."""
    return WEIGHT_SCALE if isinstance(conv, ScaledConv2d) else 1.0


@torch.no_grad()
def _chain_constants(
    block: ILBlock, key: str, idx: Tensor, threshold: float
) -> tuple[Tensor, Tensor]:
    """Eval-mode output of the removed channels ``idx`` of one branch after the block's
    three units, away from the border, and whether it is the same everywhere."""
    e_norm, e_act = block.expand.norms[key], block.expand.acts[key]
    v = _prelu(e_act, idx, e_norm.bias[idx])
    exact = torch.ones_like(v, dtype=torch.bool)
    for unit in (block.dw1, block.dw2):
        norm, act, conv = unit.norms[key], unit.acts[key], unit.convs[key]
        dead = _dead(norm, threshold)[idx]
        z = WEIGHT_SCALE * conv.weight[idx].sum(dim=(1, 2, 3)) * v
        through = _prelu(act, idx, _bn_eval(norm, idx, z))
        # A dead gamma emits PReLU(beta) whatever came in; else a constant input stays
        # constant through the zero-padded 3x3 only if it is zero.
        v = torch.where(dead, _prelu(act, idx, norm.bias[idx]), through)
        exact = dead | (exact & (z == 0))
    return v, exact


def prune_model(
    model: CSNet, threshold: float = DEFAULT_THRESHOLD, fold: str = DEFAULT_FOLD
) -> PruneResult:
    """Return a new, smaller :class:`CSNet` with the channels of ``model`` whose gammas
    fell below ``threshold`` removed (the reference code's rule; see the module doc).

    Args:
        model: a trained CSNet (left unchanged).
        threshold: channels with ``|gamma| < threshold`` are removed.
        fold: ``"all"``, ``"exact"`` or ``"none"``: which removed channels' constant
            outputs are folded into the next layer.

    Returns:
        The pruned net (same device, dtype and train/eval mode) and its layer config.

    Raises:
        PruneError: every channel of a unit (or of the head's fuse/merge) is dead.
    """
    folder = _Folder(fold)
    cfg = model.config
    ref = next(model.parameters())
    work = copy.deepcopy(model).cpu()  # index bookkeeping stays on the CPU
    blocks = work.blocks()
    keeps = [
        _branch_keep(b.expand, threshold, f"unit {i} ({_unit_name(cfg, i)})")
        for i, b in enumerate(blocks)
    ]
    head = work.head
    fuse_keep = _branch_keep(head.fuse, threshold, "head fuse")
    _fold_backbone(work, keeps, threshold, folder)

    units, prev = [], [torch.arange(3)]
    for keep in keeps:
        units.append(UnitConfig(_widths(prev), _widths(keep)))
        prev = keep
    tap_keep = [keeps[u][0] for u in cfg.tap_units]
    ms_keep, dil_channels = _fold_head_fuse(work, fuse_keep, threshold, folder)
    if sum(len(k) for k in ms_keep) == 0:
        raise PruneError(f"head multiscale: every channel has |gamma| < {threshold:g}")
    merge_keep = _branch_keep(head.merge, threshold, "head merge")
    _fold_head_merge(work, merge_keep, folder)

    new_head = HeadConfig(
        in_channels=_widths(tap_keep),
        fuse_channels=_widths(fuse_keep),
        dilation_channels=tuple(dil_channels),
        out_channels=len(merge_keep[0]),
        dilations=cfg.head.dilations,
    )
    new_cfg = LayerConfig(tuple(units), new_head, cfg.stage_depths, cfg.name + "-pruned")
    new = CSNet(new_cfg).to(dtype=ref.dtype)
    _copy_backbone(new, work, keeps)
    _copy_head(new, work, tap_keep, fuse_keep, ms_keep, merge_keep)
    new = new.to(ref.device)
    n_removed = folder.exact + folder.approx + folder.dropped
    return PruneResult(
        new.train(model.training),
        new_cfg,
        n_removed,
        folder.exact,
        folder.approx,
        folder.dropped,
    )


def _unit_name(cfg: LayerConfig, i: int) -> str:
    stage, index = cfg.stage_of()[i]
    return f"stages.{stage}.{index}"


def _removed(keep: Tensor, width: int) -> Tensor:
    mask = torch.ones(width, dtype=torch.bool)
    mask[keep] = False
    return mask.nonzero().flatten()


@torch.no_grad()
def _fold_backbone(work: CSNet, keeps: list[Keep], threshold: float, folder: _Folder) -> None:
    """Fold every removed backbone channel's output into the units that read it."""
    blocks = work.blocks()
    taps = work.config.tap_units
    for b, (block, keep) in enumerate(zip(blocks, keeps, strict=True)):
        widths = block.expand.out_channels
        start = 0
        for k, c in enumerate(widths):
            if c == 0:
                continue
            idx = _removed(keep[k], c)
            if len(idx):
                values, exact = _chain_constants(block, str(k), idx, threshold)
                done_exact = torch.zeros_like(exact)
                done_approx = torch.zeros_like(exact)
                consumers = []
                if b + 1 < len(blocks):
                    consumers.append((blocks[b + 1].expand, idx + start))
                if b in taps:
                    consumers.append((work.head.fuse, idx + _offset(work, taps.index(b))))
                for unit, in_index in consumers:
                    e, a = folder.into_unit(unit, in_index, values, exact)
                    done_exact |= e
                    done_approx |= a
                # A channel counts once: exact if every read of it was folded exactly.
                folder.exact += int((done_exact & ~done_approx).sum())
                folder.approx += int(done_approx.sum())
                folder.dropped += int((~done_exact & ~done_approx).sum())
            start += c


def _offset(work: CSNet, branch: int) -> int:
    return sum(work.head.fuse.in_channels[:branch])


@torch.no_grad()
def _fold_head_fuse(
    work: CSNet, fuse_keep: Keep, threshold: float, folder: _Folder
) -> tuple[Keep, list[tuple[int, ...]]]:
    """Fold removed fuse channels into the dilated blocks; choose the dilated blocks'
    survivors (a branch whose fuse input died entirely is dropped and its now constant
    output folded into ``merge``)."""
    head, hcfg = work.head, work.config.head
    ms_keep: Keep = []
    dil_channels: list[tuple[int, ...]] = []
    merge_start = 0
    for k, dils in enumerate(hcfg.dilation_channels):
        key = str(k)
        width = sum(dils)
        if key not in head.multiscale:
            ms_keep.append(torch.zeros(0, dtype=torch.long))
            dil_channels.append(tuple(dils))
            merge_start += width
            continue
        block = head.multiscale[key]
        norm, act = head.fuse.norms[key], head.fuse.acts[key]
        gone = _removed(fuse_keep[k], hcfg.fuse_channels[k])
        values = _prelu(act, gone, norm.bias[gone])
        exact = torch.ones_like(values, dtype=torch.bool)
        e, a = folder.into_dilated(block, gone, values, exact)
        folder.count(e | a, e)
        if len(fuse_keep[k]) == 0:
            # No input left: the reference keeps these convs on zero inputs, so the
            # block emits PReLU(BN(0)) everywhere; fold that constant into merge.
            everything = torch.arange(width)
            zero = torch.zeros(width, dtype=block.norm.weight.dtype)
            out = _prelu(block.act, everything, _bn_eval(block.norm, everything, zero))
            sure = torch.full((width,), bool((values == 0).all()))
            e, a = folder.into_unit(head.merge, everything + merge_start, out, sure)
            folder.count(e | a, e)
            ms_keep.append(torch.zeros(0, dtype=torch.long))
            dil_channels.append(tuple(0 for _ in dils))
        else:
            kept = _survivors(block.norm, threshold)
            ms_keep.append(kept)
            bounds = torch.tensor([0, *dils]).cumsum(0).tolist()
            dil_channels.append(
                tuple(int(((kept >= lo) & (kept < hi)).sum()) for lo, hi in pairwise(bounds))
            )
            gone_ms = _removed(kept, width)
            values = _prelu(block.act, gone_ms, block.norm.bias[gone_ms])
            exact = torch.ones_like(values, dtype=torch.bool)
            e, a = folder.into_unit(head.merge, gone_ms + merge_start, values, exact)
            folder.count(e | a, e)
        merge_start += width
    return ms_keep, dil_channels


@torch.no_grad()
def _fold_head_merge(work: CSNet, merge_keep: Keep, folder: _Folder) -> None:
    """Removed merge channels feed only the 1x1 classifier: fold into its bias."""
    norm, act = work.head.merge.norms["0"], work.head.merge.acts["0"]
    gone = _removed(merge_keep[0], work.head.merge.out_channels[0])
    values = _prelu(act, gone, norm.bias[gone])
    fold = folder.wanted(torch.ones_like(values, dtype=torch.bool))
    if fold.any():
        w = work.classifier.weight[:, gone[fold]].sum(dim=(2, 3))
        work.classifier.bias.add_(w @ values[fold])
    folder.count(fold, torch.ones_like(fold))


def _copy_cbr(dst: BranchCBR, src: BranchCBR, keep: Keep) -> None:
    for key, norm in dst.norms.items():
        idx = keep[int(key)]
        s_norm, s_act = src.norms[key], src.acts[key]
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(norm, name).data.copy_(getattr(s_norm, name).data[idx])
        norm.num_batches_tracked.copy_(s_norm.num_batches_tracked)
        dst.acts[key].weight.data.copy_(s_act.weight.data[idx])


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
        o_ms = oh.multiscale[key]
        ms_widths.append(o_ms.out_channels)
        if key not in nh.multiscale:
            continue
        n_ms = nh.multiscale[key]
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


# ----------------------------------------------------------------------------- thresholds
#: The smallest positive float32 (a subnormal): exact zeros count as this on a log scale.
TINIEST = 1.4e-45


def expand_gammas(model: CSNet) -> Tensor:
    """|gamma| of every backbone channel's expand BN: what decides if the channel stays."""
    return torch.cat(
        [
            n.weight.detach().abs().flatten().cpu()
            for b in model.blocks()
            for n in b.expand.norms.values()
        ]
    )


def _deciding_gammas(model: CSNet) -> Tensor:
    """|gamma| of every BN whose value can decide a channel: expand and the head's."""
    head = model.head
    norms = [n for n in head.fuse.norms.values()]
    norms += [ms.norm for ms in head.multiscale.values()] + list(head.merge.norms.values())
    rest = [n.weight.detach().abs().flatten().cpu() for n in norms]
    return torch.cat([expand_gammas(model), *rest])


@dataclass(frozen=True)
class Gap:
    """The widest empty interval of log10 |gamma| over the expand gammas.

    ``lower`` and ``upper`` are the gammas on either side (``lower`` is the largest
    gamma below the gap); ``threshold`` is their geometric mean; ``below`` counts the
    expand gammas under it.
    """

    lower: float
    upper: float
    threshold: float
    below: int
    total: int

    @property
    def decades(self) -> float:
        """Width of the gap in decades (log10 units)."""
        return float(torch.log10(torch.tensor(self.upper / max(self.lower, TINIEST))))


def natural_gap(model: CSNet) -> Gap:
    """Where the net says to cut: the widest empty log10 interval of its expand gammas.

    Exact zeros count as :data:`TINIEST` (the smallest positive float32).

    Raises:
        PruneError: fewer than two distinct expand gammas (there is no interval).
    """
    gammas = expand_gammas(model).double()
    logs = torch.unique(torch.log10(gammas.clamp_min(TINIEST)))
    if len(logs) < 2:
        raise PruneError("the expand gammas take fewer than two values: there is no gap")
    widths = logs[1:] - logs[:-1]
    i = int(torch.argmax(widths))
    lower, upper = float(10 ** logs[i]), float(10 ** logs[i + 1])
    threshold = float(10 ** ((logs[i] + logs[i + 1]) / 2))
    below = int((gammas.clamp_min(TINIEST) < threshold).sum())
    return Gap(lower, upper, threshold, below, len(gammas))


@dataclass(frozen=True)
class BudgetCut:
    """The pruned net for a parameter budget, its threshold and whether it meets it."""

    result: PruneResult
    threshold: float
    met: bool


def prune_to_budget(model: CSNet, remove: float, fold: str = DEFAULT_FOLD) -> BudgetCut:
    """Prune away at least the share ``remove`` of the parameters, with the smallest
    |gamma| threshold that does it.

    The candidate thresholds are the values of the gammas that decide a channel (expand
    and head BNs); a threshold removes every smaller |gamma| (binary search, parameter
    count falling with the threshold). A threshold that would empty a whole unit
    (``PruneError``) is unusable, and so is every higher one. When every threshold that
    meets the budget is unusable, the budget cannot be met with the reference rule: the
    deepest usable cut is returned instead, with ``met`` false.

    Args:
        model: a trained CSNet (left unchanged).
        remove: the share of parameters to remove, in [0, 1).
        fold: as in :func:`prune_model`.

    Raises:
        ValueError: ``remove`` outside [0, 1).
        PruneError: no threshold at all leaves every unit a channel.
    """
    from sod100k.models.flops import count_params

    if not 0.0 <= remove < 1.0:
        raise ValueError(f"the share of parameters to remove must be in [0, 1), got {remove}")
    target = (1.0 - remove) * count_params(model)
    candidates = [*torch.unique(_deciding_gammas(model)).tolist(), float("inf")]

    def attempt(index: int) -> PruneResult | None:
        try:
            return prune_model(model, candidates[index], fold=fold)
        except PruneError:
            return None

    lo, hi, best = 0, len(candidates) - 1, None
    while lo <= hi:  # the smallest usable threshold that meets the budget
        mid = (lo + hi) // 2
        got = attempt(mid)
        if got is None or count_params(got.model) <= target:
            if got is not None:
                best = (got, candidates[mid])
            hi = mid - 1
        else:
            lo = mid + 1
    if best is not None:
        return BudgetCut(best[0], best[1], True)
    lo, hi, deepest = 0, len(candidates) - 1, None
    while lo <= hi:  # the largest usable threshold
        mid = (lo + hi) // 2
        got = attempt(mid)
        if got is None:
            hi = mid - 1
        else:
            deepest, lo = (got, candidates[mid]), mid + 1
    if deepest is None:
        raise PruneError("every threshold empties a unit; nothing can be pruned")
    return BudgetCut(deepest[0], deepest[1], False)
