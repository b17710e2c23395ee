"""``sod100k info``: parameters, FLOPs and the layer config of a model."""

from __future__ import annotations

import argparse
import json

from sod100k.checkpoints.loading import load_model
from sod100k.cli.common import CLIError, add_model_args
from sod100k.models.flops import count_flops, count_params


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("info", help="print parameters, FLOPs and the config of a model")
    add_model_args(p)
    p.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=(224, 224),
        metavar=("H", "W"),
        help="input size for the FLOPs count (default 224 224)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def run(args: argparse.Namespace) -> int:
    if args.model is None and args.weights is None:
        raise CLIError("give --model, --weights or both")
    model = load_model(args.model, args.weights)
    h, w = args.size
    info = {
        "arch": model.arch,
        "name": getattr(model.config, "name", "") or args.model,
        "params": count_params(model),
        "flops": count_flops(model, h, w),
        "input_size": [h, w],
        "metadata": getattr(model, "checkpoint_metadata", {}),
        "config": model.config.to_dict(),
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"model:   {info['name']} ({info['arch']})")
    print(f"params:  {info['params']:,}")
    print(f"FLOPs:   {info['flops'] / 1e9:.3f} G at {h}x{w} (2 x multiply-adds)")
    if info["metadata"]:
        print(f"weights: {json.dumps(info['metadata'])}")
    print("config:")
    print(json.dumps(info["config"], indent=2))
    return 0
