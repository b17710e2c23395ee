"""The ``sod100k`` command line: one module per sub-command."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys

from sod100k import __version__
from sod100k.checkpoints.errors import CheckpointError
from sod100k.cli.common import CLIError, setup_logging
from sod100k.data import images
from sod100k.models.config import ConfigError

#: Sub-command modules; each defines ``add_parser(subparsers)`` and a ``run(args) -> int``.
COMMANDS = [
    "predict",
    "cutout",
    "info",
    "evaluate",
    "benchmark",
    "plot",
    "export",
    "serve",
    "train",
    "prune",
    "finetune",
]


EPILOG = """\
Run 'sod100k COMMAND --help' for the options and forms of each command.

exit status:
  0    success (predict/cutout: every input written)
  1    some inputs failed (batch commands list each at the end and write the others)
  2    usage error: a bad option or argument, unusable weights; nothing was run
  130  interrupted (Ctrl-C)"""


#: Commands that decode images: they take ``--max-megapixels`` (``serve`` has its own,
#: the per-request limit, which raises the decoder's as needed).
DECODING_COMMANDS = ("predict", "cutout", "evaluate", "benchmark", "export", "train", "finetune")

#: How "image too large" messages say to raise the limit on the command line.
RAISE_LIMIT_ADVICE = f"raise it with --max-megapixels MP or {images.MAX_MEGAPIXELS_ENV}=MP"


def add_image_limit_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-megapixels",
        type=float,
        default=None,
        metavar="MP",
        help=f"decode images up to MP megapixels (default: ${images.MAX_MEGAPIXELS_ENV}, "
        f"else {images.DEFAULT_MAX_MEGAPIXELS:g}); larger ones are refused, one line each",
    )


def _image_limit(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """The image limit ``args`` ask for, with the command line's advice in messages."""
    megapixels = getattr(args, "max_megapixels", None) if args.command != "serve" else None
    if megapixels is not None and not megapixels > 0:
        raise CLIError(f"--max-megapixels must be positive, got {megapixels:g}")
    try:
        images.max_pixels()
    except ValueError as e:  # a bad $SOD100K_MAX_MEGAPIXELS
        raise CLIError(str(e)) from e
    return images.decode_limit(megapixels, RAISE_LIMIT_ADVICE)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``sod100k`` argument parser with every sub-command (or with ``only`` that one).

    Each sub-command's module is imported to register its options; some import heavy
    libraries (evaluation: scikit-learn and SciPy through PySODMetrics; plots:
    matplotlib), seconds of start-up that ``sod100k predict`` does not need.
    """
    parser = argparse.ArgumentParser(
        prog="sod100k",
        description="Salient object detection with CSNet (SOD100K): saliency maps, "
        "cut-outs, evaluation, training, pruning, export and an HTTP service.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sod100k {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in [only] if only in COMMANDS else COMMANDS:
        module = importlib.import_module(f"sod100k.cli.{name}")
        p = module.add_parser(sub)
        if name in DECODING_COMMANDS:
            add_image_limit_arg(p)
        p.set_defaults(func=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``sod100k`` with ``argv`` (default: ``sys.argv[1:]``).

    Args:
        argv: the arguments after the program name.

    Returns:
        The exit status (see :data:`EPILOG`); argparse exits with 2 itself on bad syntax.
    """
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(only=command).parse_args(argv)
    setup_logging(args.verbose)
    try:
        with _image_limit(args):
            return int(args.func(args) or 0)
    except (CLIError, CheckpointError, ConfigError, FileNotFoundError) as e:
        message = " ".join(str(e).split())  # one line, whatever the library said
        print(f"sod100k {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into a program that stopped reading (``sod100k info | head``).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
