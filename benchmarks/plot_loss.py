"""Plot training curves from run folders (their steps.csv and metrics.csv).

Left: the BCE loss of every optimizer step (thin) and its running mean (thick); middle,
when any run used dynamic weight decay: the DWD term per step; right, when the runs
validated: validation MAE and max F per epoch. Runs are drawn one after another
(a fine-tuning run continues the step axis of the training run before it).

Usage: python benchmarks/plot_loss.py OUT.png RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def running_mean(values: np.ndarray, window: int) -> np.ndarray:
    window = max(1, min(window, len(values)))
    kernel = np.ones(window) / window
    head = np.cumsum(values[: window - 1]) / np.arange(1, window)
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


def main() -> None:
    out, runs = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    steps = {run: read_csv(run / "steps.csv") for run in runs}
    epochs = {run: read_csv(run / "metrics.csv") for run in runs}
    has_dwd = any(float(r["dwd"]) > 0 for rows in steps.values() for r in rows)
    has_val = any("val_mae" in rows[0] for rows in epochs.values() if rows)
    panels = 1 + has_dwd + has_val
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.2), dpi=100, squeeze=False)
    ax_bce, rest = axes[0][0], list(axes[0][1:])
    ax_dwd = rest.pop(0) if has_dwd else None
    ax_val = rest.pop(0) if has_val else None
    step_offset, epoch_offset = 0, 0
    for run in runs:
        rows = steps[run]
        if rows:
            x = step_offset + np.array([int(r["step"]) for r in rows])
            bce = np.array([float(r["bce"]) for r in rows])
            line = ax_bce.plot(x, bce, lw=0.6, alpha=0.35)[0]
            window = max(1, len(rows) // 20)
            ax_bce.plot(x, running_mean(bce, window), color=line.get_color(), label=run.name)
            if ax_dwd is not None:
                ax_dwd.plot(x, [float(r["dwd"]) for r in rows], label=run.name)
            step_offset = int(x[-1])
        rows = epochs[run]
        if rows and ax_val is not None and "val_mae" in rows[0]:
            e = [epoch_offset + int(r["epoch"]) for r in rows]
            ax_val.plot(e, [float(r["val_mae"]) for r in rows], "o-", label=f"{run.name} MAE")
            ax_val.plot(e, [float(r["val_max_f"]) for r in rows], "s--", label=f"{run.name} max F")
        if rows:
            epoch_offset += int(rows[-1]["epoch"])
    ax_bce.set(xlabel="optimizer step", ylabel="BCE", title="training loss (BCE)")
    ax_bce.legend(fontsize=7)
    if ax_dwd is not None:
        ax_dwd.set(xlabel="optimizer step", title="dynamic weight decay term")
        ax_dwd.legend(fontsize=7)
    if ax_val is not None:
        ax_val.set(xlabel="epoch", title="validation")
        ax_val.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
