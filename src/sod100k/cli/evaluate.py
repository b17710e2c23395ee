"""``sod100k evaluate``: standard SOD metrics of a folder of saliency maps."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sod100k.cli.common import CLIError, Failures, positive
from sod100k.eval import (
    PROTOCOL_CHOICES,
    EvalResult,
    PairingError,
    dataset_name,
    evaluate_folders,
    format_table,
    write_reports,
)
from sod100k.eval.plots import plot_f_curves, plot_pr_curves
from sod100k.eval.salmetric import DEFAULT_THREADS, MISMATCH_MODES


def add_output_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument(
        "--output",
        "-o",
        type=Path,
        default=None,
        help="folder for results.json/.csv/.md and pr.png/fmeasure.png",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=2,
        help="scoring processes, and image-decoding threads in benchmark "
        "(default %(default)s; the numbers do not depend on it)",
    )
    g.add_argument(
        "--allow-missing",
        action="store_true",
        help="score the files present in both folders instead of failing on missing or extra files",
    )
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def add_protocol_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("protocol")
    g.add_argument(
        "--protocol",
        choices=PROTOCOL_CHOICES,
        default="pysodmetrics",
        help="pysodmetrics: the standard metrics (PySODMetrics; maps min-max normalised, "
        "pred >= t, per-image F averaged); salmetric: max/mean F and MAE exactly as the "
        "SOD100K authors' SalMetric tool (raw maps, pred > t, precision and recall averaged "
        "before F, raw-mask MAE); both: the two side by side (default %(default)s)",
    )
    g.add_argument(
        "--salmetric-threads",
        type=int,
        default=DEFAULT_THREADS,
        help="salmetric: the tool's thread count to reproduce; its float32 sums are split "
        "by thread, which moves the last digit (default %(default)s, the tool's default)",
    )
    g.add_argument(
        "--size-mismatch",
        choices=MISMATCH_MODES,
        default="reference",
        help="salmetric: a map of another size than its mask is read the tool's way "
        "(reference: mask pixels at the map's row/column indices, no resize) or resized to "
        "the mask (resize, bilinear, as the pysodmetrics protocol does); default %(default)s",
    )


def protocol_kwargs(args: argparse.Namespace) -> dict:
    """The protocol options of ``args`` as keyword arguments of ``evaluate_folders``."""
    positive("salmetric-threads", args.salmetric_threads)
    return {
        "protocol": args.protocol,
        "salmetric_threads": args.salmetric_threads,
        "size_mismatch": args.size_mismatch,
    }


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "evaluate",
        help="score saliency maps against ground-truth masks",
        description="MAE, max/mean/adaptive F-measure (beta^2 = 0.3), S-measure, "
        "max/mean/adaptive E-measure and weighted F-measure, computed with PySODMetrics; "
        "or (--protocol salmetric) max/mean F and MAE as the SOD100K authors' SalMetric "
        "computes them. Files are matched by stem, in sub-folders too (maps/sub/a.png with "
        "masks/sub/a.png, as predict mirrors them); masks are binarised at 128.",
    )
    p.add_argument("--pred", required=True, type=Path, help="folder of saliency maps")
    p.add_argument("--gt", required=True, type=Path, help="folder of ground-truth masks")
    p.add_argument("--name", default=None, help="method name (default: the --pred folder)")
    p.add_argument(
        "--dataset",
        default=None,
        help="dataset name (default: from --gt, e.g. ECSSD/masks -> ECSSD)",
    )
    add_protocol_args(p)
    add_output_args(p)
    return p


def write_outputs(results: list[EvalResult], out_dir: Path | None) -> None:
    """Print the table; with ``out_dir``, also write the reports and the figures."""
    print(format_table(results))
    if out_dir is None or not results:
        return
    paths = write_reports(results, out_dir)
    paths.append(plot_pr_curves(results, out_dir / "pr.png"))
    paths.append(plot_f_curves(results, out_dir / "fmeasure.png"))
    print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    positive("workers", args.workers)
    method = args.name or args.pred.resolve().name
    dataset = args.dataset or dataset_name(args.gt)
    try:
        evaluation = evaluate_folders(
            args.pred,
            args.gt,
            method,
            dataset,
            args.allow_missing,
            args.workers,
            not args.quiet,
            **protocol_kwargs(args),
        )
    except PairingError as e:
        raise CLIError(str(e)) from e
    failures = Failures()
    for what, message in evaluation.failed:
        failures.add(what, message)
    if not evaluation.results:
        failures.report()
        raise CLIError(
            f"{args.pred}: none of the {len(evaluation.pairing.pairs)} "
            "prediction/mask pairs could be read"
        )
    write_outputs(evaluation.results, args.output)
    failures.report()
    return 1 if failures else 0
