"""Network speed of CSNet on CPU: eager, fused, torch.compile, ONNX Runtime, OpenVINO.

Reports the median milliseconds per image (after warm-up) of the released x1 and x2
checkpoints for every size, batch and thread count asked for, and writes
``speed-<cpu class>.json`` / ``.md`` to ``--out`` (one result per CPU class, e.g.
``speed-x86-avx2``, ``speed-x86-avx512-amx``), headed by the CPU model, its relevant
flags, the command and the date. Each runtime (one column of one model) runs in a fresh
process (benchmarks/harness.py): ONNX Runtime's spinning idle threads would otherwise
slow whatever is timed after it. Run from the repository root:

    .venv/bin/python benchmarks/speed.py --sizes 224 --batches 1 --threads 2

``openvino-int8`` is the NNCF-quantised graph (calibrated on ``--calibration``; speed does
not depend on how many images, accuracy does: see benchmarks/precision.py);
``openvino-bf16`` is measured only on CPUs whose OpenVINO reports BF16 (AVX512-BF16 or
AMX); elsewhere its column is empty. torch.compile (inductor) compiles once per input
shape, which costs minutes on a small machine, so it is measured at 224, batch 1 only
(``--compile-all`` measures every cell).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

import harness

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
                ms = harness.median_ms(run, warmup, runs, per=batch)
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
        cells[variant] = harness.run_cell(SCRIPT, cell)["times"]
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


def markdown(rows: list[dict]) -> str:
    """The table: one row per model/size/batch/threads, one column per variant measured."""
    variants = [v for v in VARIANTS if any(v in r for r in rows)]
    return harness.markdown_table(["model", "size", "batch", "threads", *variants], rows)


def main() -> None:
    cell = harness.worker_cell(sys.argv)
    if cell is not None:
        harness.emit(variant_cell(cell))
        return
    p = harness.parser(__doc__, weights="../shared/weights", threads=[1, 2], timing=(1, 5))
    p.add_argument(
        "--calibration",
        type=Path,
        default=Path("../shared/data/DUTS-TR-2k/images"),
        help="images for int8 calibration (training images, never test images)",
    )
    p.add_argument("--calibration-count", type=int, default=32)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--sizes", nargs="+", type=int, default=[224, 384])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument(
        "--compile-all",
        action="store_true",
        help="measure torch.compile at every size, not only at 224",
    )
    args = p.parse_args()
    meta = harness.start("speed", args.note)
    rows = [r for name in args.models for r in bench_model(name, args)]
    harness.write_results(
        args.out,
        f"speed-{meta['machine']['cpu_class']}",
        meta,
        rows,
        markdown(rows),
        intro="Median ms per image after warm-up, each runtime in its own process.",
    )


if __name__ == "__main__":
    main()
