"""Score many prediction/mask pairs, in one process or a pool, with identical results.

Workers only score single images; the parent keeps the pair order and merges with
:func:`~sod100k.eval.metrics.summarize`, so the numbers do not depend on the number of
workers. Unreadable files are skipped and reported, never fatal.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from sod100k.data.images import ImageError, load_gray
from sod100k.eval.metrics import DatasetScores, ImageScores, fit_to_mask, score_image, summarize

#: Pairs sent to a worker at a time: large enough to hide the inter-process overhead,
#: small enough to keep both cores busy until the end.
CHUNK = 8


@dataclass(frozen=True)
class EvalOutcome:
    """Dataset numbers over the pairs that could be read, and one line per skipped pair."""

    scores: DatasetScores | None
    failed: list[tuple[str, str]]


def score_pair(pair: tuple[Path, Path]) -> ImageScores | str:
    """Score one pair; a problem with either file comes back as a one-line message."""
    pred_path, gt_path = pair
    try:
        gt = load_gray(gt_path)
        pred = fit_to_mask(load_gray(pred_path), gt)
        return score_image(pred, gt)
    except (ImageError, OSError, ValueError) as e:
        return str(e)


def _scored(pairs: Sequence[tuple[Path, Path]], workers: int) -> Iterator[ImageScores | str]:
    if workers <= 1 or len(pairs) < 2 * CHUNK:
        yield from map(score_pair, pairs)
        return
    # Fork where the platform has it: a spawned worker would re-import torch (seconds
    # per worker); forked workers only run NumPy/SciPy/OpenCV code, never torch.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield from pool.map(score_pair, pairs, chunksize=CHUNK)


def evaluate_pairs(
    pairs: Sequence[tuple[Path, Path]],
    workers: int = 2,
    progress: bool = True,
    desc: str = "evaluate",
) -> EvalOutcome:
    """Score every pair (in ``workers`` processes) and merge the results in pair order."""
    scores: list[ImageScores] = []
    failed: list[tuple[str, str]] = []
    bar = tqdm(total=len(pairs), unit="img", desc=desc, disable=not progress, dynamic_ncols=True)
    for (pred_path, _), result in zip(pairs, _scored(pairs, workers), strict=True):
        if isinstance(result, str):
            failed.append((str(pred_path), result))
            bar.write(f"error: {result}", file=sys.stderr)
        else:
            scores.append(result)
        bar.update(1)
    bar.close()
    return EvalOutcome(summarize(scores) if scores else None, failed)
