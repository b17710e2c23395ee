"""The SalMetric protocol: max/mean F-measure and MAE exactly as the authors' C++ tool.

The SOD100K authors scored their models with SalMetric (``CSNet_training/SalMetric`` in
their repository, written for DSS). Its conventions differ from PySODMetrics, and every
one of them is reproduced here, in NumPy, to the bit where the tool's float arithmetic
allows it (see ``docs/guide/evaluation.md`` for the full list):

* maps and masks are read by OpenCV as 8-bit gray (``cv::imread(path, 0)``), the map is
  *not* min-max normalised;
* thresholds ``th = 0..255``; a map pixel is positive when ``pred > th`` (strictly), a
  mask pixel when ``gt > 128``;
* per image ``P = (TP + eps) / (TP + FP + eps)`` and ``R = (TP + eps) / (TP + FN + eps)``
  with ``eps = 1e-4`` in float32; the pixel counts are float32 sums, which stop growing
  at 2^24 (16,777,216) on images larger than that;
* P and R are averaged over the images *first* (float32 sums, split in the tool's
  thread chunks), then ``F = 1.3 P R / (0.3 P + R)`` per threshold; max F is the largest
  F above 0, mean F the float32 mean over the 256 thresholds;
* MAE per image is ``sum |pred - gt| / 255 / (H W)`` with the *raw* mask (grey edges are
  not binarised), summed pixel by pixel in float32; the dataset MAE is the mean of the
  per-image values, again in thread chunks;
* a map of another size than its mask is not resized: the tool reads the mask's buffer
  with the map's row/column indices (``gt.at<float>(h, w)``), i.e. the mask's top-left
  crop when the map is smaller, wrapping into the next mask row when the map is wider.
  Reads past the end of the mask's buffer are undefined behaviour in the tool and are
  refused here.

Per image, the counts come from one ``np.bincount`` over the 256 gray levels (map levels
split by mask class), so an image costs a few passes over its pixels whatever the
number of thresholds. PySODMetrics' evaluators cannot give these numbers (they min-max
normalise the map, count ``>= t`` and average per-image F); its count building block
(``FmeasureV2.dynamically_binarizing``) gives the same counts one threshold up on the
raw map (the tests check this) but took ~8 ms per ECSSD-sized image against ~0.3 ms for
the single ``bincount``, so it is not used here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sod100k.data.images import ImageError, max_pixels, read_image_bytes, too_large

#: The tool's ``THREASHOLDS``: thresholds 0..255, a pixel is positive when ``> th``.
THRESHOLDS = 256
#: Mask pixels above this gray level are foreground (``gt > THREASHOLDS / 2``).
GT_LEVEL = THRESHOLDS // 2
#: The tool's float32 constants.
EPSILON = np.float32(1e-4)
BETA2 = np.float32(0.3)
#: Pixel counts are float32 sums of 0/1: they stall at 2^24.
COUNT_LIMIT = 2**24
#: The tool's default thread count (``salmetric LIST`` without a second argument); the
#: chunking changes the float32 summation order, so it is part of the protocol.
DEFAULT_THREADS = 4
#: Dataset-level metric names of this protocol, in table order.
METRICS = ("MAE", "maxF", "meanF")
#: Pixels per block of the exact float32 MAE sum (see :func:`image_mae`).
MAE_BLOCK = 8192
#: How a map of another size than its mask is handled.
MISMATCH_MODES = ("reference", "resize")

_F32 = np.float32
#: ``|d| / 255.`` as the tool computes each MAE term (double), and rounded to float32.
_MAE_TERMS64 = np.arange(256, dtype=np.float64) / 255.0
_MAE_TERMS32 = _MAE_TERMS64.astype(np.float32)


@dataclass(frozen=True)
class SalImageScores:
    """One image under the SalMetric protocol (float32, as the tool holds them).

    ``precision`` and ``recall`` are indexed by threshold ``th`` (positive: ``> th``).
    """

    mae: np.float32
    precision: np.ndarray
    recall: np.ndarray


@dataclass(frozen=True)
class SalDatasetScores:
    """Dataset numbers (``metrics`` keyed by :data:`METRICS`) and the curves the tool prints."""

    count: int
    metrics: dict[str, float]
    precision: np.ndarray
    recall: np.ndarray
    f_curve: np.ndarray


def read_gray(path: str | Path) -> np.ndarray:
    """Read an image as ``cv::imread(path, 0)`` does (OpenCV's 8-bit gray conversion).

    Raises:
        ImageError: the file cannot be read or decoded; the message names the file.
    """
    data = read_image_bytes(path)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None or img.size == 0:
        raise ImageError(f"{path}: not an image OpenCV can decode")
    if img.size > max_pixels():
        raise too_large(str(path), img.size, (img.shape[1], img.shape[0]))
    return img


def mask_as_read(gt: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The mask pixels the tool pairs with a map of ``shape`` (row-major ``h * W_gt + w``).

    Equal sizes give the mask itself; a smaller map gets the top-left crop; a wider one
    wraps into the following mask rows.

    Raises:
        ValueError: the map would make the tool read past the end of the mask.
    """
    if gt.shape == shape:
        return gt
    h, w = shape
    hg, wg = gt.shape
    if (h - 1) * wg + w > hg * wg:
        raise ValueError(
            f"map {w}x{h} vs mask {wg}x{hg}: SalMetric would read past the end of the mask "
            "(undefined behaviour); use the 'resize' size-mismatch mode"
        )
    if w <= wg:
        return gt[:h, :w]
    index = np.arange(h)[:, None] * wg + np.arange(w)[None, :]
    return gt.reshape(-1)[index]


def _counts_above(hist: np.ndarray) -> np.ndarray:
    """``hist`` over levels 0..255 -> count of pixels ``> th`` for th = 0..255, as float32
    sums of ones do (stalling at 2^24)."""
    at_least = np.cumsum(hist[::-1])[::-1]  # pixels >= level
    above = np.append(at_least[1:], 0)
    return np.minimum(above, COUNT_LIMIT).astype(np.float32)


def image_mae(pred: np.ndarray, gt: np.ndarray) -> np.float32:
    """The tool's per-image MAE, bit for bit: ``sum |pred - gt| / 255. / (H W)``.

    The tool adds each double term ``|d| / 255.`` to a float32 running sum in row-major
    order (``acc = float(double(acc) + term)``). A float32 ``np.cumsum`` of the terms
    rounded to float32 gives the same partial sums except, rarely (about once per ECSSD
    image), where the two roundings differ by one ulp. So the sum runs as cumsums over
    blocks of :data:`MAE_BLOCK` pixels; each block's partial sums are re-derived from
    their predecessors the tool's way (vectorised), and from the first one that differs
    the block is corrected and its cumsum resumed. The result is the tool's exactly, at
    the cost of about two passes over the pixels.
    """
    diff = np.abs(pred.astype(np.int16) - gt.astype(np.int16)).reshape(-1)
    terms64, terms32 = _MAE_TERMS64[diff], _MAE_TERMS32[diff]
    n = diff.size
    acc = np.zeros(n + 1, np.float32)  # acc[i + 1]: the running sum after pixel i
    for block in range(0, n, MAE_BLOCK):
        end = min(block + MAE_BLOCK, n)
        i = block
        while i < end:  # acc[i] is the tool's; redo the block from pixel i
            part = terms32[i:end].copy()
            part[0] = _F32(float(acc[i]) + float(terms64[i]))  # the tool's step, exactly
            np.cumsum(part, dtype=np.float32, out=acc[i + 1 : end + 1])
            tool = (acc[i + 1 : end] + terms64[i + 1 : end]).astype(np.float32)
            wrong = np.flatnonzero(tool != acc[i + 2 : end + 1])
            if wrong.size == 0:
                break
            i += 1 + int(wrong[0])
    return _F32(acc[-1] / _F32(n))


def score_image(pred: np.ndarray, gt: np.ndarray) -> SalImageScores:
    """Score one uint8 map against the uint8 mask (or the mask pixels the tool reads).

    Args:
        pred: ``H x W`` uint8 saliency map, as read (no normalisation).
        gt: uint8 mask of the same shape (see :func:`mask_as_read` for other shapes).

    Returns:
        The image's MAE and its precision/recall curves over thresholds 0..255.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"map {pred.shape} and mask {gt.shape} differ; use mask_as_read")
    pred = pred.reshape(-1)
    positive = gt.reshape(-1) > GT_LEVEL
    # One pass: levels 0..255 for background pixels, 256..511 for foreground ones.
    hist = np.bincount(pred + (positive.astype(np.intp) << 8), minlength=512)
    fg_hist, all_hist = hist[256:], hist[:256] + hist[256:]
    tp = _counts_above(fg_hist)
    predicted = _counts_above(all_hist)
    actual = _F32(min(int(fg_hist.sum()), COUNT_LIMIT))
    precision = (tp + EPSILON) / (predicted + EPSILON)
    recall = (tp + EPSILON) / (actual + EPSILON)
    return SalImageScores(image_mae(pred, gt.reshape(-1)), precision, recall)


def score_files(
    pred_path: str | Path, gt_path: str | Path, mismatch: str = "reference"
) -> tuple[SalImageScores, bool]:
    """Read and score one pair; returns the scores and whether the sizes differed.

    ``mismatch="reference"`` pairs pixels as the tool does (:func:`mask_as_read`);
    ``"resize"`` resizes the map to the mask (bilinear, as the default protocol).
    """
    if mismatch not in MISMATCH_MODES:
        raise ValueError(f"unknown size-mismatch mode {mismatch!r}; use {MISMATCH_MODES}")
    pred, gt = read_gray(pred_path), read_gray(gt_path)
    differs = pred.shape != gt.shape
    if differs and mismatch == "resize":
        pred = cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
    elif differs:
        try:
            gt = mask_as_read(gt, pred.shape)
        except ValueError as e:
            raise ValueError(f"{pred_path}: {e}") from None
    return score_image(pred, gt), differs


def _chunks(n: int, threads: int) -> list[range]:
    """The tool's split of ``n`` lines over ``threads`` pthreads (ceil-sized chunks)."""
    per = (n + threads - 1) // threads
    return [range(per * i, min(per * (i + 1), n)) for i in range(threads)]


def summarize(scores: Sequence[SalImageScores], threads: int = DEFAULT_THREADS) -> SalDatasetScores:
    """Merge per-image scores (in list-file order) as the tool does with ``threads`` threads.

    Raises:
        ValueError: no scores, or ``threads < 1``.
    """
    if not scores:
        raise ValueError("no images were scored")
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    n = _F32(len(scores))
    mae = _F32(0)
    precision = np.zeros(THRESHOLDS, np.float32)
    recall = np.zeros(THRESHOLDS, np.float32)
    for chunk in _chunks(len(scores), threads):
        t_mae = _F32(0)
        t_p = np.zeros(THRESHOLDS, np.float32)
        t_r = np.zeros(THRESHOLDS, np.float32)
        for i in chunk:
            t_mae = _F32(t_mae + scores[i].mae)
            t_p += scores[i].precision
            t_r += scores[i].recall
        mae = _F32(mae + t_mae / n)
        precision += t_p / n
        recall += t_r / n
    f_curve = ((_F32(1) + BETA2) * precision * recall) / (BETA2 * precision + recall)
    max_f = _F32(0)
    mean_f = _F32(0)
    for f in f_curve:  # the tool's loop: strict '>' from 0, float32 running sum
        mean_f = _F32(mean_f + f)
        if f > max_f:
            max_f = f
    mean_f = _F32(mean_f / _F32(THRESHOLDS))
    return SalDatasetScores(
        count=len(scores),
        metrics={"MAE": float(mae), "maxF": float(max_f), "meanF": float(mean_f)},
        precision=precision,
        recall=recall,
        f_curve=f_curve,
    )
