"""Which exported graph and OpenVINO settings are fastest for CSNet on this CPU.

For one checkpoint at one input size, times (median ms/image after warm-up):

* the fused graph with merged convs + channel split vs one conv per branch pair
  (``fuse_csnet(merge_convs=...)``) in OpenVINO (ONNX Runtime is left to speed.py,
  which runs it in a process of its own: its spinning threads would slow OpenVINO here);
* OpenVINO at fp32 and bf16 (with the largest logit difference bf16 causes);
* OpenVINO options (latency hint, denormal flushing, CPU pinning, core type), timed in
  interleaved rounds (every setting once per round, ``--rounds`` rounds) so that a
  change of machine load hits all of them alike; the table gives the median and the
  best round;

and, with ``--profile``, OpenVINO's per-node-type time for the shipped setting. Run from
the repository root:

    PYTHONPATH=src python benchmarks/openvino_variants.py --weights ../shared/weights/csnet-L-x2
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path

import numpy as np
import openvino as ov
import torch

from harness import median_ms as _median_ms
from sod100k.checkpoints.loading import load_model
from sod100k.infer.onnx_export import export_bytes
from sod100k.utils.files import atomic_write_bytes


def median_ms(run, warmup: int = 10, runs: int = 40) -> float:
    return _median_ms(run, warmup, runs)


def interleaved(runs: dict, rounds: int, per_round: int = 10) -> dict[str, tuple[float, float]]:
    """``name -> (median, best)`` of per-round median ms, all settings once per round."""
    for run in runs.values():
        median_ms(run, warmup=5, runs=1)
    per: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            per[name].append(median_ms(run, warmup=0, runs=per_round))
    return {name: (float(np.median(v)), min(v)) for name, v in per.items()}


def openvino_request(path: Path, shape: list[int], config: dict):
    core = ov.Core()
    model = core.read_model(str(path))
    model.reshape({0: shape})
    return core.compile_model(model, "CPU", config).create_infer_request()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", type=Path, default=Path("../shared/weights/csnet-L-x2"))
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=10, help="interleaved rounds of the settings")
    p.add_argument("--profile", action="store_true", help="per-node-type OpenVINO profile")
    args = p.parse_args()
    model = load_model(weights=args.weights)
    x = np.random.default_rng(0).standard_normal((1, 3, args.size, args.size), np.float32)
    with torch.inference_mode():
        reference = model(torch.from_numpy(x))[:, 0].numpy()
    base = {"INFERENCE_NUM_THREADS": args.threads, "NUM_STREAMS": 1}
    fp32 = {**base, "INFERENCE_PRECISION_HINT": "f32"}
    print(f"{args.weights.name}, {args.size}x{args.size}, batch 1, {args.threads} threads")
    print(
        "| graph | runtime | setting | ms/image, median (best) of rounds | "
        "max abs logit diff vs torch |"
    )
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for merge in (True, False):
            graph = "merged + split" if merge else "pairwise convs"
            path = Path(tmp) / f"m{int(merge)}.onnx"
            atomic_write_bytes(path, export_bytes(model, sample_size=args.size, merge_convs=merge))
            settings = {"fp32": fp32, "bf16": {**base, "INFERENCE_PRECISION_HINT": "bf16"}}
            if not merge:
                settings.update(
                    {
                        "fp32 + LATENCY hint": {**fp32, "PERFORMANCE_HINT": "LATENCY"},
                        "fp32 + denormals flushed": {**fp32, "CPU_DENORMALS_OPTIMIZATION": True},
                        "fp32 + CPU pinning": {**fp32, "ENABLE_CPU_PINNING": True},
                        "fp32 + pinning + denormals": {
                            **fp32,
                            "ENABLE_CPU_PINNING": True,
                            "CPU_DENORMALS_OPTIMIZATION": True,
                        },
                        "fp32 + core type ANY": {**fp32, "SCHEDULING_CORE_TYPE": "ANY_CORE"},
                    }
                )
            runs, diffs = {}, {}
            for name, config in settings.items():
                req = openvino_request(path, list(x.shape), config)
                out = np.array(req.infer({0: x})[0])[:, 0]
                diffs[name] = np.abs(out - reference).max()
                runs[name] = lambda r=req: r.infer({0: x})
            for name, (ms, best) in interleaved(runs, args.rounds).items():
                print(
                    f"| {graph} | openvino | {name} | {ms:.1f} (best {best:.1f}) | "
                    f"{diffs[name]:.1e} |"
                )
        if args.profile:
            req = openvino_request(path, list(x.shape), {**fp32, "PERF_COUNT": True})
            median_ms(lambda: req.infer({0: x}))
            total: collections.Counter = collections.Counter()
            for _ in range(20):
                req.infer({0: x})
                for node in req.profiling_info:
                    total[node.node_type] += node.real_time.total_seconds() * 1000 / 20
            whole = sum(total.values())
            print(f"\nOpenVINO profile (pairwise convs, fp32): {whole:.2f} ms of node time")
            for kind, ms in total.most_common(10):
                print(f"  {kind:18s} {ms:6.2f} ms {ms / whole:6.1%}")


if __name__ == "__main__":
    main()
