"""Precision-recall and F-measure-vs-threshold figures, many methods and datasets at once."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from sod100k.eval.report import EvalResult
from sod100k.utils.files import atomic_write_bytes


def _grid(results: Sequence[EvalResult]):
    """One panel per dataset (in first-seen order), each with all its methods."""
    datasets = list(dict.fromkeys(r.dataset for r in results))
    # A bare Figure (not pyplot): no global state, no display backend needed.
    fig = Figure(figsize=(4.5 * len(datasets), 4.2))
    axes = fig.subplots(1, len(datasets), squeeze=False)
    return fig, dict(zip(datasets, axes[0], strict=True))


def _label(r: EvalResult, results: Sequence[EvalResult]) -> str:
    """The method name, with the protocol when the results mix protocols."""
    mixed = len({x.protocol for x in results}) > 1
    return f"{r.method} ({r.protocol})" if mixed else r.method


def _save(fig: Figure, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=120)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def plot_pr_curves(results: Sequence[EvalResult], path: str | Path) -> Path:
    """Mean precision against mean recall over thresholds 0..255, one curve per method."""
    fig, panels = _grid(results)
    for r in results:
        ax = panels[r.dataset]
        # Threshold 0 (recall 1, precision = foreground share) is kept, as in the papers.
        ax.plot(r.recall, r.precision, label=_label(r, results), linewidth=1.5)
    for dataset, ax in panels.items():
        ax.set(title=dataset, xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize="small")
    return _save(fig, path)


def plot_f_curves(results: Sequence[EvalResult], path: str | Path) -> Path:
    """Mean F-measure (beta^2 = 0.3) against the binarising threshold."""
    fig, panels = _grid(results)
    thresholds = np.arange(256)
    for r in results:
        panels[r.dataset].plot(
            thresholds,
            r.f_curve,
            linewidth=1.5,
            label=f"{_label(r, results)} (max {max(r.f_curve):.3f})",
        )
    for dataset, ax in panels.items():
        ax.set(title=dataset, xlabel="Threshold", ylabel="F-measure", xlim=(0, 255), ylim=(0, 1))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower center", fontsize="small")
    return _save(fig, path)
