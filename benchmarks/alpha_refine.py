"""Does guided-filter refinement make the cut-out alpha closer to the ground truth?

Over the first ``--limit`` ECSSD images: MAE (alpha vs mask, in [0, 1]) of the raw map,
of the guided-filter-refined map for a few ``eps`` values, and of the hard threshold.

    PYTHONPATH=src python benchmarks/alpha_refine.py --weights ../shared/weights/csnet-L-x2 \\
        --data ../shared/data/ECSSD --limit 100
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from sod100k.data.images import load_mask, load_rgb
from sod100k.infer.cutout import alpha_matte
from sod100k.infer.predictor import Predictor
from sod100k.infer.runtime import make_backend

EPS_VALUES = (1e-4, 1e-3, 1e-2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="csnet-l-x2")
    p.add_argument("--weights", required=True)
    p.add_argument("--data", type=Path, required=True, help="folder with images/ and masks/")
    p.add_argument("--limit", type=int, default=100)
    args = p.parse_args()
    predictor = Predictor(make_backend("torch", args.model, args.weights))
    images = sorted((args.data / "images").glob("*.jpg"))[: args.limit]
    variants = ["raw map", *(f"guided, eps {e:g}" for e in EPS_VALUES), "hard, threshold 128"]
    errors: dict[str, list[float]] = {v: [] for v in variants}
    for path in images:
        rgb = load_rgb(path)
        gt = load_mask(args.data / "masks" / (path.stem + ".png")).astype(np.float32)
        sal = predictor(rgb)
        alphas = [alpha_matte(rgb, sal, refine=False)]
        alphas += [alpha_matte(rgb, sal, eps=e) for e in EPS_VALUES]
        alphas.append(alpha_matte(rgb, sal, threshold=128))
        for name, alpha in zip(variants, alphas, strict=True):
            errors[name].append(float(np.abs(alpha / 255.0 - gt).mean()))
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.model}, {len(images)} images "
        f"of {args.data.name}"
    )
    print("| alpha | MAE |")
    print("|---|---:|")
    for name in variants:
        print(f"| {name} | {np.mean(errors[name]):.4f} |")


if __name__ == "__main__":
    main()
