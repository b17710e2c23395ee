"""``sod100k benchmark``: predict several datasets with one model, then score them."""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sod100k.cli.common import (
    CLIError,
    Failures,
    add_model_args,
    add_runtime_args,
    backend_from_args,
    batch_size,
    check_device,
    positive,
)
from sod100k.cli.evaluate import (
    add_output_args,
    add_protocol_args,
    protocol_kwargs,
    write_outputs,
)
from sod100k.eval import EvalResult, PairingError, evaluate_folders
from sod100k.infer.batch import plan_jobs, run_batch
from sod100k.infer.predictor import Predictor


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    images: Path
    masks: Path


def parse_dataset(text: str) -> DatasetSpec:
    """``NAME=IMAGES_DIR:MASKS_DIR`` -> :class:`DatasetSpec` (folders must exist).

    Raises ``argparse.ArgumentTypeError`` so that argparse prints a one-line usage error.
    """
    name, sep, dirs = text.partition("=")
    images, sep2, masks = dirs.partition(":")
    if not (sep and sep2 and name and images and masks):
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=IMAGES_DIR:MASKS_DIR")
    spec = DatasetSpec(name, Path(images), Path(masks))
    for folder in (spec.images, spec.masks):
        if not folder.is_dir():
            raise argparse.ArgumentTypeError(f"{name}: {folder} is not a folder")
    return spec


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "benchmark",
        help="predict and evaluate one model on several datasets",
        description="For every --dataset, predict saliency maps for its images (into "
        "--pred-root/NAME, or a temporary folder), score them against its masks like "
        "`sod100k evaluate`, and print one table.",
    )
    p.add_argument(
        "--dataset",
        "-d",
        action="append",
        required=True,
        type=parse_dataset,
        metavar="NAME=IMAGES_DIR:MASKS_DIR",
        help="a dataset (repeatable)",
    )
    p.add_argument(
        "--pred-root",
        type=Path,
        default=None,
        help="keep the maps in PRED_ROOT/NAME, replacing maps of the same name there "
        "(default: a temporary folder, removed afterwards)",
    )
    p.add_argument("--name", default=None, help="method name (default: the model/weights)")
    add_model_args(p)
    add_runtime_args(p)
    add_protocol_args(p)
    add_output_args(p)
    return p


def _method_name(args: argparse.Namespace, model: str | None) -> str:
    if args.name:
        return args.name
    return model or Path(args.weights).name


def run(args: argparse.Namespace) -> int:
    batch = batch_size(args, streams=None)
    positive("size", args.size)
    positive("workers", args.workers)
    protocol_kwargs(args)  # validates before the (slow) predictions
    check_device(args.device)
    names = [d.name for d in args.dataset]
    if len(set(names)) != len(names):
        raise CLIError(f"--dataset names must be unique, got {', '.join(names)}")
    backend, model, _ = backend_from_args(args, args.threads, streams=None)
    predictor = Predictor(backend, args.size)
    method = _method_name(args, model)
    failures = Failures()
    results: list[EvalResult] = []
    with contextlib.ExitStack() as stack:
        root = args.pred_root or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="sod100k-benchmark-"))
        )
        for spec in args.dataset:
            results += _benchmark_one(
                spec, root / spec.name, predictor, args, method, failures, batch
            )
    if results:
        write_outputs(results, args.output)
    failures.report()
    return 1 if failures or not results else 0


def _benchmark_one(
    spec: DatasetSpec,
    pred_dir: Path,
    predictor: Predictor,
    args: argparse.Namespace,
    method: str,
    failures: Failures,
    batch: int,
) -> list[EvalResult]:
    jobs, planned = plan_jobs([spec.images], pred_dir)
    for what, message in planned:
        failures.add(what, message)
    report = run_batch(jobs, predictor, batch, args.workers, progress=not args.quiet, streams=None)
    for what, message in report.failed:
        failures.add(what, message)
    print(f"{spec.name}: wrote {len(report.written)} map(s) to {pred_dir}", file=sys.stderr)
    try:
        evaluation = evaluate_folders(
            pred_dir,
            spec.masks,
            method,
            spec.name,
            args.allow_missing,
            args.workers,
            not args.quiet,
            **protocol_kwargs(args),
        )
    except PairingError as e:
        failures.add(spec.name, str(e))
        return []
    for what, message in evaluation.failed:
        failures.add(what, message)
    return evaluation.results
