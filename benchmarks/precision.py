"""ECSSD accuracy and speed of CSNet per OpenVINO precision (fp32, bf16, int8) and input size.

For each checkpoint (``--models``) and precision (``--precisions``), in a process of its
own: export the checkpoint to ONNX and read it into OpenVINO (for int8: quantise it with
NNCF, calibrated on ``--calibration-count`` images of ``--calibration``, training images,
never test images); then for each ``--sizes`` entry predict every image of ``--images``
through ``sod100k``'s predictor at that input size, score the maps against ``--masks``
with PySODMetrics (max F over thresholds with beta^2 = 0.3; MAE), and time one batch-1
inference (median ms after warm-up; ``--no-timing`` skips it: accuracy does not depend on
the machine's load, timings do). Writes ``precision-<cpu class>.json`` / ``.md`` to
``--out``. Run from the repository root:

    .venv/bin/python benchmarks/precision.py --precisions fp32 bf16 int8 --sizes 224

Each row is compared with fp32 of the same model and size: a precision passes the bar
when max F drops by at most 0.005 and MAE rises by at most 0.002. ``bf16`` runs only where
OpenVINO reports BF16 (CPUs with AVX512-BF16 or AMX: there it uses real bf16 kernels);
elsewhere a bf16 request would run fp32, so the row is left out and the log says so.
int8 variants: ``int8`` quantises every conv, ``int8-no-dw`` keeps the depthwise convs in
fp32, ``int8-no-head`` keeps the head and the classifier in fp32.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import numpy as np

import harness

log = logging.getLogger("precision")

SCRIPT = Path(__file__).resolve()
MODELS = {"x1": "csnet-L-x1", "x2": "csnet-L-x2"}
MAX_F_DROP = 0.005
MAE_RISE = 0.002
#: NNCF options of each int8 variant (``quantize_openvino`` keyword arguments).
INT8_VARIANTS = {
    "int8": {},
    "int8-no-dw": {"ignored_types": ("GroupConvolution",)},
    "int8-no-head": {"ignored_patterns": (".*head.*", ".*classifier.*", "logits")},
}
PRECISIONS = ("fp32", "bf16", *INT8_VARIANTS)


def make_backend(cell: dict):
    """The OpenVINO backend of the cell's model and precision; None where the CPU lacks it."""
    from sod100k.checkpoints.loading import load_model
    from sod100k.infer.backends import OpenVinoBackend
    from sod100k.infer.onnx_export import export_bytes

    precision = cell["precision"]
    model = OpenVinoBackend(export_bytes(load_model(weights=cell["weights"]))).model
    if precision == "bf16":
        import openvino as ov

        if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            return None
    if precision in INT8_VARIANTS:
        from sod100k.infer.int8 import calibration_batches, quantize_openvino

        calib = calibration_batches(cell["calibration"], cell["calibration_count"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = quantize_openvino(model, calib, **INT8_VARIANTS[precision])
        precision = "int8"
    return OpenVinoBackend(model, cell["threads"], precision=precision)


def precision_cell(cell: dict) -> dict:
    """Max F, MAE and ms of one model at one precision, for every size of the cell."""
    import py_sod_metrics

    from sod100k.data.images import list_images, load_mask, load_rgb
    from sod100k.infer.predictor import Predictor

    backend = make_backend(cell)
    if backend is None:
        return {"rows": [], "skipped": "OpenVINO reports no BF16 on this CPU"}
    images = list_images(cell["images"])[: cell["limit"] or None]
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
        ms = None
        if cell["timing"]:
            x = np.random.default_rng(0).standard_normal((1, 3, size, size), np.float32)
            ms = harness.median_ms(lambda x=x: backend(x), cell["warmup"], cell["runs"])
        rows.append(
            {
                "model": cell["model"],
                "precision": cell["precision"],
                "size": size,
                "images": len(pairs),
                "max_f": round(float(fm.get_results()["fm"]["curve"].max()), 4),
                "mae": round(float(mae.get_results()["mae"]), 4),
                "ms": ms,
            }
        )
        log.info("%s", rows[-1])
    return {"rows": rows}


def compare(rows: list[dict]) -> list[dict]:
    """Each row with its change against fp32 of the same model and size, and the verdict."""
    base = {(r["model"], r["size"]): r for r in rows if r["precision"] == "fp32"}
    out = []
    for r in sorted(rows, key=lambda r: (r["model"], r["size"], PRECISIONS.index(r["precision"]))):
        ref = base.get((r["model"], r["size"]))
        if ref is None or r is ref:
            out.append(dict(r))
            continue
        d_f, d_mae = r["max_f"] - ref["max_f"], r["mae"] - ref["mae"]
        out.append(
            {
                **r,
                "d_max_f": f"{d_f:+.4f}",
                "d_mae": f"{d_mae:+.4f}",
                "passes": "yes" if d_f >= -MAX_F_DROP and d_mae <= MAE_RISE else "no",
                "speedup": f"{ref['ms'] / r['ms']:.2f}x" if ref["ms"] and r["ms"] else None,
            }
        )
    return out


COLUMNS = {
    "model": "model",
    "size": "size",
    "precision": "precision",
    "max_f": "max F",
    "d_max_f": "Δ max F",
    "mae": "MAE",
    "d_mae": "Δ MAE",
    "passes": "passes the bar",
    "ms": "ms (batch 1)",
    "speedup": "vs fp32",
}


def main() -> None:
    cell = harness.worker_cell(sys.argv)
    if cell is not None:
        harness.emit(precision_cell(cell))
        return
    p = harness.parser(__doc__, weights="../shared/weights", threads=2, timing=(10, 50))
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=PRECISIONS)
    p.add_argument("--sizes", nargs="+", type=int, default=[224])
    p.add_argument("--images", type=Path, default=Path("../shared/data/ECSSD/images"))
    p.add_argument("--masks", type=Path, default=Path("../shared/data/ECSSD/masks"))
    p.add_argument("--limit", type=int, default=0, help="score only the first N images")
    p.add_argument("--calibration", type=Path, default=Path("../shared/data/DUTS-TR-2k/images"))
    p.add_argument("--calibration-count", type=int, default=300)
    p.add_argument("--no-timing", action="store_true", help="score only, no ms/image")
    args = p.parse_args()
    meta = harness.start("precision", args.note)
    rows = []
    for model in args.models:
        for precision in args.precisions:
            cell = {
                "model": model,
                "precision": precision,
                "weights": str((args.weights / MODELS[model]).resolve()),
                "images": str(args.images.resolve()),
                "masks": str(args.masks.resolve()),
                "limit": args.limit,
                "sizes": args.sizes,
                "calibration": str(args.calibration.resolve()),
                "calibration_count": args.calibration_count,
                "threads": args.threads,
                "timing": not args.no_timing,
                "warmup": args.warmup,
                "runs": args.runs,
            }
            result = harness.run_cell(SCRIPT, cell, timeout=4 * 3600)
            if result.get("skipped"):
                log.warning("%s %s left out: %s", model, precision, result["skipped"])
            rows += result["rows"]
    rows = compare(rows)
    images = rows[0]["images"] if rows else 0
    intro = (
        f"ECSSD max F (beta^2 = 0.3) and MAE, PySODMetrics, {images} images of "
        f"{args.images}; OpenVINO, {args.threads} threads, each model and precision in its "
        f"own process; int8 calibrated on {args.calibration_count} images of "
        f"{args.calibration}. Bar: max F -{MAX_F_DROP}, MAE +{MAE_RISE} against fp32."
    )
    harness.write_results(
        args.out,
        f"precision-{meta['machine']['cpu_class']}",
        meta,
        rows,
        harness.markdown_table(COLUMNS, rows),
        intro=intro,
    )


if __name__ == "__main__":
    main()
