"""What int8 quantisation costs in accuracy: ECSSD max F-measure and MAE, fp32 vs int8.

Exports the checkpoint to ONNX fp32, quantises it (static QDQ calibrated on
``--calibration`` images, which should not be test images, and dynamic), predicts every
image of ``--images`` with each graph through the reference protocol and scores the maps
against ``--masks`` with PySODMetrics (max F over thresholds, beta^2 = 0.3; MAE). Writes
``int8-<weights>.json`` / ``.md`` to ``--out``. Run from the repository root:

    PYTHONPATH=src python benchmarks/int8_accuracy.py --weights ../shared/weights/csnet-L-x2
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import py_sod_metrics

from sod100k.checkpoints.loading import load_model
from sod100k.data.images import list_images, load_mask, load_rgb
from sod100k.infer.backends import OnnxBackend
from sod100k.infer.onnx_export import export_onnx, quantize_int8
from sod100k.infer.predictor import Predictor
from sod100k.infer.preprocess import preprocess


def score(model: Path, images: list[Path], masks: Path, threads: int) -> dict[str, float]:
    return score_predictor(Predictor(OnnxBackend(model, threads)), images, masks)


def score_predictor(predictor: Predictor, images: list[Path], masks: Path) -> dict[str, float]:
    """ECSSD-style max F and MAE (PySODMetrics) of ``predictor`` on ``images``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Fmeasure announces its V2 successor
        fm = py_sod_metrics.Fmeasure()
    mae = py_sod_metrics.MAE()
    for path in images:
        gt = load_mask(masks / f"{path.stem}.png").astype(np.uint8) * 255
        pred = predictor(load_rgb(path))
        fm.step(pred, gt)
        mae.step(pred, gt)
    return {
        "max_f": round(float(fm.get_results()["fm"]["curve"].max()), 4),
        "mae": round(float(mae.get_results()["mae"]), 4),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", type=Path, default=Path("../shared/weights/csnet-L-x2"))
    p.add_argument("--images", type=Path, default=Path("../shared/data/ECSSD/images"))
    p.add_argument("--masks", type=Path, default=Path("../shared/data/ECSSD/masks"))
    p.add_argument("--calibration", type=Path, default=Path("../shared/data/DUTS-TR-2k/images"))
    p.add_argument("--calibration-count", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--machine", default=platform.processor() or platform.machine())
    args = p.parse_args()
    images = list_images(args.images)
    calib = [
        preprocess(load_rgb(q), 224)[None]
        for q in list_images(args.calibration)[: args.calibration_count]
    ]
    results = {}
    with tempfile.TemporaryDirectory(prefix="sod100k-int8-") as tmp:
        fp32 = export_onnx(load_model(weights=args.weights), Path(tmp) / "fp32.onnx")
        graphs = {
            "fp32": fp32,
            "int8 static": quantize_int8(fp32, Path(tmp) / "static.onnx", calib),
            "int8 dynamic": quantize_int8(fp32, Path(tmp) / "dynamic.onnx"),
        }
        for name, graph in graphs.items():
            results[name] = score(graph, images, args.masks, args.threads)
            print(name, results[name], file=sys.stderr)
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "PYTHONPATH=src python benchmarks/int8_accuracy.py " + shlex.join(sys.argv[1:])
    base = results["fp32"]
    lines = [
        f"{args.weights.name} on {len(images)} images of {args.images}; static "
        f"calibration: {len(calib)} images of {args.calibration}. {args.machine}; "
        f"{date}. Command: `{command}`",
        "",
        "| graph | max F | Δ max F | MAE | Δ MAE |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {r['max_f']:.4f} | {r['max_f'] - base['max_f']:+.4f} | "
        f"{r['mae']:.4f} | {r['mae'] - base['mae']:+.4f} |"
        for name, r in results.items()
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"int8-{args.weights.name}"
    meta = {"machine": args.machine, "date": date, "command": command, "images": len(images)}
    (args.out / f"{stem}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
