"""Evaluation of saliency maps: standard SOD metrics (via PySODMetrics), the authors'
SalMetric protocol, reports, plots."""

from sod100k.eval.folders import (
    PROTOCOL_CHOICES,
    FolderEvaluation,
    dataset_name,
    evaluate_folders,
    protocols_of,
)
from sod100k.eval.metrics import METRICS, DatasetScores, ImageScores, score_image, summarize
from sod100k.eval.pairing import Pairing, PairingError, pair_by_stem
from sod100k.eval.parallel import EvalOutcome, evaluate_pairs
from sod100k.eval.report import EvalResult, format_table, read_results, write_reports

__all__ = [
    "METRICS",
    "PROTOCOL_CHOICES",
    "DatasetScores",
    "EvalOutcome",
    "EvalResult",
    "FolderEvaluation",
    "ImageScores",
    "Pairing",
    "PairingError",
    "dataset_name",
    "evaluate_folders",
    "evaluate_pairs",
    "format_table",
    "pair_by_stem",
    "protocols_of",
    "read_results",
    "score_image",
    "summarize",
    "write_reports",
]
