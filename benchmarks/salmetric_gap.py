"""Why SalMetric's numbers differ from PySODMetrics': the gap split into its causes.

For one folder of maps and its masks, prints max F and MAE under both protocols and the
steps between them:

* max F: PySODMetrics (per-image F curves averaged, maps min-max normalised, ``>= t``);
  the same per-image curves but F taken from the dataset-mean precision and recall (the
  aggregation alone); SalMetric's per-image P/R (raw maps, ``> t``, eps) with per-image F
  averaged; SalMetric itself (F of the dataset-mean P/R);
* MAE: PySODMetrics (normalised map vs binarised mask); the raw map vs the binarised
  mask (normalisation alone); SalMetric (raw map vs the raw mask / 255: grey edges).

Usage (from the repository root):

    python benchmarks/salmetric_gap.py --pred /tmp/ecssd-x2 --gt ../shared/data/ECSSD/masks
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from eval_speed import cpu_model  # noqa: E402
from sod100k.eval import pair_by_stem, salmetric  # noqa: E402
from sod100k.eval.metrics import BETA2, summarize  # noqa: E402
from sod100k.eval.parallel import PROTOCOLS, score_pair  # noqa: E402


def f_measure(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    p, r = np.asarray(p, np.float64), np.asarray(r, np.float64)
    return (1 + BETA2) * p * r / np.maximum(BETA2 * p + r, 1e-12)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pred", type=Path, required=True)
    p.add_argument("--gt", type=Path, required=True)
    args = p.parse_args()
    pairs = pair_by_stem(args.pred, args.gt).pairs
    pysod, sal, raw_mae = [], [], []
    for pair in pairs:
        scored = score_pair(pair, PROTOCOLS)
        if isinstance(scored, str):
            print(f"error: {scored}", file=sys.stderr)
            continue
        pysod.append(scored.pysod)
        sal.append(scored.sal)
        pred, gt = salmetric.read_gray(pair[0]), salmetric.read_gray(pair[1])
        raw_mae.append(np.abs(pred / 255.0 - (gt > 128)).mean())
    ps = summarize(pysod)
    ss = salmetric.summarize(sal)
    per_image_sal_f = np.mean([f_measure(s.precision, s.recall) for s in sal], axis=0)
    rows = {
        "maxF": {
            "pysodmetrics (mean of per-image F)": ps.metrics["maxF"],
            "pysodmetrics curves, F of mean P/R": float(f_measure(ps.precision, ps.recall).max()),
            "salmetric P/R, mean of per-image F": float(per_image_sal_f.max()),
            "salmetric (F of mean P/R)": ss.metrics["maxF"],
        },
        "MAE": {
            "pysodmetrics (normalised map, binary mask)": ps.metrics["MAE"],
            "raw map, binary mask": float(np.mean(raw_mae)),
            "salmetric (raw map, raw mask)": ss.metrics["MAE"],
        },
    }
    for metric, steps in rows.items():
        for label, value in steps.items():
            print(f"{metric:5s} {label:45s} {value:.4f}")
    report = {
        "pred": str(args.pred),
        "images": len(sal),
        "rows": rows,
        "cpu": cpu_model(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
