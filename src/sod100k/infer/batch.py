"""Batch prediction over files and folders: decode, infer and write in overlapping stages.

Decoding/resizing and PNG encoding/writing run in worker threads (OpenCV and Pillow
release the GIL), while the network runs batches in the calling thread. Bad inputs are
skipped and reported; outputs are written atomically and never over an input.
"""

from __future__ import annotations

import io
import logging
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from sod100k.data.images import ImageError, load_rgb
from sod100k.infer.backends import Backend
from sod100k.infer.cutout import alpha_matte, cutout_rgba, overlay_rgb
from sod100k.infer.inputs import Destination, Job, classify_inputs, plan_run
from sod100k.infer.predictor import Predictor
from sod100k.infer.preprocess import preprocess
from sod100k.utils.files import atomic_write_bytes

log = logging.getLogger(__name__)

#: ``render(rgb, saliency_map) -> image to save`` (H x W, H x W x 3 RGB or H x W x 4 RGBA).
Renderer = Callable[[np.ndarray, np.ndarray], np.ndarray]


#: How an output written to standard output is listed in :class:`BatchReport`.
STDOUT_PATH = Path("<stdout>")


@dataclass
class BatchReport:
    """What a batch run did: the files written and ``(input, message)`` per failure."""

    written: list[Path]
    failed: list[tuple[str, str]]


def render_mask(rgb: np.ndarray, sal: np.ndarray) -> np.ndarray:
    return sal


def render_rgba(rgb: np.ndarray, sal: np.ndarray, threshold: int | None = None) -> np.ndarray:
    return cutout_rgba(rgb, alpha_matte(rgb, sal, threshold))


def render_overlay(rgb: np.ndarray, sal: np.ndarray) -> np.ndarray:
    return overlay_rgb(rgb, sal)


#: ``sod100k predict --format`` choices.
RENDERERS: dict[str, Renderer] = {
    "mask": render_mask,
    "rgba": render_rgba,
    "overlay": render_overlay,
}


def plan_jobs(
    inputs: Iterable[str | Path], out_dir: str | Path
) -> tuple[list[Job], list[tuple[str, str]]]:
    """Jobs writing every image of ``inputs`` (files, folders, globs) into ``out_dir``.

    A folder's images keep their sub-folder layout under ``out_dir``; a file lands there
    by its stem, as ``.png``. Outputs that would replace an input are failures.

    Args:
        inputs: files, folders and glob patterns.
        out_dir: the output folder.

    Returns:
        The jobs, and ``(input, message)`` for each input that cannot be run.
    """
    plan = plan_run(classify_inputs(map(str, inputs)), Destination("folder", Path(out_dir)))
    return plan.jobs, plan.failed


def encode_png(image: np.ndarray) -> bytes:
    if image.ndim == 3:  # OpenCV wants BGR(A)
        code = cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR
        image = cv2.cvtColor(image, code)
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()


def encode_image(image: np.ndarray, suffix: str = ".png") -> bytes:
    """Encode an L, RGB or RGBA uint8 array for a file with ``suffix``.

    Args:
        image: ``H x W``, ``H x W x 3`` (RGB) or ``H x W x 4`` (RGBA) uint8.
        suffix: ``.png``, ``.webp`` (lossless, alpha and colours kept) or ``.jpg``/``.jpeg``
            (quality 95; no alpha).

    Returns:
        The encoded file.

    Raises:
        ValueError: an unknown suffix, or alpha for JPEG.
    """
    suffix = suffix.lower()
    if suffix == ".png":
        return encode_png(image)
    if suffix == ".webp":
        # Pillow, not OpenCV: libwebp's lossless mode changes the colour of fully
        # transparent pixels unless told to keep them ("exact"), which OpenCV cannot say.
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image)).save(buf, "WEBP", lossless=True, exact=True)
        return buf.getvalue()
    if suffix in (".jpg", ".jpeg"):
        if image.ndim == 3 and image.shape[2] == 4:
            raise ValueError("JPEG cannot hold an alpha channel")
        params = [cv2.IMWRITE_JPEG_QUALITY, 95]
    else:
        raise ValueError(f"cannot write {suffix or 'files without suffix'}")
    if image.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR
        image = cv2.cvtColor(image, code)
    ok, buf = cv2.imencode(suffix, image, params)
    if not ok:
        raise OSError(f"{suffix} encoding failed")
    return buf.tobytes()


def _load(job: Job, size: int) -> tuple[np.ndarray, np.ndarray]:
    rgb = load_rgb(job.data if job.data is not None else job.src, job.name)
    return rgb, preprocess(rgb, size)


