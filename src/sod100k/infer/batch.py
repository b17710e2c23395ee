"""Batch prediction over files and folders: decode, infer and write in overlapping stages.

Decoding/resizing and PNG encoding/writing run in worker threads (OpenCV and Pillow
release the GIL), while the network runs batches in threads of its own. Bad inputs are
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
from sod100k.data.png import encode_png_bgr
from sod100k.infer.backends import Backend, concurrency
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


def _opencv_order(image: np.ndarray) -> np.ndarray:
    """An L, RGB or RGBA array in the channel order OpenCV's encoders take (BGR(A))."""
    if image.ndim == 2:
        return image
    code = cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR
    return cv2.cvtColor(image, code)


def encode_png(image: np.ndarray) -> bytes:
    """Encode an L, RGB or RGBA uint8 array as PNG (:mod:`sod100k.data.png`)."""
    return encode_png_bgr(_opencv_order(image))


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
    ok, buf = cv2.imencode(suffix, _opencv_order(image), params)
    if not ok:
        raise OSError(f"{suffix} encoding failed")
    return buf.tobytes()


def _load(job: Job, size: int) -> tuple[np.ndarray, np.ndarray]:
    rgb = load_rgb(job.data if job.data is not None else job.src, job.name)
    return rgb, preprocess(rgb, size)


def _batches(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


#: A batch of jobs, each with the future of its decoded image and network input.
Loaded = list[tuple[Job, Future]]
#: Per job of a batch, in order: its decode future, and the image and logits (None when
#: it could not be decoded; the future then holds the error).
Inferred = list[tuple[Job, Future, np.ndarray | None, np.ndarray | None]]


def _infer(chunk: Loaded, backend: Backend) -> Inferred:
    """Wait for a chunk's decoded images and run the network on the readable ones."""
    decoded = []
    for job, fut in chunk:
        try:
            rgb, x = fut.result()
        except (ImageError, OSError, ValueError):
            rgb = x = None  # reported from the future, in its place
        decoded.append((job, fut, rgb, x))
    inputs = [x for *_, x in decoded if x is not None]
    logits = iter(backend(np.stack(inputs)) if inputs else ())
    return [(job, fut, rgb, None if x is None else next(logits)) for job, fut, rgb, x in decoded]


def run_batch(
    jobs: list[Job],
    predictor: Predictor,
    batch_size: int = 8,
    workers: int = 2,
    render: Renderer = render_mask,
    progress: bool = True,
    streams: int | None = None,
) -> BatchReport:
    """Predict and write every job; never raises for a bad item.

    Three stages overlap, each bounded, so memory stays flat however big the folder:
    ``workers`` threads decode and resize images (a few batches ahead of the network),
    up to ``streams`` batches run through the network at once, and ``workers`` more
    threads turn logits into maps and encode and write them. Decoding, resizing and PNG
    encoding release the GIL, so on two cores the stages really run side by side.
    Results are reported (written list, failures, progress bar) in job order.

    Args:
        jobs: what to read and write (:func:`plan_jobs`).
        predictor: the network and its input size.
        batch_size: images per network call.
        workers: decode threads, and as many encode/write threads.
        render: map -> image to save (:data:`RENDERERS`).
        progress: show a progress bar on stderr.
        streams: network calls in flight at once; ``None`` (default): as many as the
            backend was built to run at once (:func:`~sod100k.infer.backends.concurrency`:
            the streams of an OpenVINO backend, else 1).
    """
    report = BatchReport([], [])
    bar = tqdm(total=len(jobs), unit="img", disable=not progress, dynamic_ncols=True)
    size = predictor.size
    if streams is None:
        streams = concurrency(predictor.backend, (batch_size, 3, size, size)) if jobs else 1
    streams = max(1, streams)
    lookahead = streams + 2  # batches being decoded beyond those in the network
    # Outcomes not yet reported (images and logits waiting to be encoded and written).
    max_pending = lookahead * batch_size + 2 * workers
    pending: deque[tuple[Job, Future]] = deque()

    def write(job: Job, rgb: np.ndarray, logits: np.ndarray) -> Path:
        sal = predictor.to_map(logits, rgb.shape[0], rgb.shape[1])
        image = render(rgb, sal)
        if job.dst is None:
            sys.stdout.buffer.write(encode_png(image))
            sys.stdout.buffer.flush()
            return STDOUT_PATH
        atomic_write_bytes(job.dst, encode_image(image, job.dst.suffix))
        return job.dst

    def hand_over(inferred: Inferred) -> None:
        for job, loaded, rgb, logits in inferred:
            done = loaded if logits is None else writers.submit(write, job, rgb, logits)
            pending.append((job, done))

    def report_done(keep: int) -> None:
        """Report outcomes in job order: those finished, then wait while over ``keep``."""
        while pending and (len(pending) > keep or pending[0][1].done()):
            job, fut = pending.popleft()
            try:
                written = fut.result()
            except (ImageError, OSError, ValueError) as e:
                _fail(report, bar, job, e)
            else:
                report.written.append(written)
            bar.update(1)

    with (
        ThreadPoolExecutor(max(1, workers), thread_name_prefix="sod-decode") as decoders,
        ThreadPoolExecutor(streams, thread_name_prefix="sod-infer") as network,
        ThreadPoolExecutor(max(1, workers), thread_name_prefix="sod-write") as writers,
    ):
        loads: deque[Loaded] = deque()
        running: deque[Future] = deque()
        try:
            for chunk in _batches(jobs, batch_size):
                loads.append([(job, decoders.submit(_load, job, size)) for job in chunk])
                if len(loads) > lookahead:
                    running.append(network.submit(_infer, loads.popleft(), predictor.backend))
                while len(running) > streams or (running and running[0].done()):
                    hand_over(running.popleft().result())
                report_done(max_pending)
            running.extend(network.submit(_infer, c, predictor.backend) for c in loads)
            for fut in running:
                hand_over(fut.result())
                report_done(max_pending)
            report_done(0)
        except BaseException:
            # Ctrl-C (or a bug): drop the queued work instead of finishing it; writes in
            # progress complete or leave nothing (they are atomic).
            for pool in (decoders, network, writers):
                pool.shutdown(wait=False, cancel_futures=True)
            bar.close()
            raise
    bar.close()
    return report


def _fail(report: BatchReport, bar: tqdm, job: Job, e: Exception) -> None:
    message = str(e)
    report.failed.append((job.name, message))
    line = message if message.startswith(job.name) else f"{job.name}: {message}"
    bar.write(f"error: {line}", file=sys.stderr)
