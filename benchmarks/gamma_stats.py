"""How far dynamic weight decay has pushed the BN gammas of a CSNet checkpoint.

Prints, for the gammas under dynamic decay (every gOctConv / depthwise unit), their
quantiles and how many channels fall below a range of pruning thresholds.

Usage: python benchmarks/gamma_stats.py CHECKPOINT [THRESHOLD ...]
"""

from __future__ import annotations

import sys

import torch

from sod100k.checkpoints.loading import load_model

DEFAULT_THRESHOLDS = (1e-20, 1e-3, 1e-2, 0.1, 0.3, 0.5)


def main() -> None:
    path = sys.argv[1]
    thresholds = [float(t) for t in sys.argv[2:]] or list(DEFAULT_THRESHOLDS)
    model = load_model(weights=path)
    gammas = torch.cat(
        [
            norm.weight.detach().abs().flatten()
            for u in model.branch_units()
            for norm in u.norms.values()
        ]
    )
    q = torch.quantile(gammas, torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]))
    print(f"{path}: {gammas.numel()} channels under dynamic weight decay")
    print("|gamma| min / 10% / median / 90% / max: " + " / ".join(f"{v:.4g}" for v in q))
    print("| threshold | channels below | share |")
    print("|---|---|---|")
    for t in thresholds:
        below = int((gammas < t).sum())
        print(f"| {t:g} | {below} | {below / gammas.numel():.1%} |")


if __name__ == "__main__":
    main()
