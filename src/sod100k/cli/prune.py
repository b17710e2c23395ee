"""``sod100k prune``: remove the channels that dynamic weight decay switched off."""

from __future__ import annotations

import argparse
from pathlib import Path

from sod100k.checkpoints.loading import load_model, save_model
from sod100k.cli.common import CLIError
from sod100k.models.flops import count_flops, count_params
from sod100k.train.prune import DEFAULT_FOLD, DEFAULT_THRESHOLD, FOLD_MODES, PruneError, prune_model


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("prune", help="prune dead channels of a trained CSNet checkpoint")
    p.add_argument("checkpoint", help="a sod100k checkpoint file or a training run folder")
    p.add_argument("--out", required=True, help="file to write the pruned checkpoint to")
    p.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="drop channels whose |BN gamma| is below this (default %(default)s)",
    )
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
    out = Path(args.out)
    if out.exists() and not args.force:
        raise CLIError(f"{out}: exists; pass --force to overwrite it")
    if args.threshold < 0:
        raise CLIError(f"--threshold must be non-negative, got {args.threshold}")
    model = load_model(weights=args.checkpoint)
    if getattr(model, "arch", None) != "csnet":
        raise CLIError(f"{args.checkpoint}: only CSNet checkpoints can be pruned")
    try:
        result = prune_model(model, args.threshold, fold=args.fold)
    except PruneError as e:
        raise CLIError(f"{args.checkpoint}: {e}") from e
    pruned = result.model
    meta = {"pruned_from": str(args.checkpoint), "threshold": args.threshold, "fold": args.fold}
    save_model(out, pruned, metadata=meta)
    for label, net in (("before", model), ("after", pruned)):
        params, flops = count_params(net), count_flops(net, 224, 224)
        print(f"{label:7s} params {params:>9,}  FLOPs {flops / 1e9:.3f} G at 224x224")
    print(
        f"removed {result.removed} channels: {result.folded_exact} folded exactly, "
        f"{result.folded_approx} folded away from the border, {result.dropped} dropped"
    )
    print(f"wrote {out}")
    return 0
