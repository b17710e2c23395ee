"""The size knob: ECSSD accuracy and speed of both released checkpoints per input size.

For every checkpoint and every ``--sizes`` entry, predicts the ECSSD images at that input
size (the reference protocol with ``size x size`` instead of 224) with the OpenVINO fp32
backend, scores the maps with PySODMetrics (max F, beta^2 = 0.3; MAE) and times one
batch-1 inference (median ms after warm-up, ``--threads`` threads). Each checkpoint runs in
its own process. Writes ``sizes.json`` / ``sizes.md`` to ``--out``. Run from the
repository root:

    PYTHONPATH=src python benchmarks/sizes.py --weights ../shared/weights

``--limit N`` scores only the first N images (sorted by name) for a quick look;
``--no-timing`` scores without timing (accuracy does not depend on the machine's load,
timings do: take them on a quiet machine).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from harness import emit, median_ms, run_cell, worker_cell

SCRIPT = Path(__file__).resolve()
MODELS = ("csnet-L-x1", "csnet-L-x2")


def checkpoint_cell(cell: dict) -> dict:
    import py_sod_metrics

    from sod100k.data.images import list_images, load_mask, load_rgb
    from sod100k.infer.predictor import Predictor
    from sod100k.infer.runtime import make_backend

    backend = make_backend(
        "openvino", None, str(Path(cell["weights"]) / cell["model"]), threads=cell["threads"]
    )
    images = list_images(cell["images"])
    if cell["limit"]:
        images = images[: cell["limit"]]
    masks = Path(cell["masks"])
    pairs = [
        (load_rgb(p), load_mask(masks / f"{p.stem}.png").astype(np.uint8) * 255) for p in images
    ]
    rows = []
    for size in cell["sizes"]:
        predictor = Predictor(backend, size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Fmeasure announces its V2 successor
            fm = py_sod_metrics.Fmeasure()
        mae = py_sod_metrics.MAE()
        for rgb, gt in pairs:
            pred = predictor(rgb)
            fm.step(pred, gt)
            mae.step(pred, gt)
        x = np.random.default_rng(0).standard_normal((1, 3, size, size), np.float32)
        rows.append(
            {
                "model": cell["model"],
                "size": size,
                "max_f": round(float(fm.get_results()["fm"]["curve"].max()), 4),
                "mae": round(float(mae.get_results()["mae"]), 4),
                "ms": (
                    median_ms(lambda x=x: backend(x), cell["warmup"], cell["runs"])
                    if cell["timing"]
                    else None
                ),
            }
        )
        print(rows[-1], file=sys.stderr)
    return {"rows": rows, "images": len(pairs)}


def main() -> None:
    cell = worker_cell(sys.argv)
    if cell is not None:
        emit(checkpoint_cell(cell))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", type=Path, default=Path("../shared/weights"))
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--images", type=Path, default=Path("../shared/data/ECSSD/images"))
    p.add_argument("--masks", type=Path, default=Path("../shared/data/ECSSD/masks"))
    p.add_argument("--sizes", nargs="+", type=int, default=[160, 192, 224, 256, 288, 320, 352, 384])
    p.add_argument("--limit", type=int, default=0, help="score only the first N images")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--jobs", type=int, default=1, help="checkpoints scored side by side")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--no-timing", action="store_true", help="score only, no ms/image")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--machine", default=platform.processor() or platform.machine())
    args = p.parse_args()
    cells = [
        {
            "model": model,
            "weights": str(args.weights.resolve()),
            "images": str(args.images.resolve()),
            "masks": str(args.masks.resolve()),
            "sizes": args.sizes,
            "limit": args.limit,
            "threads": args.threads,
            "warmup": args.warmup,
            "runs": args.runs,
            "timing": not args.no_timing,
        }
        for model in args.models
    ]
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = list(pool.map(lambda c: run_cell(SCRIPT, c, timeout=7200), cells))
    rows = [r for result in results for r in result["rows"]]
    counts = {result["images"] for result in results}
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "PYTHONPATH=src python benchmarks/sizes.py " + shlex.join(sys.argv[1:])
    timing = (
        "not timed"
        if args.no_timing
        else f"ms: median of one batch-1 inference, {args.threads} threads"
    )
    lines = [
        f"ECSSD ({', '.join(map(str, sorted(counts)))} images of {args.images}), OpenVINO fp32; "
        f"{timing}. {args.machine}; {date}. "
        f"Command: `{command}`",
        "",
        "| model | size | max F | MAE | ms/image |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['size']} | {r['max_f']:.4f} | {r['mae']:.4f} | "
        f"{'–' if r['ms'] is None else format(r['ms'], '.1f')} |"
        for r in rows
    ]
    meta = {"machine": args.machine, "date": date, "command": command, "images": sorted(counts)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sizes.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (args.out / "sizes.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
