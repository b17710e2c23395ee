"""Plot train loss (and validation MAE) per epoch from one or more run folders' metrics.csv.

Usage: python benchmarks/plot_loss.py OUT.png RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main() -> None:
    out, runs = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    offset = 0
    for run in runs:
        with open(run / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        epochs = [offset + int(r["epoch"]) for r in rows]
        ax.plot(epochs, [float(r["train_loss"]) for r in rows], "o-", label=f"{run.name} loss")
        if rows and "val_mae" in rows[0]:
            ax.plot(epochs, [float(r["val_mae"]) for r in rows], "s--", label=f"{run.name} MAE")
        offset = epochs[-1] if epochs else offset
    ax.set_xlabel("epoch")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    main()
