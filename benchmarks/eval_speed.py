"""Time `sod100k evaluate` scoring with 1 and 2 worker processes; check identical numbers.

Usage (from the repository root; heavy, so under the shared lock):

    python benchmarks/eval_speed.py \
        --pred /tmp/ours-x1 --gt ../shared/data/ECSSD/masks --workers 1 2 \
        [--protocol pysodmetrics|salmetric|both]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from harness import cpu_model  # noqa: E402
from sod100k.eval import (  # noqa: E402
    PROTOCOL_CHOICES,
    evaluate_pairs,
    pair_by_stem,
    protocols_of,
)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished workers: a measure that a
    busy machine disturbs less than wall time."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pred", type=Path, required=True)
    p.add_argument("--gt", type=Path, required=True)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--protocol", choices=PROTOCOL_CHOICES, default="pysodmetrics")
    args = p.parse_args()
    pairs = pair_by_stem(args.pred, args.gt).pairs
    runs = {}
    cpu = {}
    for workers in args.workers:
        cpu_before = _cpu_seconds()
        started = time.perf_counter()
        outcome = evaluate_pairs(
            pairs, workers=workers, progress=False, protocols=protocols_of(args.protocol)
        )
        seconds = time.perf_counter() - started
        cpu[workers] = round(_cpu_seconds() - cpu_before, 2)
        metrics = {}
        if outcome.scores is not None:
            metrics["pysodmetrics"] = outcome.scores.metrics
        if outcome.salmetric is not None:
            metrics["salmetric"] = outcome.salmetric.metrics
        runs[workers] = (seconds, metrics)
        print(f"workers={workers}: {len(pairs)} pairs in {seconds:.1f} s", flush=True)
    first = next(iter(runs.values()))[1]
    identical = all(metrics == first for _, metrics in runs.values())
    print(
        json.dumps(
            {
                "pairs": len(pairs),
                "protocol": args.protocol,
                "seconds": {w: round(s, 2) for w, (s, _) in runs.items()},
                "cpu_seconds": cpu,
                "identical_numbers": identical,
                "metrics": first,
                "machine": f"{cpu_model()}, {os.cpu_count()} CPUs",
                "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            },
            indent=1,
        )
    )
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
