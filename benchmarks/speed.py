"""Inference speed of CSNet on CPU: eager, fused, torch.compile, ONNX Runtime, OpenVINO.

Reports the median milliseconds per image (after warm-up) for the released x1 and x2
checkpoints, at 224 and 384 pixels, batch 1 and 16, 1 and 2 threads, and writes
``speed.json`` and ``speed.md`` to ``--out``. Run from the repository root:

    PYTHONPATH=src python benchmarks/speed.py --weights ../shared/weights \\
        --calibration ../shared/data/DUTS-TR-2k/images --out benchmarks/results

torch.compile (inductor) compiles once per input shape, which costs minutes on a small
machine, so it is measured at 224, batch 1 only (``--compile-all`` measures every cell).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import openvino
import torch

from sod100k.checkpoints.loading import load_model
from sod100k.data.images import list_images, load_rgb
from sod100k.infer.backends import OnnxBackend, OpenVinoBackend
from sod100k.infer.fused import fuse_csnet
from sod100k.infer.onnx_export import export_onnx, quantize_int8
from sod100k.infer.preprocess import preprocess

log = logging.getLogger("speed")

VARIANTS = ("eager", "fused", "compile", "onnx-fp32", "onnx-int8", "openvino-fp32")
MODELS = {"x1": "csnet-L-x1", "x2": "csnet-L-x2"}


def median_ms_per_image(run: Callable[[], object], batch: int, warmup: int, runs: int) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times) / batch


def torch_runner(model: torch.nn.Module, x: np.ndarray) -> Callable[[], object]:
    xt = torch.from_numpy(x)

    def run() -> object:
        with torch.inference_mode():
            return model(xt)

    return run


def onnx_runner(model: Path, threads: int, x: np.ndarray) -> Callable[[], object]:
    backend = OnnxBackend(model, threads)
    return lambda: backend(x)


def openvino_runner(model: Path, threads: int, x: np.ndarray) -> Callable[[], object]:
    backend = OpenVinoBackend(model, threads)
    return lambda: backend(x)


def calibration_inputs(folder: Path, count: int) -> list[np.ndarray]:
    return [preprocess(load_rgb(p), 224)[None] for p in list_images(folder)[:count]]


def bench_model(name: str, args: argparse.Namespace, tmp: Path) -> list[dict]:
    eager = load_model(weights=args.weights / MODELS[name])
    fused = fuse_csnet(eager)
    fp32 = export_onnx(eager, tmp / f"{name}.onnx")
    int8 = quantize_int8(
        fp32,
        tmp / f"{name}-int8.onnx",
        calibration_inputs(args.calibration, args.calibration_count),
    )
    compiled = torch.compile(fused, dynamic=False)
    rows = []
    for size in args.sizes:
        for batch in args.batches:
            x = np.random.default_rng(0).standard_normal((batch, 3, size, size), np.float32)
            runs = args.runs if batch == 1 else max(2, args.runs // 2)
            for threads in args.threads:
                torch.set_num_threads(threads)
                row = {"model": name, "size": size, "batch": batch, "threads": threads}
                runners: dict[str, Callable[[], object]] = {
                    "eager": torch_runner(eager, x),
                    "fused": torch_runner(fused, x),
                    "onnx-fp32": onnx_runner(fp32, threads, x),
                    "onnx-int8": onnx_runner(int8, threads, x),
                    "openvino-fp32": openvino_runner(fp32, threads, x),
                }
                if args.compile_all or (size == 224 and batch == 1):
                    runners["compile"] = torch_runner(compiled, x)
                for variant in VARIANTS:
                    if variant in runners:
                        warmup = args.warmup + (2 if variant == "compile" else 0)
                        row[variant] = median_ms_per_image(runners[variant], batch, warmup, runs)
                log.info("%s", row)
                rows.append(row)
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    head = "| model | size | batch | threads | " + " | ".join(VARIANTS) + " |"
    lines = [
        f"Median ms/image after warm-up. {meta['machine']}; torch {meta['torch']}, "
        f"onnxruntime {meta['onnxruntime']}, openvino {meta['openvino']}; {meta['date']}.",
        f"Command: `{meta['command']}`",
        "",
        head,
        "|" + "---|" * (4 + len(VARIANTS)),
    ]
    for r in rows:
        cells = [f"{r[v]:.1f}" if v in r else "–" for v in VARIANTS]
        lines.append(
            f"| {r['model']} | {r['size']} | {r['batch']} | {r['threads']} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--weights",
        type=Path,
        default=Path("../shared/weights"),
        help="folder with the released csnet-L-x1 / csnet-L-x2 folders",
    )
    p.add_argument(
        "--calibration",
        type=Path,
        default=Path("../shared/data/DUTS-TR-2k/images"),
        help="images for static int8 calibration",
    )
    p.add_argument("--calibration-count", type=int, default=32)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--sizes", nargs="+", type=int, default=[224, 384])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--runs", type=int, default=5, help="timed runs (halved for batch > 1)")
    p.add_argument(
        "--compile-all",
        action="store_true",
        help="measure torch.compile at every size, not only at 224",
    )
    p.add_argument(
        "--machine",
        default=platform.processor() or platform.machine(),
        help="machine description for the table",
    )
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    meta = {
        "machine": args.machine,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "openvino": openvino.__version__,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "PYTHONPATH=src python benchmarks/speed.py " + shlex.join(sys.argv[1:]),
    }
    with tempfile.TemporaryDirectory(prefix="sod100k-speed-") as tmp:
        rows = [r for name in args.models for r in bench_model(name, args, Path(tmp))]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (args.out / "speed.md").write_text(markdown(rows, meta))
    log.info("wrote %s and %s", args.out / "speed.json", args.out / "speed.md")


if __name__ == "__main__":
    main()
