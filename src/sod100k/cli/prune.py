"""``sod100k prune``: remove the channels that dynamic weight decay switched off.

Where to cut: ``--threshold`` (the reference's 1e-20 by default), ``--at-gap`` (the widest
empty log10 interval of the expand gammas: where the net itself separates dead from live
channels) or ``--budget FRACTION`` (the smallest threshold that removes that share of the
parameters). ``--recalibrate-bn DATA`` re-estimates the pruned net's BatchNorm statistics
on N batches (what the reference fine-tune does in effect). ``--report`` writes no model:
it prints the gamma histogram and what each cut would leave.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from sod100k.checkpoints.loading import load_model, save_model
from sod100k.cli.common import CLIError
from sod100k.models.flops import count_flops, count_params
from sod100k.train.prune import (
    DEFAULT_FOLD,
    DEFAULT_THRESHOLD,
    FOLD_MODES,
    TINIEST,
    Gap,
    PruneError,
    PruneResult,
    expand_gammas,
    natural_gap,
    prune_model,
    prune_to_budget,
)

#: Budgets ``--report`` shows when none is given (shares of the parameters removed).
REPORT_BUDGETS = (0.30, 0.45, 0.55, 0.65)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "prune",
        help="prune dead channels of a trained CSNet checkpoint (or --report where to cut)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", help="a sod100k checkpoint file or a training run folder")
    p.add_argument("--out", help="file to write the pruned checkpoint to")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--threshold",
        type=float,
        help=f"drop channels whose |BN gamma| is below this (default {DEFAULT_THRESHOLD:g})",
    )
    where.add_argument(
        "--at-gap",
        action="store_true",
        help="cut in the widest empty log10 interval of the expand gammas (printed)",
    )
    where.add_argument(
        "--budget",
        type=float,
        nargs="+",
        metavar="FRACTION",
        help="remove at least this share of the parameters, with the smallest threshold "
        "that does (one value; --report takes several)",
    )
    p.add_argument(
        "--recalibrate-bn",
        metavar="DATA",
        help="re-estimate the pruned net's BatchNorm statistics on images of DATA "
        "(images/ + masks/ or DUTS *-Image/*-Mask)",
    )
    p.add_argument(
        "--recalibrate-batches", type=int, default=20, help="batches for --recalibrate-bn"
    )
    p.add_argument("--batch-size", type=int, default=24, help="for --recalibrate-bn")
    p.add_argument("--size", type=int, default=224, help="input side for --recalibrate-bn")
    p.add_argument(
        "--report",
        action="store_true",
        help="write no model: print the expand-gamma histogram (log10 bins) and the "
        "params/FLOPs left at 1e-20, at the gap and at each budget",
    )
    p.add_argument("--plot", metavar="PNG", help="--report: also plot the histogram here")
    p.add_argument(
        "--fold",
        choices=FOLD_MODES,
        default=DEFAULT_FOLD,
        help="fold removed channels' constant outputs into the next layer: all (away from "
        "the border where a 3x3 conv follows), exact (only where exact) or none (as the "
        "reference); default %(default)s",
    )
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    return p


def run(args: argparse.Namespace) -> int:
    _check(args)
    model = load_model(weights=args.checkpoint)
    if getattr(model, "arch", None) != "csnet":
        raise CLIError(f"{args.checkpoint}: only CSNet checkpoints can be pruned")
    if args.report:
        return _report(args, model)
    try:
        result, threshold, how = _cut(args, model)
    except PruneError as e:
        raise CLIError(f"{args.checkpoint}: {e}") from e
    pruned = result.model
    meta = {"pruned_from": str(args.checkpoint), "threshold": threshold, "fold": args.fold}
    meta["cut"] = how
    if args.recalibrate_bn:
        from sod100k.data.dataset import DatasetError
        from sod100k.train.bn_stats import calibration_batches, reestimate_bn

        try:
            batches = calibration_batches(
                args.recalibrate_bn, args.recalibrate_batches, args.batch_size, args.size
            )
        except DatasetError as e:
            raise CLIError(str(e)) from e
        if not batches:
            raise CLIError(f"{args.recalibrate_bn}: no readable image/mask pairs")
        param = next(pruned.parameters())
        seen = reestimate_bn(pruned, [x.to(param.device, param.dtype) for x in batches])
        meta["bn_reestimated"] = {"data": args.recalibrate_bn, "batches": seen}
        print(f"re-estimated BatchNorm statistics on {seen} batch(es) of {args.recalibrate_bn}")
    save_model(Path(args.out), pruned, metadata=meta)
    for label, net in (("before", model), ("after", pruned)):
        params, flops = count_params(net), count_flops(net, 224, 224)
        print(f"{label:7s} params {params:>9,}  FLOPs {flops / 1e9:.3f} G at 224x224")
    print(
        f"removed {result.removed} channels: {result.folded_exact} folded exactly, "
        f"{result.folded_approx} folded away from the border, {result.dropped} dropped"
    )
    print(f"wrote {args.out}")
    return 0


def _check(args: argparse.Namespace) -> None:
    """Refuse contradictory or out-of-range options before loading anything."""
    if args.report:
        if args.out or args.recalibrate_bn:
            raise CLIError("--report writes no model: drop --out and --recalibrate-bn")
    else:
        if not args.out:
            raise CLIError("--out is required (or --report to only see where to cut)")
        if Path(args.out).exists() and not args.force:
            raise CLIError(f"{args.out}: exists; pass --force to overwrite it")
        if args.plot:
            raise CLIError("--plot goes with --report")
        if args.budget and len(args.budget) > 1:
            raise CLIError("--budget takes one value when writing a model (several: --report)")
    if args.threshold is not None and args.threshold < 0:
        raise CLIError(f"--threshold must be non-negative, got {args.threshold}")
    for b in args.budget or ():
        if not 0.0 <= b < 1.0:
            raise CLIError(f"--budget is the share of parameters to remove, in [0, 1); got {b}")
    if args.recalibrate_batches <= 0 or args.batch_size <= 0 or args.size < 16:
        raise CLIError("--recalibrate-batches and --batch-size must be positive, --size >= 16")


def _cut(args: argparse.Namespace, model) -> tuple[PruneResult, float, str]:
    if args.at_gap:
        gap = natural_gap(model)
        print(_describe_gap(gap))
        return prune_model(model, gap.threshold, fold=args.fold), gap.threshold, "gap"
    if args.budget:
        cut = prune_to_budget(model, args.budget[0], fold=args.fold)
        if not cut.met:
            print(
                f"a -{args.budget[0]:.0%} budget cannot be met without emptying a whole unit: "
                "the deepest cut the reference rule allows is written instead"
            )
        print(f"budget -{args.budget[0]:.0%}: threshold {cut.threshold:.4g}")
        return cut.result, cut.threshold, f"budget {args.budget[0]:g}"
    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    return prune_model(model, threshold, fold=args.fold), threshold, "threshold"


def _describe_gap(gap: Gap) -> str:
    return (
        f"widest gap in the expand gammas: {gap.lower:.3g} .. {gap.upper:.3g} "
        f"({gap.decades:.1f} decades); threshold {gap.threshold:.3g} removes {gap.below} "
        f"of {gap.total} expand channels"
    )


def histogram(values: torch.Tensor) -> list[tuple[int, int]]:
    """(decade, count) of |gamma| per log10 decade [10^d, 10^(d+1)); zeros in the lowest."""
    logs = torch.floor(torch.log10(values.double().clamp_min(TINIEST))).long()
    lo, hi = int(logs.min()), int(logs.max())
    return [(d, int((logs == d).sum())) for d in range(lo, hi + 1)]


def _report(args: argparse.Namespace, model) -> int:
    gammas = expand_gammas(model)
    bins = histogram(gammas)
    peak = max(c for _, c in bins)
    print(f"{args.checkpoint}: {len(gammas)} expand gammas, |gamma| per decade:")
    for d, c in bins:
        bar = "#" * math.ceil(40 * c / peak) if c else ""
        print(f"  [1e{d:+03d}, 1e{d + 1:+03d})  {c:6d}  {bar}")
    full_params, full_flops = count_params(model), count_flops(model, 224, 224)
    rows: list[tuple[str, str, str]] = []
    cuts: list[tuple[str, float | None]] = [("1e-20", DEFAULT_THRESHOLD)]
    gap = None
    try:
        gap = natural_gap(model)
        print(_describe_gap(gap))
        cuts.append((f"gap ({gap.decades:.1f} decades)", gap.threshold))
    except PruneError as e:
        rows.append(("gap", "-", f"none: {e}"))
    if args.threshold is not None:
        cuts.append(("--threshold", args.threshold))
    for label, threshold in cuts:
        try:
            result = prune_model(model, threshold, fold=args.fold)
        except PruneError as e:
            rows.append((label, f"{threshold:.3g}", f"cannot be made: {e}"))
            continue
        rows.append((label, f"{threshold:.3g}", _left(result.model, full_params, full_flops)))
    budget_thresholds = []
    for b in args.budget or REPORT_BUDGETS:
        try:
            cut = prune_to_budget(model, b, fold=args.fold)
        except PruneError as e:
            rows.append((f"-{b:.0%}", "-", f"cannot be made: {e}"))
            continue
        mark = "" if cut.met else " (not met: deepest cut allowed)"
        budget_thresholds.append((b, cut.threshold))
        left = _left(cut.result.model, full_params, full_flops)
        rows.append((f"-{b:.0%}{mark}", f"{cut.threshold:.3g}", left))
    print(f"full net: params {full_params:,}, FLOPs {full_flops / 1e9:.3f} G at 224x224")
    print(f"{'cut':<40s} {'threshold':>10s}  left")
    for label, threshold, left in rows:
        print(f"{label:<40s} {threshold:>10s}  {left}")
    if args.plot:
        _plot(gammas, gap, budget_thresholds, Path(args.plot), str(args.checkpoint))
        print(f"wrote {args.plot}")
    return 0


def _left(net, full_params: int, full_flops: int) -> str:
    params, flops = count_params(net), count_flops(net, 224, 224)
    return (
        f"params {params:,} ({params / full_params:.1%}), "
        f"FLOPs {flops / 1e9:.3f} G ({flops / full_flops:.1%})"
    )


def _plot(gammas, gap, budgets, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sod100k.utils.files import atomic_save

    values = gammas.double().clamp_min(TINIEST).numpy()
    lo = math.floor(math.log10(values.min()))
    hi = math.ceil(math.log10(values.max())) + 1
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist(values, bins=[10.0**e for e in range(lo, hi + 1)], color="C0")
    ax.set(xscale="log", xlabel="expand |gamma| (exact zeros at 1.4e-45)", ylabel="channels")
    ax.set_title(title, fontsize=8)
    ax.axvline(DEFAULT_THRESHOLD, color="k", lw=1, label="1e-20")
    if gap is not None:
        ax.axvspan(gap.lower, gap.upper, color="C2", alpha=0.2, label="widest gap")
    for i, (b, t) in enumerate(budgets):
        ax.axvline(t, color=f"C{3 + i}", lw=1, ls="--", label=f"-{b:.0%}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_save(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
