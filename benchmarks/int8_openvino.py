"""What OpenVINO int8 (NNCF post-training quantisation) and bf16 cost in accuracy.

Exports the checkpoint to ONNX, reads it into OpenVINO, quantises it with NNCF calibrated
on ``--calibration-count`` images of ``--calibration`` (DUTS-TR: never test images), then
predicts every image of ``--images`` through the reference protocol with fp32, bf16
(where the CPU has it) and each int8 variant, and scores the maps against ``--masks``
(PySODMetrics: max F over thresholds with beta^2 = 0.3, and MAE). An int8 variant passes
when max F drops by at most 0.005 and MAE rises by at most 0.002. Writes
``int8-openvino-<weights>.json`` / ``.md`` to ``--out``. Run from the repository root:

    PYTHONPATH=src python benchmarks/int8_openvino.py --weights ../shared/weights/csnet-L-x2

Variants: ``all`` quantises every conv; ``no-dw`` keeps the depthwise convs in fp32;
``no-head`` keeps the head (its dilated convs, merge) and the classifier in fp32; ``-fbc``
uses NNCF's full bias correction instead of the fast one.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import openvino as ov

from int8_accuracy import score_predictor  # benchmarks/int8_accuracy.py, beside this script
from sod100k.checkpoints.loading import load_model
from sod100k.data.images import list_images
from sod100k.infer.backends import OpenVinoBackend
from sod100k.infer.int8 import calibration_batches, quantize_openvino
from sod100k.infer.onnx_export import export_bytes
from sod100k.infer.predictor import Predictor

MAX_F_DROP = 0.005
MAE_RISE = 0.002
VARIANTS = {
    "all": {},
    "all-fbc": {"fast_bias_correction": False},
    "no-dw": {"ignored_types": ("GroupConvolution",)},
    "no-head": {"ignored_patterns": (".*head.*", ".*classifier.*", "logits")},
    "no-head-fbc": {
        "ignored_patterns": (".*head.*", ".*classifier.*", "logits"),
        "fast_bias_correction": False,
    },
}


def score(backend: OpenVinoBackend, images: list[Path], masks: Path) -> dict[str, float]:
    return score_predictor(Predictor(backend), images, masks)


def latency_ms(backend: OpenVinoBackend, size: int, runs: int = 50) -> float:
    """Median ms of one 1 x 3 x size x size inference after warm-up (noisy when loaded)."""
    x = np.random.default_rng(0).standard_normal((1, 3, size, size), np.float32)
    for _ in range(10):
        backend(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        backend(x)
        times.append(time.perf_counter() - start)
    return round(1000 * float(np.median(times)), 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", type=Path, default=Path("../shared/weights/csnet-L-x2"))
    p.add_argument("--images", type=Path, default=Path("../shared/data/ECSSD/images"))
    p.add_argument("--masks", type=Path, default=Path("../shared/data/ECSSD/masks"))
    p.add_argument("--calibration", type=Path, default=Path("../shared/data/DUTS-TR-2k/images"))
    p.add_argument("--calibration-count", type=int, default=300)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--limit", type=int, default=0, help="score only the first N images")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--machine", default=platform.processor() or platform.machine())
    args = p.parse_args()
    images = list_images(args.images)
    if args.limit:
        images = images[: args.limit]
    calib = calibration_batches(args.calibration, args.calibration_count)
    core = ov.Core()
    with tempfile.TemporaryDirectory(prefix="sod100k-int8-") as tmp:
        path = Path(tmp) / "fp32.onnx"
        path.write_bytes(export_bytes(load_model(weights=args.weights)))
        fp32 = core.read_model(str(path))
    backends = {"fp32": OpenVinoBackend(fp32, args.threads)}
    if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        backends["bf16"] = OpenVinoBackend(fp32, args.threads, precision="bf16")
    for name in args.variants:
        start = time.perf_counter()
        int8 = quantize_openvino(fp32.clone(), calib, **VARIANTS[name])
        print(f"int8 {name}: quantised in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        backends[f"int8 {name}"] = OpenVinoBackend(int8, args.threads, precision="int8")
    results = {}
    for name, backend in backends.items():
        results[name] = score(backend, images, args.masks)
        results[name]["ms_224"] = latency_ms(backend, 224)
        print(name, results[name], file=sys.stderr)
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "PYTHONPATH=src python benchmarks/int8_openvino.py " + shlex.join(sys.argv[1:])
    base = results["fp32"]
    lines = [
        f"{args.weights.name} on {len(images)} images of {args.images}; calibration: "
        f"{len(calib)} images of {args.calibration}. {args.machine}; {date}. "
        f"Command: `{command}`",
        "",
        "| precision | max F | Δ max F | MAE | Δ MAE | passes the bar | ms (224, batch 1) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        dF, dM = r["max_f"] - base["max_f"], r["mae"] - base["mae"]
        ok = dF >= -MAX_F_DROP and dM <= MAE_RISE
        r["passes"] = ok
        lines.append(
            f"| {name} | {r['max_f']:.4f} | {dF:+.4f} | {r['mae']:.4f} | {dM:+.4f} | "
            f"{'yes' if ok else 'no'} | {r['ms_224']} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"int8-openvino-{args.weights.name}"
    meta = {"machine": args.machine, "date": date, "command": command, "images": len(images)}
    (args.out / f"{stem}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
