"""``sod100k plot``: PR and F-measure-vs-threshold figures from results JSON files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sod100k.cli.common import CLIError
from sod100k.eval import read_results
from sod100k.eval.plots import plot_f_curves, plot_pr_curves


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "plot",
        help="draw PR and F-measure curves from results files",
        description="Put every method/dataset of the given results.json files (from "
        "evaluate or benchmark) on one PR figure and one F-vs-threshold figure, one panel "
        "per dataset.",
    )
    p.add_argument("results", nargs="+", type=Path, metavar="RESULTS.json")
    p.add_argument("--output", "-o", type=Path, required=True, help="output folder")
    p.add_argument("--prefix", default="", help="prefix for the figure file names")
    return p


def run(args: argparse.Namespace) -> int:
    results = []
    for path in args.results:
        try:
            results.extend(read_results(path))
        except ValueError as e:
            raise CLIError(str(e)) from e
    if not results:
        raise CLIError("the results files hold no results")
    pr = plot_pr_curves(results, args.output / f"{args.prefix}pr.png")
    f = plot_f_curves(results, args.output / f"{args.prefix}fmeasure.png")
    print(f"wrote {pr}, {f} ({len(results)} curve(s))", file=sys.stderr)
    return 0
