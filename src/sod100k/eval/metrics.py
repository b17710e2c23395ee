"""A thin wrapper over PySODMetrics: score one image, then merge images into dataset numbers.

Each image is scored by the library's own streaming evaluators fed with that single
image, so every per-image number is the library's. A dataset's numbers are the mean of
the per-image numbers in image order, which is exactly what the library's
``get_results()`` computes over a stream; scoring images in any number of processes and
merging in order therefore gives bit-identical results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import py_sod_metrics as psm

#: Dataset-level metric names, in table order.
METRICS = (
    "MAE",
    "maxF",
    "meanF",
    "adpF",
    "Sm",
    "maxE",
    "meanE",
    "adpE",
    "wF",
)
#: F-measure weight beta^2, as in the SOD literature.
BETA2 = 0.3


@dataclass(frozen=True)
class ImageScores:
    """One image's numbers; curves are indexed by threshold 0..255 (pred >= t)."""

    mae: float
    sm: float
    wfm: float
    adp_f: float
    adp_e: float
    f_curve: np.ndarray
    e_curve: np.ndarray
    precision: np.ndarray
    recall: np.ndarray


@dataclass(frozen=True)
class DatasetScores:
    """Dataset numbers (``metrics`` keyed by :data:`METRICS`) and mean curves."""

    count: int
    metrics: dict[str, float]
    f_curve: np.ndarray
    e_curve: np.ndarray
    precision: np.ndarray
    recall: np.ndarray


def fit_to_mask(pred: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Resize a prediction to the mask's size (bilinear), as the benchmarks do."""
    if pred.shape == mask.shape:
        return pred
    return cv2.resize(pred, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_LINEAR)


def score_image(pred: np.ndarray, gt: np.ndarray) -> ImageScores:
    """Score one ``H x W`` uint8 prediction against a uint8 mask of the same size.

    PySODMetrics min-max normalises the prediction and binarises the mask (``> 128``).
    """
    mae, sm, wfm, em = psm.MAE(), psm.Smeasure(), psm.WeightedFmeasure(), psm.Emeasure()
    fm = psm.FmeasureV2(
        metric_handlers={
            "f": psm.FmeasureHandler(with_dynamic=True, with_adaptive=True, beta=BETA2),
            "p": psm.PrecisionHandler(with_dynamic=True, with_adaptive=False),
            "r": psm.RecallHandler(with_dynamic=True, with_adaptive=False),
        }
    )
    for metric in (mae, sm, wfm, em, fm):
        metric.step(pred=pred, gt=gt)
    f = fm.get_results()
    e = em.get_results()["em"]
    # The library orders dynamic curves from threshold 255 down to 0; flip to ascending.
    return ImageScores(
        mae=float(mae.get_results()["mae"]),
        sm=float(sm.get_results()["sm"]),
        wfm=float(wfm.get_results()["wfm"]),
        adp_f=float(f["f"]["adaptive"]),
        adp_e=float(e["adp"]),
        f_curve=np.flip(f["f"]["dynamic"]).astype(np.float64),
        e_curve=np.flip(e["curve"]).astype(np.float64),
        precision=np.flip(f["p"]["dynamic"]).astype(np.float64),
        recall=np.flip(f["r"]["dynamic"]).astype(np.float64),
    )


def _mean(values: Sequence) -> np.ndarray:
    return np.mean(np.array(values, dtype=np.float64), axis=0)


def summarize(scores: Sequence[ImageScores]) -> DatasetScores:
    """Merge per-image scores (in a fixed order) into the dataset numbers."""
    if not scores:
        raise ValueError("no images were scored")
    f_curve = _mean([s.f_curve for s in scores])
    e_curve = _mean([s.e_curve for s in scores])
    metrics = {
        "MAE": float(_mean([s.mae for s in scores])),
        "maxF": float(f_curve.max()),
        "meanF": float(f_curve.mean()),
        "adpF": float(_mean([s.adp_f for s in scores])),
        "Sm": float(_mean([s.sm for s in scores])),
        "maxE": float(e_curve.max()),
        "meanE": float(e_curve.mean()),
        "adpE": float(_mean([s.adp_e for s in scores])),
        "wF": float(_mean([s.wfm for s in scores])),
    }
    return DatasetScores(
        count=len(scores),
        metrics=metrics,
        f_curve=f_curve,
        e_curve=e_curve,
        precision=_mean([s.precision for s in scores]),
        recall=_mean([s.recall for s in scores]),
    )
