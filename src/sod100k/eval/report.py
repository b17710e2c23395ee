"""Results as records, and their terminal table, JSON, CSV and markdown forms."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sod100k.eval.metrics import METRICS, DatasetScores
from sod100k.utils.files import atomic_write_text

#: Format version of the results JSON, checked by :func:`read_results`.
RESULTS_FORMAT = "sod100k-eval/1"


@dataclass(frozen=True)
class EvalResult:
    """One method on one dataset: the numbers and the mean curves (thresholds 0..255)."""

    method: str
    dataset: str
    count: int
    metrics: dict[str, float]
    precision: list[float]
    recall: list[float]
    f_curve: list[float]
    e_curve: list[float]

    @classmethod
    def from_scores(cls, method: str, dataset: str, scores: DatasetScores) -> EvalResult:
        return cls(
            method,
            dataset,
            scores.count,
            dict(scores.metrics),
            scores.precision.tolist(),
            scores.recall.tolist(),
            scores.f_curve.tolist(),
            scores.e_curve.tolist(),
        )


def format_table(results: list[EvalResult], digits: int = 4) -> str:
    """A plain-text table, one row per method/dataset, for the terminal."""
    header = ["dataset", "method", "images", *METRICS]
    rows = [
        [r.dataset, r.method, str(r.count), *(f"{r.metrics[m]:.{digits}f}" for m in METRICS)]
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_markdown(results: list[EvalResult], digits: int = 3) -> str:
    """A markdown table (MAE to 4 digits, as papers print it)."""
    header = ["Dataset", "Method", "Images", *METRICS]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":--", ":--", "--:", *("--:" for _ in METRICS)]) + "|",
    ]
    for r in results:
        cells = [f"{r.metrics[m]:.{digits + (m == 'MAE')}f}" for m in METRICS]
        lines.append("| " + " | ".join([r.dataset, r.method, str(r.count), *cells]) + " |")
    return "\n".join(lines) + "\n"


def to_csv(results: list[EvalResult]) -> str:
    """CSV with full precision, one row per method/dataset."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["dataset", "method", "images", *METRICS])
    for r in results:
        writer.writerow([r.dataset, r.method, r.count, *(repr(r.metrics[m]) for m in METRICS)])
    return buf.getvalue()


def to_json(results: list[EvalResult]) -> str:
    payload = {
        "format": RESULTS_FORMAT,
        "thresholds": "curves are indexed by threshold t = 0..255 (pred >= t)",
        "results": [asdict(r) for r in results],
    }
    return json.dumps(payload, indent=1)


def write_reports(
    results: list[EvalResult], out_dir: str | Path, stem: str = "results"
) -> list[Path]:
    """Write ``STEM.json``, ``STEM.csv`` and ``STEM.md`` atomically; return their paths."""
    out_dir = Path(out_dir)
    paths = []
    for suffix, text in (
        (".json", to_json(results)),
        (".csv", to_csv(results)),
        (".md", to_markdown(results)),
    ):
        path = out_dir / f"{stem}{suffix}"
        atomic_write_text(path, text)
        paths.append(path)
    return paths


def read_results(path: str | Path) -> list[EvalResult]:
    """Read a results JSON written by :func:`write_reports`; errors name the file."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror or e})") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a JSON file ({e})") from e
    if not isinstance(payload, dict) or payload.get("format") != RESULTS_FORMAT:
        raise ValueError(f"{path}: not a sod100k results file (format {RESULTS_FORMAT!r})")
    try:
        results = [EvalResult(**item) for item in payload["results"]]
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: malformed results entry ({e})") from e
    for r in results:
        if set(r.metrics) != set(METRICS):
            raise ValueError(f"{path}: {r.method}/{r.dataset}: expected metrics {METRICS}")
        if len(r.precision) != 256 or len(r.recall) != 256 or len(r.f_curve) != 256:
            raise ValueError(f"{path}: {r.method}/{r.dataset}: curves must have 256 points")
        if not np.isfinite(list(r.metrics.values())).all():
            raise ValueError(f"{path}: {r.method}/{r.dataset}: non-finite metric values")
    return results
