"""Evaluate a folder of predictions against a folder of masks: pairing, scoring, record."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sod100k.eval import salmetric
from sod100k.eval.pairing import Pairing, pair_by_stem
from sod100k.eval.parallel import PYSOD, SALMETRIC, evaluate_pairs
from sod100k.eval.report import EvalResult
from sod100k.utils.sniff import name_list

#: ``--protocol`` choices: one protocol, or both side by side.
PROTOCOL_CHOICES = (PYSOD, SALMETRIC, "both")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FolderEvaluation:
    """One result per protocol (none if no pair could be read), the pairing, skipped files
    and the maps whose size differs from their mask's."""

    results: list[EvalResult]
    pairing: Pairing
    failed: list[tuple[str, str]]
    size_mismatch: list[str]

    @property
    def result(self) -> EvalResult | None:
        """The first protocol's result (``None`` if no pair could be read)."""
        return self.results[0] if self.results else None


def protocols_of(choice: str) -> tuple[str, ...]:
    """``"both"`` -> both protocol names; a protocol name -> itself.

    Raises:
        ValueError: an unknown choice.
    """
    if choice not in PROTOCOL_CHOICES:
        raise ValueError(f"unknown protocol {choice!r}; choose from {', '.join(PROTOCOL_CHOICES)}")
    return (PYSOD, SALMETRIC) if choice == "both" else (choice,)


def evaluate_folders(
    pred_dir: str | Path,
    gt_dir: str | Path,
    method: str,
    dataset: str,
    allow_missing: bool = False,
    workers: int = 2,
    progress: bool = True,
    protocol: str = PYSOD,
    salmetric_threads: int = salmetric.DEFAULT_THREADS,
    size_mismatch: str = "reference",
) -> FolderEvaluation:
    """Pair maps with masks (recursively, see :func:`~sod100k.eval.pairing.pair_by_stem`;
    raises :class:`~sod100k.eval.pairing.PairingError`), then score.

    ``protocol`` is ``"pysodmetrics"``, ``"salmetric"`` or ``"both"``; see
    :func:`~sod100k.eval.parallel.evaluate_pairs` for the SalMetric options.
    """
    protocols = protocols_of(protocol)
    pairing = pair_by_stem(pred_dir, gt_dir, allow_missing)
    if pairing.missing:
        log.warning(
            "%s: %d mask(s) have no prediction (%s); scoring the %d common files",
            dataset,
            len(pairing.missing),
            name_list(pairing.missing),
            len(pairing.pairs),
        )
    if pairing.extra:
        log.warning(
            "%s: %d prediction(s) have no mask and are ignored (%s)",
            dataset,
            len(pairing.extra),
            name_list(pairing.extra),
        )
    if pairing.skipped:
        log.warning(
            "%s: %d file(s) are not images by their suffix and were skipped (%s)",
            dataset,
            len(pairing.skipped),
            name_list([str(p) for p in pairing.skipped]),
        )
    if pairing.by_name:
        log.info(
            "%s: %d map(s) paired with a mask of the same name in another sub-folder",
            dataset,
            pairing.by_name,
        )
    outcome = evaluate_pairs(
        pairing.pairs,
        workers,
        progress,
        desc=f"{method}/{dataset}",
        protocols=protocols,
        salmetric_threads=salmetric_threads,
        size_mismatch=size_mismatch,
    )
    if outcome.size_mismatch and SALMETRIC in protocols:
        how = "resized to" if size_mismatch == "resize" else "paired the SalMetric way with"
        log.warning(
            "%s: %d map(s) differ in size from their mask and were %s it, e.g. %s",
            dataset,
            len(outcome.size_mismatch),
            how,
            outcome.size_mismatch[0],
        )
    results = []
    if outcome.scores is not None:
        results.append(EvalResult.from_scores(method, dataset, outcome.scores))
    if outcome.salmetric is not None:
        results.append(EvalResult.from_salmetric(method, dataset, outcome.salmetric))
    return FolderEvaluation(results, pairing, outcome.failed, outcome.size_mismatch)


def dataset_name(gt_dir: str | Path) -> str:
    """A dataset name from its mask folder: ``ECSSD/masks`` -> ``ECSSD``."""
    path = Path(gt_dir).resolve()
    generic = {"masks", "mask", "gt", "gts", "groundtruth", "ground_truth", "labels"}
    return path.parent.name if path.name.lower() in generic else path.name
