"""``sod100k predict``: saliency maps for image files and folders."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from sod100k.api import DEFAULT_MODEL, default_weights
from sod100k.cli.common import (
    CLIError,
    Failures,
    add_model_args,
    add_runtime_args,
    check_device,
    positive,
)
from sod100k.infer.batch import RENDERERS, plan_jobs, render_rgba, run_batch
from sod100k.infer.predictor import Predictor
from sod100k.infer.runtime import make_backend


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "predict",
        help="predict saliency maps for images and folders",
        description="Write one PNG (saliency map, cut-out or overlay) per input image, "
        "at the image's original size, named after the input (sub-folders of an input "
        "folder are mirrored).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders")
    p.add_argument("--output", "-o", required=True, type=Path, help="output folder")
    p.add_argument(
        "--format",
        "-f",
        choices=sorted(RENDERERS),
        default="mask",
        help="mask: grey saliency map; rgba: cut-out with soft, edge-refined "
        "alpha; overlay: image tinted where salient (default %(default)s)",
    )
    p.add_argument(
        "--threshold",
        type=int,
        default=None,
        help="rgba only: hard alpha, 255 where the map >= this (0-255)",
    )
    p.add_argument("--workers", type=int, default=2, help="decode/encode threads")
    p.add_argument(
        "--streams",
        type=int,
        default=1,
        help="batches run through the network concurrently (default 1); try "
        "--streams 2 --threads 1 --batch-size 1 against the default on your CPU",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_model_args(p)
    add_runtime_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    positive("batch-size", args.batch_size)
    positive("size", args.size)
    if args.threads is not None:
        positive("threads", args.threads)
    positive("streams", args.streams)
    check_device(args.device)
    if args.threshold is not None and not 0 <= args.threshold <= 255:
        raise CLIError(f"--threshold must be in 0..255, got {args.threshold}")
    render = RENDERERS[args.format]
    if args.threshold is not None:
        if args.format != "rgba":
            raise CLIError("--threshold only applies to --format rgba")
        render = functools.partial(render_rgba, threshold=args.threshold)
    model = args.model or (None if args.weights else DEFAULT_MODEL)
    weights = args.weights or str(default_weights(model))
    jobs, planned_failures = plan_jobs(args.inputs, args.output)
    failures = Failures()
    for what, message in planned_failures:
        print(f"error: {what}: {message}", file=sys.stderr)
        failures.add(what, message)
    written = 0
    if jobs:
        try:
            backend = make_backend(
                args.backend,
                model,
                weights,
                args.device,
                args.threads,
                args.streams,
                args.precision,
            )
        except ValueError as e:
            raise CLIError(str(e)) from e
        predictor = Predictor(backend, args.size)
        report = run_batch(
            jobs,
            predictor,
            args.batch_size,
            args.workers,
            render,
            progress=not args.quiet,
            streams=args.streams,
        )
        written = len(report.written)
        for what, message in report.failed:
            failures.add(what, message)
    print(f"wrote {written} {args.format} image(s) to {args.output}", file=sys.stderr)
    failures.report()
    return 1 if failures else 0
