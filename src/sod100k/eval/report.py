"""Results as records, and their terminal table, JSON, CSV and markdown forms."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sod100k.eval import salmetric
from sod100k.eval.metrics import METRICS, DatasetScores
from sod100k.utils.files import atomic_write_text

#: Format version of the results JSON, checked by :func:`read_results`. Files without a
#: ``protocol`` per result (written before SalMetric was added) are PySODMetrics ones.
RESULTS_FORMAT = "sod100k-eval/1"
#: The metrics each protocol reports.
PROTOCOL_METRICS = {"pysodmetrics": METRICS, "salmetric": salmetric.METRICS}


@dataclass(frozen=True)
class EvalResult:
    """One method on one dataset under one protocol: the numbers and the mean curves.

    Curves are indexed by threshold 0..255: PySODMetrics counts ``pred >= t`` (after
    min-max normalising each map), SalMetric ``pred > t`` (raw maps) and has no E-measure
    curve (``e_curve`` is empty).
    """

    method: str
    dataset: str
    count: int
    metrics: dict[str, float]
    precision: list[float]
    recall: list[float]
    f_curve: list[float]
    e_curve: list[float]
    protocol: str = "pysodmetrics"

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

    @classmethod
    def from_salmetric(
        cls, method: str, dataset: str, scores: salmetric.SalDatasetScores
    ) -> EvalResult:
        return cls(
            method,
            dataset,
            scores.count,
            dict(scores.metrics),
            [float(v) for v in scores.precision],
            [float(v) for v in scores.recall],
            [float(v) for v in scores.f_curve],
            [],
            protocol="salmetric",
        )


def metric_columns(results: list[EvalResult]) -> list[str]:
    """The metrics any of ``results`` has, in :data:`METRICS` order."""
    return [m for m in METRICS if any(m in r.metrics for r in results)]


def _cell(r: EvalResult, metric: str, digits: int) -> str:
    return f"{r.metrics[metric]:.{digits}f}" if metric in r.metrics else "-"


def format_table(results: list[EvalResult], digits: int = 4) -> str:
    """A plain-text table, one row per method/dataset/protocol, for the terminal."""
    columns = metric_columns(results)
    header = ["dataset", "method", "protocol", "images", *columns]
    rows = [
        [r.dataset, r.method, r.protocol, str(r.count), *(_cell(r, m, digits) for m in columns)]
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i < 3 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_markdown(results: list[EvalResult], digits: int = 3) -> str:
    """A markdown table (MAE to 4 digits, as papers print it)."""
    columns = metric_columns(results)
    header = ["Dataset", "Method", "Protocol", "Images", *columns]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":--", ":--", ":--", "--:", *("--:" for _ in columns)]) + "|",
    ]
    for r in results:
        cells = [_cell(r, m, digits + (m == "MAE")) for m in columns]
        row = [r.dataset, r.method, r.protocol, str(r.count), *cells]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def to_csv(results: list[EvalResult]) -> str:
    """CSV with full precision, one row per method/dataset/protocol (empty: not computed)."""
    columns = metric_columns(results)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["dataset", "method", "protocol", "images", *columns])
    for r in results:
        cells = [repr(r.metrics[m]) if m in r.metrics else "" for m in columns]
        writer.writerow([r.dataset, r.method, r.protocol, r.count, *cells])
    return buf.getvalue()


def to_json(results: list[EvalResult]) -> str:
    payload = {
        "format": RESULTS_FORMAT,
        "thresholds": "curves are indexed by threshold t = 0..255: pred >= t for protocol "
        "pysodmetrics (maps min-max normalised), pred > t for protocol salmetric (raw maps)",
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
        expected = PROTOCOL_METRICS.get(r.protocol)
        if expected is None:
            raise ValueError(f"{path}: {r.method}/{r.dataset}: unknown protocol {r.protocol!r}")
        if set(r.metrics) != set(expected):
            raise ValueError(f"{path}: {r.method}/{r.dataset}: expected metrics {expected}")
        if len(r.precision) != 256 or len(r.recall) != 256 or len(r.f_curve) != 256:
            raise ValueError(f"{path}: {r.method}/{r.dataset}: curves must have 256 points")
        if not np.isfinite(list(r.metrics.values())).all():
            raise ValueError(f"{path}: {r.method}/{r.dataset}: non-finite metric values")
    return results
