"""Inference speed of CSNet on CPU: eager, fused, torch.compile, ONNX Runtime, OpenVINO.

Reports the median milliseconds per image (after warm-up) for the released x1 and x2
checkpoints, at 224 and 384 pixels, batch 1 and 16, 1 and 2 threads, and writes
``speed.json`` and ``speed.md`` to ``--out``. Each runtime (one column of one model) runs
in a fresh process (benchmarks/isolated.py): ONNX Runtime's spinning idle threads would
otherwise slow whatever is timed after it. Run from the repository root:

    PYTHONPATH=src python benchmarks/speed.py --weights ../shared/weights \\
        --calibration ../shared/data/DUTS-TR-2k/images --out benchmarks/results

``openvino-int8`` is the NNCF-quantised graph (calibrated on ``--calibration``; speed does
not depend on how many images, accuracy does: see benchmarks/int8_openvino.py);
``openvino-bf16`` is measured only on CPUs with bf16 support. torch.compile (inductor)
compiles once per input shape, which costs minutes on a small machine, so it is measured
at 224, batch 1 only (``--compile-all`` measures every cell).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from isolated import emit, median_ms, run_cell, worker_cell

log = logging.getLogger("speed")

SCRIPT = Path(__file__).resolve()
VARIANTS = (
    "eager",
    "fused",
    "compile",
    "onnx-fp32",
    "openvino-fp32",
    "openvino-int8",
    "openvino-bf16",
)
MODELS = {"x1": "csnet-L-x1", "x2": "csnet-L-x2"}


def median_ms_per_image(run: Callable[[], object], batch: int, warmup: int, runs: int) -> float:
    return median_ms(run, warmup, runs, per=batch)


def make_runner(cell: dict) -> Callable[[np.ndarray, int], Callable[[], object]] | None:
    """``runner(x, threads)`` for the cell's variant (None: not available here)."""
    import torch

    from sod100k.checkpoints.loading import load_model
    from sod100k.infer.backends import OnnxBackend, OpenVinoBackend
    from sod100k.infer.fused import fuse_csnet
    from sod100k.infer.onnx_export import export_bytes

    variant = cell["variant"]
    eager = load_model(weights=Path(cell["weights"]) / MODELS[cell["model"]])
    if variant in ("eager", "fused", "compile"):
        net = eager if variant == "eager" else fuse_csnet(eager)
        if variant == "compile":
            net = torch.compile(net, dynamic=False)

        def torch_runner(x: np.ndarray, threads: int) -> Callable[[], object]:
            torch.set_num_threads(threads)
            xt = torch.from_numpy(x)

            def run() -> object:
                with torch.inference_mode():
                    return net(xt)

            return run

        return torch_runner
    graph = export_bytes(eager)
    if variant == "onnx-fp32":
        return lambda x, threads: _bound(OnnxBackend(graph, threads), x)
    import openvino as ov

    core = ov.Core()
    if variant == "openvino-bf16" and "BF16" not in core.get_property(
        "CPU", "OPTIMIZATION_CAPABILITIES"
    ):
        return None
    model = OpenVinoBackend(graph).model
    precision = variant.split("-")[1]
    if precision == "int8":
        from sod100k.infer.int8 import calibration_batches, quantize_openvino

        calib = calibration_batches(cell["calibration"], cell["calibration_count"])
        model = quantize_openvino(model, calib)
    return lambda x, threads: _bound(OpenVinoBackend(model, threads, precision=precision), x)


def _bound(backend: Callable[[np.ndarray], object], x: np.ndarray) -> Callable[[], object]:
    return lambda: backend(x)


def variant_cell(cell: dict) -> dict:
    """Times of one variant of one model over every size, batch and thread count."""
    runner = make_runner(cell)
    times = {}
    if runner is None:
        return {"times": times}
    for size in cell["sizes"]:
        for batch in cell["batches"]:
            if cell["variant"] == "compile" and not (
                cell["compile_all"] or (size == 224 and batch == 1)
            ):
                continue
            x = np.random.default_rng(0).standard_normal((batch, 3, size, size), np.float32)
            runs = cell["runs"] if batch == 1 else max(2, cell["runs"] // 2)
            warmup = cell["warmup"] + (2 if cell["variant"] == "compile" else 0)
            for threads in cell["threads"]:
                run = runner(x, threads)
                ms = median_ms_per_image(run, batch, warmup, runs)
                times[f"{size}:{batch}:{threads}"] = ms
    return {"times": times}


def bench_model(name: str, args: argparse.Namespace) -> list[dict]:
    cells: dict[str, dict] = {}
    for variant in args.variants:
        cell = {
            "model": name,
            "variant": variant,
            "weights": str(args.weights.resolve()),
            "calibration": str(args.calibration.resolve()),
            "calibration_count": args.calibration_count,
            "sizes": args.sizes,
            "batches": args.batches,
            "threads": args.threads,
            "warmup": args.warmup,
            "runs": args.runs,
            "compile_all": args.compile_all,
        }
        cells[variant] = run_cell(SCRIPT, cell)["times"]
        log.info("%s %s: %s", name, variant, cells[variant])
    rows = []
    for size in args.sizes:
        for batch in args.batches:
            for threads in args.threads:
                row = {"model": name, "size": size, "batch": batch, "threads": threads}
                key = f"{size}:{batch}:{threads}"
                for variant, times in cells.items():
                    if key in times:
                        row[variant] = times[key]
                rows.append(row)
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    variants = [v for v in VARIANTS if any(v in r for r in rows)]
    head = "| model | size | batch | threads | " + " | ".join(variants) + " |"
    lines = [
        f"Median ms/image after warm-up, each runtime in its own process. "
        f"{meta['machine']}; torch {meta['torch']}, "
        f"onnxruntime {meta['onnxruntime']}, openvino {meta['openvino']}; {meta['date']}.",
        f"Command: `{meta['command']}`",
        "",
        head,
        "|" + "---|" * (4 + len(variants)),
    ]
    for r in rows:
        cells = [f"{r[v]:.1f}" if v in r else "–" for v in variants]
        lines.append(
            f"| {r['model']} | {r['size']} | {r['batch']} | {r['threads']} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def versions() -> dict[str, str]:
    """Library versions, read in a child process (the parent imports no runtime)."""
    code = (
        "import json, torch, onnxruntime, openvino; print(json.dumps({'torch': "
        "torch.__version__, 'onnxruntime': onnxruntime.__version__, "
        "'openvino': openvino.__version__.split('-')[0]}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    cell = worker_cell(sys.argv)
    if cell is not None:
        emit(variant_cell(cell))
        return
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
        help="images for int8 calibration (training images, never test images)",
    )
    p.add_argument("--calibration-count", type=int, default=32)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--sizes", nargs="+", type=int, default=[224, 384])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
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
        **versions(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "PYTHONPATH=src python benchmarks/speed.py " + shlex.join(sys.argv[1:]),
    }
    rows = [r for name in args.models for r in bench_model(name, args)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (args.out / "speed.md").write_text(markdown(rows, meta))
    log.info("wrote %s and %s", args.out / "speed.json", args.out / "speed.md")


if __name__ == "__main__":
    main()
