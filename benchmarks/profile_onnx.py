"""Where ONNX Runtime spends its time on CSNet: share of each operator type, per level.

Exports the checkpoint, runs ``--runs`` single-image inferences with ONNX Runtime's
profiler at the "extended" and "all" (NCHWc layout) optimisation levels and prints the
ms per image of each operator type, plus the median wall time per level. Run from the
repository root:

    PYTHONPATH=src python benchmarks/profile_onnx.py --weights ../shared/weights/csnet-L-x2
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from sod100k.checkpoints.loading import load_model
from sod100k.infer.onnx_export import export_onnx

LEVELS = {
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def profile(model: Path, level: str, args: argparse.Namespace, tmp: Path) -> None:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = LEVELS[level]
    opts.intra_op_num_threads = args.threads
    opts.enable_profiling = True
    opts.profile_file_prefix = str(tmp / f"profile-{level}")
    session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, args.size, args.size), np.float32)
    feed = {session.get_inputs()[0].name: x}
    for _ in range(3):
        session.run(None, feed)
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    events = json.loads(Path(session.end_profiling()).read_text())
    per_op: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"]
    total = sum(per_op.values())
    print(
        f"{level}: median {1000 * statistics.median(times):.1f} ms/image "
        f"({args.threads} thread(s), {args.size}x{args.size})"
    )
    for op, us in per_op.most_common(8):
        print(f"  {op:<12} {us / 1000 / (args.runs + 3):7.2f} ms  {100 * us / total:5.1f}%")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", type=Path, default=Path("../shared/weights/csnet-L-x2"))
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=20)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="sod100k-profile-") as tmp:
        model = export_onnx(load_model(weights=args.weights), Path(tmp) / "model.onnx")
        for level in LEVELS:
            profile(model, level, args, Path(tmp))


if __name__ == "__main__":
    main()
