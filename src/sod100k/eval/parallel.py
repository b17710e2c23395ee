"""Score many prediction/mask pairs, in one process or a pool, with identical results.

Workers only score single images (under one or both protocols); the parent keeps the
pair order and merges with :func:`~sod100k.eval.metrics.summarize` (PySODMetrics) or
:func:`~sod100k.eval.salmetric.summarize` (SalMetric), so the numbers do not depend on
the number of workers. Unreadable files are skipped and reported, never fatal.
"""

from __future__ import annotations

import functools
import multiprocessing
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from sod100k.data.images import ImageError, load_gray
from sod100k.eval import salmetric
from sod100k.eval.metrics import DatasetScores, ImageScores, fit_to_mask, score_image, summarize

#: Pairs sent to a worker at a time: large enough to hide the inter-process overhead,
#: small enough to keep both cores busy until the end.
CHUNK = 8
#: Protocol names: PySODMetrics (the default) and the authors' SalMetric tool.
PYSOD = "pysodmetrics"
SALMETRIC = "salmetric"
PROTOCOLS = (PYSOD, SALMETRIC)


@dataclass(frozen=True)
class EvalOutcome:
    """Dataset numbers over the pairs that could be read, and one line per skipped pair.

    ``scores`` is the PySODMetrics result and ``salmetric`` the SalMetric one (``None``
    when that protocol was not asked for, or nothing could be read). ``size_mismatch``
    lists the maps whose size differs from their mask's.
    """

    scores: DatasetScores | None
    failed: list[tuple[str, str]]
    salmetric: salmetric.SalDatasetScores | None = None
    size_mismatch: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PairScores:
    """One pair's scores under the protocols asked for."""

    pysod: ImageScores | None
    sal: salmetric.SalImageScores | None
    size_differs: bool


def score_pair(
    pair: tuple[Path, Path],
    protocols: Sequence[str] = (PYSOD,),
    size_mismatch: str = "reference",
) -> PairScores | str:
    """Score one pair; a problem with either file comes back as a one-line message."""
    pred_path, gt_path = pair
    try:
        pysod = sal = None
        differs = False
        if PYSOD in protocols:
            gt = load_gray(gt_path)
            pred = load_gray(pred_path)
            differs = pred.shape != gt.shape
            pysod = score_image(fit_to_mask(pred, gt), gt)
        if SALMETRIC in protocols:
            sal, differs = salmetric.score_files(pred_path, gt_path, size_mismatch)
        return PairScores(pysod, sal, differs)
    except (ImageError, OSError, ValueError) as e:
        return str(e)


def _scored(pairs: Sequence[tuple[Path, Path]], workers: int, score) -> Iterator[PairScores | str]:
    if workers <= 1 or len(pairs) < 2 * CHUNK:
        yield from map(score, pairs)
        return
    # Fork where the platform has it: a spawned worker would re-import torch (seconds
    # per worker); forked workers only run NumPy/SciPy/OpenCV code, never torch.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield from pool.map(score, pairs, chunksize=CHUNK)


def evaluate_pairs(
    pairs: Sequence[tuple[Path, Path]],
    workers: int = 2,
    progress: bool = True,
    desc: str = "evaluate",
    protocols: Sequence[str] = (PYSOD,),
    salmetric_threads: int = salmetric.DEFAULT_THREADS,
    size_mismatch: str = "reference",
) -> EvalOutcome:
    """Score every pair (in ``workers`` processes) and merge the results in pair order.

    Args:
        pairs: ``(prediction, mask)`` paths, in the order the dataset numbers merge them.
        workers: scoring processes (the numbers do not depend on it).
        progress: show a progress bar.
        desc: the progress bar's label.
        protocols: any of :data:`PROTOCOLS`.
        salmetric_threads: the SalMetric tool's thread count to reproduce (its float32
            sums are chunked by thread).
        size_mismatch: SalMetric only: ``"reference"`` pairs pixels of a map of another
            size the tool's way, ``"resize"`` resizes the map to its mask.

    Returns:
        The merged numbers per protocol and the skipped pairs with their messages.

    Raises:
        ValueError: an unknown protocol or size-mismatch mode.
    """
    unknown = set(protocols) - set(PROTOCOLS)
    if unknown or not protocols:
        raise ValueError(f"unknown protocol(s) {sorted(unknown)}; choose from {PROTOCOLS}")
    if size_mismatch not in salmetric.MISMATCH_MODES:
        raise ValueError(f"unknown size-mismatch mode {size_mismatch!r}")
    score = functools.partial(score_pair, protocols=tuple(protocols), size_mismatch=size_mismatch)
    pysod: list[ImageScores] = []
    sal: list[salmetric.SalImageScores] = []
    failed: list[tuple[str, str]] = []
    mismatched: list[str] = []
    bar = tqdm(total=len(pairs), unit="img", desc=desc, disable=not progress, dynamic_ncols=True)
    for (pred_path, _), result in zip(pairs, _scored(pairs, workers, score), strict=True):
        if isinstance(result, str):
            failed.append((str(pred_path), result))
            bar.write(f"error: {result}", file=sys.stderr)
        else:
            if result.pysod is not None:
                pysod.append(result.pysod)
            if result.sal is not None:
                sal.append(result.sal)
            if result.size_differs:
                mismatched.append(str(pred_path))
        bar.update(1)
    bar.close()
    return EvalOutcome(
        summarize(pysod) if pysod else None,
        failed,
        salmetric.summarize(sal, salmetric_threads) if sal else None,
        mismatched,
    )
