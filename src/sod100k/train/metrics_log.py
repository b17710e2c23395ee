"""Training metrics to CSV files and TensorBoard event files (rank 0 only).

``metrics.csv`` holds one row per epoch (train loss, validation MAE / max F, lr);
``steps.csv`` one row per optimizer step (loss, BCE, DWD term), for loss curves.
"""

from __future__ import annotations

import csv
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter


class CsvTable:
    """An append-only CSV file whose rows all carry an ``epoch`` column."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, row: dict[str, float | int]) -> None:
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def truncate_after(self, epoch: int) -> None:
        """Drop rows of epochs after ``epoch`` (a resumed run redoes them)."""
        if not self.path.exists():
            return
        with open(self.path, newline="") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames or [], list(reader)
        keep = [r for r in rows if int(r["epoch"]) <= epoch]
        if len(keep) != len(rows):
            with open(self.path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(keep)


class MetricsLog:
    """Per-epoch and per-step tables, mirrored to TensorBoard."""

    def __init__(self, run_dir: Path) -> None:
        self.epochs = CsvTable(run_dir / "metrics.csv")
        self.steps = CsvTable(run_dir / "steps.csv")
        self.tb = SummaryWriter(str(run_dir / "tensorboard"))

    def write(self, epoch: int, values: dict[str, float]) -> None:
        """One finished epoch (1-based ``epoch``)."""
        self.epochs.append({"epoch": epoch, **values})
        for key, value in values.items():
            self.tb.add_scalar(key, value, epoch)
        self.tb.flush()

    def write_step(self, step: int, epoch: int, values: dict[str, float]) -> None:
        """One optimizer step (global ``step``, counted from 1) of the 1-based ``epoch``."""
        self.steps.append({"step": step, "epoch": epoch, **values})
        for key, value in values.items():
            self.tb.add_scalar(f"step/{key}", value, step)

    def truncate_after(self, epoch: int) -> None:
        """Drop what was logged after ``epoch`` (a resumed run redoes it)."""
        self.epochs.truncate_after(epoch)
        self.steps.truncate_after(epoch)

    def close(self) -> None:
        self.tb.close()
