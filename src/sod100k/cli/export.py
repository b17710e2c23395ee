"""``sod100k export``: an ONNX graph (fp32 or int8) of a model for ONNX Runtime, or
(``--web DIR``) a static folder that runs it in the browser."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from sod100k.checkpoints.loading import load_model
from sod100k.cli.common import (
    CLIError,
    add_model_args,
    model_and_weights,
    model_label,
    positive,
)
from sod100k.data.images import ImageError, list_images, load_rgb
from sod100k.infer.onnx_export import OPSET, ExportError, export_onnx, parity_error
from sod100k.infer.predictor import DEFAULT_SIZE
from sod100k.infer.preprocess import preprocess

#: fp32 parity required of an export (logits, max abs difference on random inputs).
PARITY_TOL = 1e-4


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export",
        help="export a model to ONNX (optionally int8)",
        description="Export the fused inference form of a CSNet to ONNX with dynamic batch "
        "and image size, check it with onnx.checker and against torch, and optionally "
        "quantise it to int8 with ONNX Runtime.",
    )
    p.add_argument("--format", default="onnx", choices=["onnx"], help="export format")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", "-o", type=Path, help="output .onnx file")
    out.add_argument(
        "--web",
        type=Path,
        metavar="DIR",
        help="write a static web bundle (page, sod100k.js, model, onnxruntime-web) to DIR",
    )
    p.add_argument("--opset", type=int, default=OPSET, help="ONNX opset (default %(default)s)")
    p.add_argument(
        "--int8",
        choices=["dynamic", "static"],
        default=None,
        help="write an int8 model: dynamic (weights only) or static (weights "
        "and activations, needs --calibration)",
    )
    p.add_argument(
        "--calibration",
        type=Path,
        default=None,
        help="folder of images for static int8 calibration",
    )
    p.add_argument(
        "--calibration-images",
        type=int,
        default=64,
        help="at most this many calibration images (default %(default)s)",
    )
    p.add_argument(
        "--size",
        type=int,
        default=DEFAULT_SIZE,
        help="image side used for calibration, and the web bundle's input side "
        "(default %(default)s)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing --out file, or the bundle files in a --web folder",
    )
    add_model_args(p)
    return p


def calibration_batches(folder: Path, limit: int, size: int) -> list[np.ndarray]:
    """Network inputs for static quantisation; unreadable images are reported and skipped."""
    images = list_images(folder)
    if not images:
        raise CLIError(f"--calibration {folder}: no images found")
    batches = []
    for path in images[:limit]:
        try:
            batches.append(preprocess(load_rgb(path), size)[None])
        except (ImageError, OSError) as e:
            print(f"warning: skipping calibration image: {e}", file=sys.stderr)
    if not batches:
        raise CLIError(f"--calibration {folder}: none of the images could be read")
    return batches


def export_checked(model, path: Path, opset: int) -> float:
    """Export ``model`` to ``path`` and return its max logit difference from torch.

    Raises:
        CLIError: the difference is over :data:`PARITY_TOL`.
    """
    export_onnx(model, path, opset)
    error = parity_error(
        model, path, np.random.default_rng(0).standard_normal((2, 3, 160, 224), dtype=np.float32)
    )
    if error > PARITY_TOL:
        raise CLIError(f"{path}: ONNX output differs from torch by {error:.2e} (> {PARITY_TOL:g})")
    return error


def run_web(args: argparse.Namespace) -> int:
    """``--web DIR``: the checked fp32 graph, written into a static bundle."""
    from sod100k.infer.preprocess import quantization_for
    from sod100k.web import RuntimeMissingError, write_bundle
    from sod100k.web.runtime import find_runtime

    if args.int8:
        raise CLIError("--web bundles the fp32 model; leave out --int8")
    if args.size < 16:
        raise CLIError(f"--size must be at least 16, got {args.size}")
    try:
        find_runtime()  # before the export, so a missing runtime costs nothing
    except RuntimeMissingError as e:
        raise CLIError(str(e)) from e
    model_name, weights = model_and_weights(args)
    model = load_model(model_name, weights)
    with tempfile.TemporaryDirectory(prefix="sod100k-export-") as tmp:
        graph = Path(tmp) / "model.onnx"
        try:
            error = export_checked(model, graph, args.opset)
        except ExportError as e:
            raise CLIError(str(e)) from e
        try:
            write_bundle(
                args.web,
                graph.read_bytes(),
                name=model_label(model_name, weights),
                size=args.size,
                quantization=quantization_for(getattr(model, "arch", None)),
                source=f"{model_name or 'model'} from {weights}",
                force=args.force,
            )
        except (RuntimeMissingError, FileExistsError) as e:
            raise CLIError(str(e)) from e
    print(
        f"wrote {args.web}/ (index.html, sod100k.js, model.onnx, ort/); max |logit "
        f"difference| vs torch: {error:.2e}. Serve it with any static server, e.g. "
        f"`python -m sod100k.web.static_server {args.web}`",
        file=sys.stderr,
    )
    return 0


def run(args: argparse.Namespace) -> int:
    positive("calibration-images", args.calibration_images)
    positive("size", args.size)
    if args.web is not None:
        return run_web(args)
    if args.out.exists() and not args.force:
        raise CLIError(f"{args.out} exists; pass --force to overwrite it")
    if args.int8 == "static" and args.calibration is None:
        raise CLIError("--int8 static needs --calibration FOLDER")
    model_name, weights = model_and_weights(args)
    if Path(weights).resolve() == args.out.resolve():
        raise CLIError(f"--out {args.out} would overwrite the weights")
    model = load_model(model_name, weights)
    try:
        if args.int8 is None:
            error = export_checked(model, args.out, args.opset)
            print(
                f"wrote {args.out} (opset {args.opset}); max |logit difference| vs torch "
                f"on a 2x3x160x224 batch: {error:.2e}",
                file=sys.stderr,
            )
            return 0
        from sod100k.infer.onnx_export import quantize_int8

        calib = (
            calibration_batches(args.calibration, args.calibration_images, args.size)
            if args.int8 == "static"
            else None
        )
        with tempfile.TemporaryDirectory(prefix="sod100k-export-") as tmp:
            fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", args.opset)
            quantize_int8(fp32, args.out, calib)
        print(
            f"wrote {args.out} (int8, {args.int8}"
            + (f", {len(calib)} calibration images" if calib else "")
            + ")",
            file=sys.stderr,
        )
        return 0
    except ExportError as e:
        raise CLIError(str(e)) from e
