"""End-to-end throughput of ``sod100k predict`` over a folder (ECSSD's 1000 images).

Times the whole batch pipeline (decode, resize, infer, resize back, PNG encode, atomic
write) for one or more backend settings and writes ``e2e-<weights>.json`` and ``.md`` to
``--out``. Model loading / ONNX export is timed separately. Run from the repository root:

    PYTHONPATH=src python benchmarks/e2e.py --images ../shared/data/ECSSD/images \\
        --weights ../shared/weights/csnet-L-x1 --out benchmarks/results

Each setting is ``backend:threads:streams:batch``, e.g. ``onnx:1:2:1``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from sod100k.infer.batch import plan_jobs, run_batch
from sod100k.infer.predictor import Predictor
from sod100k.infer.runtime import make_backend


def measure(setting: str, args: argparse.Namespace) -> dict:
    backend_name, threads, streams, batch = setting.split(":")
    start = time.perf_counter()
    backend = make_backend(
        backend_name, None, str(args.weights), threads=int(threads), streams=int(streams)
    )
    load_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="sod100k-e2e-") as out:
        jobs, failed = plan_jobs([args.images], out)
        if failed:
            sys.exit(f"cannot plan {args.images}: {failed[0]}")
        start = time.perf_counter()
        report = run_batch(
            jobs, Predictor(backend), int(batch), args.workers, progress=False, streams=int(streams)
        )
        pipeline_s = time.perf_counter() - start
        shutil.rmtree(out, ignore_errors=True)
    return {
        "setting": setting,
        "weights": args.weights.name,
        "images": len(jobs),
        "written": len(report.written),
        "failed": len(report.failed),
        "load_s": round(load_s, 2),
        "pipeline_s": round(pipeline_s, 2),
        "images_per_s": round(len(report.written) / pipeline_s, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=Path, default=Path("../shared/data/ECSSD/images"))
    p.add_argument("--weights", type=Path, default=Path("../shared/weights/csnet-L-x1"))
    p.add_argument(
        "--settings",
        nargs="+",
        default=["onnx:1:2:1", "onnx:2:1:8"],
        help="backend:threads:streams:batch (default %(default)s)",
    )
    p.add_argument("--workers", type=int, default=2, help="decode/encode threads")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--machine", default=platform.processor() or platform.machine())
    args = p.parse_args()
    rows = [measure(s, args) for s in args.settings]
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "PYTHONPATH=src python benchmarks/e2e.py " + shlex.join(sys.argv[1:])
    lines = [
        f"{args.machine}; {date}. Command: `{command}`",
        "",
        "| weights | backend:threads:streams:batch | images | failed | load s | "
        "pipeline s | images/s |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['weights']} | {r['setting']} | {r['images']} | {r['failed']} | "
        f"{r['load_s']} | {r['pipeline_s']} | {r['images_per_s']} |"
        for r in rows
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"e2e-{args.weights.name}"
    meta = {"machine": args.machine, "date": date, "command": command}
    (args.out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