def _batches(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


Loaded = list[tuple[Job, Future]]
Inferred = tuple[list[tuple[Job, np.ndarray, np.ndarray]], list[tuple[Job, Exception]]]


def _infer(chunk: Loaded, backend: Backend) -> Inferred:
    """Wait for a chunk's decoded images and run the network on the readable ones."""
    good, bad = [], []
    for job, fut in chunk:
        try:
            rgb, x = fut.result()
            good.append((job, rgb, x))
        except (ImageError, OSError, ValueError) as e:
            bad.append((job, e))
    if not good:
        return [], bad
    logits = backend(np.stack([x for _, _, x in good]))
    return [(job, rgb, lg) for (job, rgb, _), lg in zip(good, logits, strict=True)], bad


def run_batch(
    jobs: list[Job],
    predictor: Predictor,
    batch_size: int = 8,
    workers: int = 2,
    render: Renderer = render_mask,
    progress: bool = True,
    streams: int = 1,
) -> BatchReport:
    """Predict and write every job; never raises for a bad item.

    Three stages overlap: ``workers`` threads decode and resize images (a bounded number
    of batches ahead, so memory stays flat on big folders), ``streams`` threads run the
    network on whole batches concurrently, and the decode threads also turn logits into
    PNG files. Single-image ONNX Runtime calls are cheaper per image than batched ones
    (cache-friendlier), so single-threaded streams with batch 1 can beat one
    multi-threaded call on batches; which wins depends on the machine
    (``benchmarks/e2e.py``).
    """
    report = BatchReport([], [])
    bar = tqdm(total=len(jobs), unit="img", disable=not progress, dynamic_ncols=True)

    def write(job: Job, rgb: np.ndarray, logits: np.ndarray) -> Path:
        sal = predictor.to_map(logits, rgb.shape[0], rgb.shape[1])
        image = render(rgb, sal)
        if job.dst is None:
            sys.stdout.buffer.write(encode_png(image))
            sys.stdout.buffer.flush()
            return STDOUT_PATH
        atomic_write_bytes(job.dst, encode_image(image, job.dst.suffix))
        return job.dst

    chunks = list(_batches(jobs, batch_size))
    lookahead = streams + 2  # batches being decoded beyond those being inferred
    writes: list[tuple[Job, Future]] = []

    def collect(all_done: bool) -> None:
        nonlocal writes
        done = writes if all_done else [w for w in writes if w[1].done()]
        writes = [] if all_done else [w for w in writes if not w[1].done()]
        for job, fut in done:
            try:
                report.written.append(fut.result())
            except (OSError, ValueError) as e:
                _fail(report, bar, job, e)
            bar.update(1)

    def handle(result: Inferred) -> None:
        inferred, bad = result
        for job, e in bad:
            _fail(report, bar, job, e)
            bar.update(1)
        for job, rgb, lg in inferred:
            writes.append((job, io_pool.submit(write, job, rgb, lg)))
        collect(all_done=False)

    with (
        ThreadPoolExecutor(max(1, workers), thread_name_prefix="sod-io") as io_pool,
        ThreadPoolExecutor(max(1, streams), thread_name_prefix="sod-infer") as infer,
    ):
        loads: dict[int, Loaded] = {}

        def load(k: int) -> None:
            if k < len(chunks):
                loads[k] = [(job, io_pool.submit(_load, job, predictor.size)) for job in chunks[k]]

        try:
            for k in range(lookahead):
                load(k)
            running: deque[Future] = deque()
            for k in range(len(chunks)):
                running.append(infer.submit(_infer, loads.pop(k), predictor.backend))
                load(k + lookahead)
                while len(running) > max(1, streams) or (running and running[0].done()):
                    handle(running.popleft().result())
            while running:
                handle(running.popleft().result())
            collect(all_done=True)
        except BaseException:
            # Ctrl-C (or a bug): drop the queued work instead of finishing it; writes in
            # progress complete or leave nothing (they are atomic).
            io_pool.shutdown(wait=False, cancel_futures=True)
            infer.shutdown(wait=False, cancel_futures=True)
            bar.close()
            raise
    bar.close()
    return report


def _fail(report: BatchReport, bar: tqdm, job: Job, e: Exception) -> None:
    message = str(e)
    report.failed.append((job.name, message))
    line = message if message.startswith(job.name) else f"{job.name}: {message}"
    bar.write(f"error: {line}", file=sys.stderr)
