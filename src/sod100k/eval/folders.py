"""Evaluate a folder of predictions against a folder of masks: pairing, scoring, record."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sod100k.eval.pairing import Pairing, pair_by_stem
from sod100k.eval.parallel import evaluate_pairs
from sod100k.eval.report import EvalResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FolderEvaluation:
    """The result (``None`` if no pair could be read), the pairing and skipped files."""

    result: EvalResult | None
    pairing: Pairing
    failed: list[tuple[str, str]]


def evaluate_folders(
    pred_dir: str | Path,
    gt_dir: str | Path,
    method: str,
    dataset: str,
    allow_missing: bool = False,
    workers: int = 2,
    progress: bool = True,
) -> FolderEvaluation:
    """Pair by stem (raises :class:`~sod100k.eval.pairing.PairingError`), then score."""
    pairing = pair_by_stem(pred_dir, gt_dir, allow_missing)
    if pairing.missing:
        log.warning(
            "%s: %d mask(s) have no prediction; scoring the %d common files",
            dataset,
            len(pairing.missing),
            len(pairing.pairs),
        )
    if pairing.extra:
        log.warning(
            "%s: %d prediction(s) have no mask and are ignored", dataset, len(pairing.extra)
        )
    outcome = evaluate_pairs(pairing.pairs, workers, progress, desc=f"{method}/{dataset}")
    result = (
        EvalResult.from_scores(method, dataset, outcome.scores)
        if outcome.scores is not None
        else None
    )
    return FolderEvaluation(result, pairing, outcome.failed)


def dataset_name(gt_dir: str | Path) -> str:
    """A dataset name from its mask folder: ``ECSSD/masks`` -> ``ECSSD``."""
    path = Path(gt_dir).resolve()
    generic = {"masks", "mask", "gt", "gts", "groundtruth", "ground_truth", "labels"}
    return path.parent.name if path.name.lower() in generic else path.name
