"""``sod100k finetune PRUNED``: fine-tune a pruned net (our schedule: lr 1e-4, steps at
epochs 50 and 100, 150 epochs), or with ``--bn-recalibrate`` only re-estimate its BN
statistics (what the reference finetune.py does in effect)."""

from __future__ import annotations

import argparse

from sod100k.cli import train


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "finetune",
        help="fine-tune a pruned checkpoint (or only recalibrate its BN statistics)",
    )
    p.add_argument("init", nargs="?", help="the pruned checkpoint (omit with --resume)")
    train.add_training_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    args.model = None
    return train.run(args, finetune=True)
