"""A callable class for Ray Data's ``map_batches``: images in, saliency maps (and cut-outs) out.

Each actor builds its model once (:class:`~sod100k.distributed.model.ModelSpec`) and runs
the backend with as many threads as the CPUs Ray gave it (Ray sets
``OMP_NUM_THREADS=1`` in workers; ONNX Runtime and OpenVINO would otherwise take every
core of the node). Within a batch, ``workers`` threads decode and render while the network
runs on whole ``batch_size`` chunks, as ``sod100k predict`` does on one machine, with the
same functions, so the maps are the same bytes.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from sod100k.data.images import ImageError, load_rgb
from sod100k.distributed.model import ModelSpec
from sod100k.infer.backends import concurrency
from sod100k.infer.batch import render_rgba
from sod100k.infer.predictor import Predictor
from sod100k.infer.preprocess import preprocess

#: The errors that make one item fail (and are reported) instead of the whole batch.
ITEM_ERRORS = (ImageError, OSError, ValueError)


def actor_threads() -> int:
    """The CPUs this Ray worker holds, as a thread count (at least 1).

    Outside a Ray worker (or for an actor that asked for no CPU) this is 1.
    """
    import ray

    if not ray.is_initialized():
        return 1
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 0.0)
    return max(1, int(cpus))


class ImagePipeline:
    """Decode, run the network and finish a list of items, with threads around the network.

    As many network calls run at once as the backend has streams (see :attr:`streams`),
    as in ``sod100k predict``'s local pipeline.

    Args:
        predictor: the loaded model.
        batch_size: images per network call.
        workers: decode/finish threads.
    """

    #: Chunks decoded ahead of those the network runs (bounds memory on big batches).
    AHEAD = 2

    def __init__(self, predictor: Predictor, batch_size: int = 8, workers: int = 2) -> None:
        self.predictor = predictor
        self.batch_size = max(1, batch_size)
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="sod-io")
        size = predictor.size
        #: Network calls in flight: the streams OpenVINO compiled the network with (one
        #: per core of the actor in its throughput setting), 1 for the other backends.
        self.streams = concurrency(predictor.backend, (self.batch_size, 3, size, size))
        self.network = ThreadPoolExecutor(self.streams, thread_name_prefix="sod-infer")

    def run(
        self,
        items: Sequence[Any],
        decode: Callable[[Any], np.ndarray],
        finish: Callable[[Any, np.ndarray, np.ndarray], Any],
    ) -> list[Any]:
        """``finish(item, rgb, saliency_map)`` for every item whose ``decode(item)`` works.

        Returns:
            One entry per item, in order: what ``finish`` returned, or the exception
            (one of :data:`ITEM_ERRORS`) that made the item fail.
        """
        size = self.predictor.size
        results: list[Any] = [None] * len(items)
        chunks = [
            range(i, min(i + self.batch_size, len(items)))
            for i in range(0, len(items), self.batch_size)
        ]
        decoding: dict[int, list[Future]] = {}

        def prepare(item: Any) -> tuple[np.ndarray, np.ndarray]:
            rgb = decode(item)
            return rgb, preprocess(rgb, size)

        def submit(k: int) -> None:
            if k < len(chunks):
                decoding[k] = [self.pool.submit(prepare, items[i]) for i in chunks[k]]

        def complete(item: Any, rgb: np.ndarray, logits: np.ndarray) -> Any:
            sal = self.predictor.to_map(logits, rgb.shape[0], rgb.shape[1])
            return finish(item, rgb, sal)

        def infer(chunk: range, futures: list[Future]) -> list[tuple[int, np.ndarray, Any]]:
            good = []
            for i, future in zip(chunk, futures, strict=True):
                try:
                    good.append((i, *future.result()))
                except ITEM_ERRORS as e:
                    results[i] = e
            if not good:
                return []
            logits = self.predictor.backend(np.stack([x for _, _, x in good]))
            return [(i, rgb, lg) for (i, rgb, _), lg in zip(good, logits, strict=True)]

        finishing: list[tuple[int, Future]] = []

        def hand_over(inferred: list[tuple[int, np.ndarray, Any]]) -> None:
            for i, rgb, lg in inferred:
                finishing.append((i, self.pool.submit(complete, items[i], rgb, lg)))

        ahead = self.streams + self.AHEAD
        for k in range(ahead):
            submit(k)
        running: deque[Future] = deque()
        for k, chunk in enumerate(chunks):
            while len(running) >= self.streams:
                hand_over(running.popleft().result())
            futures = decoding.pop(k)
            submit(k + ahead)
            running.append(self.network.submit(infer, chunk, futures))
        while running:
            hand_over(running.popleft().result())
        for i, future in finishing:
            try:
                results[i] = future.result()
            except ITEM_ERRORS as e:
                results[i] = e
        return results


class SaliencyPredictor:
    """Adds a ``mask`` column (and a ``cutout`` column) to Ray Data batches.

    Use it as the callable class of ``Dataset.map_batches`` with an actor pool; each
    actor loads the model once:

    ```python
    ds = ray.data.read_binary_files("photos/", include_paths=True)
    ds = ds.map_batches(
        SaliencyPredictor,
        fn_constructor_kwargs={"spec": ModelSpec.load(weights="csnet-L-x2")},
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=1,
        batch_size=16,
    )
    ```

    Input rows hold the encoded image in the ``bytes`` column (``read_binary_files``) or a
    decoded ``H x W x 3`` uint8 RGB array in the ``image`` column (``read_images``);
    encoded images are decoded as ``sod100k predict`` decodes files (EXIF orientation,
    grey, 16-bit, CMYK...). Output rows keep every input column and add:

    * ``mask``: the ``H x W`` uint8 saliency map (the same bytes as ``sod100k predict``);
    * ``cutout`` (with ``cutout=True``): the ``H x W x 4`` RGBA cut-out;
    * ``error``: ``""``, or why this row's image could not be used (its ``mask`` is then
      ``0 x 0``): one bad file never fails the batch.

    Args:
        spec: the model (:meth:`ModelSpec.load`); default: ``ModelSpec.load()`` run in
            each actor (the default weights must then be on every node).
        column: the input column, ``"bytes"`` or ``"image"`` (default: whichever the
            batch has).
        cutout: add the ``cutout`` column.
        threshold: hard alpha for the cut-out: opaque where the map >= this.
        batch_size: images per network call.
        workers: decode/render threads per actor.
        threads: inference threads; default: the CPUs the actor holds.
        streams: network calls at once (OpenVINO): 1, all threads in each call (the
            lowest latency), or ``None``, OpenVINO's throughput setting (one stream per
            thread on a small CPU; use it with ``batch_size=1``).
    """

    def __init__(
        self,
        spec: ModelSpec | None = None,
        column: str | None = None,
        cutout: bool = False,
        threshold: int | None = None,
        batch_size: int = 8,
        workers: int = 2,
        threads: int | None = None,
        streams: int | None = 1,
    ) -> None:
        spec = spec or ModelSpec.load()
        self.pipeline = ImagePipeline(
            spec.predictor(threads or actor_threads(), streams), batch_size, workers
        )
        self.column = column
        self.render = functools.partial(render_rgba, threshold=threshold) if cutout else None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        column = self.column or ("bytes" if "bytes" in batch else "image")
        if column not in batch:
            raise KeyError(
                f"SaliencyPredictor needs a 'bytes' or 'image' column, got {list(batch)}"
            )
        names = (
            batch["path"] if "path" in batch else [f"row {i}" for i in range(len(batch[column]))]
        )
        items = list(zip(batch[column], names, strict=True))

        def decode(item: tuple[Any, str]) -> np.ndarray:
            value, name = item
            if column == "bytes":
                return load_rgb(bytes(value), str(name))
            return _as_rgb(np.asarray(value), str(name))

        def finish(item: Any, rgb: np.ndarray, sal: np.ndarray) -> tuple[np.ndarray, Any]:
            return sal, self.render(rgb, sal) if self.render else None

        results = self.pipeline.run(items, decode, finish)
        out = dict(batch)
        out["mask"] = _ragged(
            [r[0] if isinstance(r, tuple) else np.zeros((0, 0), np.uint8) for r in results]
        )
        if self.render:
            out["cutout"] = _ragged(
                [r[1] if isinstance(r, tuple) else np.zeros((0, 0, 4), np.uint8) for r in results]
            )
        out["error"] = np.array([str(r) if isinstance(r, Exception) else "" for r in results])
        return out


def _as_rgb(image: np.ndarray, name: str) -> np.ndarray:
    """A decoded image as ``H x W x 3`` uint8 RGB (grey replicated, alpha dropped)."""
    if image.dtype != np.uint8:
        raise ImageError(f"{name}: expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or min(image.shape[:2]) < 1:
        raise ImageError(f"{name}: expected an H x W x 3 image, got shape {image.shape}")
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def _ragged(arrays: list[np.ndarray]) -> np.ndarray:
    """An object array of arrays of different shapes (Ray Data stores it as a tensor column)."""
    out = np.empty(len(arrays), dtype=object)
    for i, array in enumerate(arrays):  # one by one: equal shapes must not broadcast
        out[i] = array
    return out
