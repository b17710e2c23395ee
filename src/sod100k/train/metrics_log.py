"""Per-epoch metrics to a CSV file and TensorBoard event files (rank 0 only)."""

from __future__ import annotations

import csv
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter


class MetricsLog:
    """Appends one row per epoch to ``metrics.csv`` and mirrors it to TensorBoard."""

    def __init__(self, run_dir: Path) -> None:
        self.csv_path = run_dir / "metrics.csv"
        self.tb = SummaryWriter(str(run_dir / "tensorboard"))

    def write(self, epoch: int, values: dict[str, float]) -> None:
        row = {"epoch": epoch, **values}
        new = not self.csv_path.exists()
        with open(self.csv_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        for key, value in values.items():
            self.tb.add_scalar(key, value, epoch)
        self.tb.flush()

    def truncate_after(self, epoch: int) -> None:
        """Drop rows logged after ``epoch`` (a resumed run redoes them)."""
        if not self.csv_path.exists():
            return
        with open(self.csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
        keep = [r for r in rows if int(r["epoch"]) <= epoch]
        if len(keep) != len(rows) and keep:
            with open(self.csv_path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(keep[0]))
                writer.writeheader()
                writer.writerows(keep)

    def close(self) -> None:
        self.tb.close()
