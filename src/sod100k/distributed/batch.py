"""``sod100k predict --ray``: predict and write a list of files on a Ray cluster.

The driver plans the run (lists the inputs, names the outputs) exactly as the local
command does, and hands Ray Data one small row per image: where to read it and where to
write its result. An actor pool does everything else, each actor on its own share of the
rows: read, decode, network, render, encode and an atomic write, the same functions as
``sod100k predict`` so the outputs are the same bytes. Rows travel back with an error
message or none; the driver counts them for the progress bar and the final report.

The rows are made on the driver, so the job has no read tasks that need a CPU of their
own: the pool may take every CPU of the cluster (see :func:`pool_size` for jobs that do
read with Ray Data). Ray restarts an actor whose process dies and runs its rows again;
a killed writer leaves at most a hidden temporary file, removed at the end of the run
(:func:`remove_temporaries`), never a half-written output.
"""

from __future__ import annotations

import math
import os
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np
from tqdm import tqdm

from sod100k.data.images import load_rgb
from sod100k.distributed import require_ray
from sod100k.distributed.cluster import ClusterError, pool_size
from sod100k.distributed.model import ModelSpec
from sod100k.distributed.predictor import ImagePipeline, actor_threads
from sod100k.distributed.storage import is_uri, read_bytes, write_bytes
from sod100k.infer.batch import Renderer, encode_image

#: CPUs per actor by default: the two-core machine the local command is tuned on, so
#: the network gets two threads and the decode/encode threads beside them keep it fed.
DEFAULT_ACTOR_CPUS = 2
#: Network calls at once in each actor of ``predict --ray``: ``None``, OpenVINO's
#: throughput setting (one single-threaded stream per CPU of the actor), as ``sod100k
#: predict`` runs folders (``benchmarks/ray_scaling.py`` measures it against 1).
DEFAULT_ACTOR_STREAMS: int | None = None
#: Rows per actor task at most: small enough for a steady progress bar and cheap
#: re-runs after a lost actor, large enough that scheduling costs little per image.
MAX_ROWS_PER_TASK = 64
#: Temporary names of atomic writes: ``.<name>.<8 random characters>.tmp``.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")


@dataclass
class RayReport:
    """What a run did: the outputs written and ``(input, message)`` per failure."""

    written: list[str]
    failed: list[tuple[str, str]]
    #: Hidden temporary files left by killed workers, removed after the run.
    removed_temporaries: int = 0


class FileWorker:
    """The actor of ``predict --ray``: rows ``src``, ``dst``, ``name`` in, plus ``error`` out.

    ``name`` is how messages name the input (as the user gave it); ``src`` and ``dst`` are
    absolute paths or URIs, since workers do not share the driver's working folder.
    ``batch_size``, ``workers``, ``threads`` and ``streams`` are
    :class:`~sod100k.distributed.predictor.SaliencyPredictor`'s.
    """

    def __init__(
        self,
        spec: ModelSpec,
        render: Renderer,
        batch_size: int = 8,
        workers: int = 2,
        threads: int | None = None,
        streams: int | None = 1,
    ) -> None:
        self.pipeline = ImagePipeline(
            spec.predictor(threads or actor_threads(), streams), batch_size, workers
        )
        self.render = render

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = list(
            zip(batch["src"].tolist(), batch["dst"].tolist(), batch["name"].tolist(), strict=True)
        )

        def decode(item: tuple[str, str, str]) -> np.ndarray:
            src, _, name = item
            return load_rgb(read_bytes(src, name), name)

        def finish(item: tuple[str, str, str], rgb: np.ndarray, sal: np.ndarray) -> str:
            dst = item[1]
            write_bytes(dst, encode_image(self.render(rgb, sal), PurePath(dst).suffix))
            return ""

        results = self.pipeline.run(items, decode, finish)
        errors = [r if isinstance(r, str) else _message(r) for r in results]
        return {"name": batch["name"], "dst": batch["dst"], "error": np.array(errors, dtype=object)}


def _message(e: BaseException) -> str:
    return str(e) or type(e).__name__


def plan_pool(actors: int | None, cpus_per_actor: int | None) -> tuple[int, int]:
    """``(actors, cpus_per_actor)`` for the connected cluster.

    By default an actor takes :data:`DEFAULT_ACTOR_CPUS` CPUs (fewer on smaller nodes)
    and the pool fills the cluster; a pool larger than the cluster would wait forever
    for actors that cannot be placed, so it is refused.

    Raises:
        ClusterError: the requested pool does not fit.
    """
    from sod100k.distributed.cluster import node_cpus

    largest = max(node_cpus(), default=0.0)
    cpus = cpus_per_actor or max(1, min(DEFAULT_ACTOR_CPUS, int(largest)))
    fits = pool_size(cpus)
    if actors is not None and actors > fits:
        raise ClusterError(
            f"--ray-actors {actors} with {cpus} CPU(s) each does not fit this cluster "
            f"(room for {fits}); ask for fewer actors or fewer CPUs per actor"
        )
    return actors or fits, cpus


def predict_files(
    items: Sequence[tuple[str, str, str]],
    spec: ModelSpec,
    render: Renderer,
    *,
    actors: int,
    cpus_per_actor: int,
    batch_size: int = 8,
    workers: int = 2,
    streams: int | None = 1,
    progress: bool = True,
    on_row: Callable[[str, str], None] | None = None,
) -> RayReport:
    """Predict ``(src, dst)`` pairs on the connected cluster; never raises for a bad item.

    Args:
        items: ``(src, dst, name)``: where to read each image and where to write its
            result (absolute paths that every node sees, or pyarrow URIs), and how
            messages name it.
        spec: the model (:meth:`ModelSpec.load`).
        render: turns ``(rgb, saliency_map)`` into the image to write.
        actors: actor pool size.
        cpus_per_actor: CPUs each actor holds (and its inference threads).
        batch_size: images per network call.
        workers: decode/encode threads per actor.
        streams: network calls at once in each actor (OpenVINO): 1, the latency setting
            (all the actor's threads in each call), or ``None``, the throughput setting
            (one single-threaded stream per CPU of the actor; pair it with
            ``batch_size=1``), as ``sod100k predict`` runs folders.
        progress: show a progress bar on standard error.
        on_row: called with ``(name, error)`` as each row comes back (``error`` is
            ``""`` for a written output), in the driver.

    Returns:
        The :class:`RayReport`.
    """
    ray = require_ray()
    from ray.data import ActorPoolStrategy

    report = RayReport([], [])
    if not items:
        return report
    # A few tasks per actor, so that every actor gets work and a lost one costs little.
    per_task = max(1, min(MAX_ROWS_PER_TASK, math.ceil(len(items) / (4 * actors))))
    ds = ray.data.from_items(
        [{"src": src, "dst": dst, "name": name} for src, dst, name in items],
        override_num_blocks=math.ceil(len(items) / per_task),
    )
    ds = ds.map_batches(
        FileWorker,
        fn_constructor_kwargs={
            "spec": spec,
            "render": render,
            "batch_size": batch_size,
            "workers": workers,
            "streams": streams,
        },
        batch_size=per_task,
        batch_format="numpy",
        compute=ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor,
    )
    bar = tqdm(total=len(items), unit="img", disable=not progress, dynamic_ncols=True)
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for name, dst, error in zip(batch["name"], batch["dst"], batch["error"], strict=True):
                if error:
                    report.failed.append((str(name), str(error)))
                    line = error if error.startswith(str(name)) else f"{name}: {error}"
                    bar.write(f"error: {line}")
                else:
                    report.written.append(str(dst))
                bar.update(1)
                if on_row is not None:
                    on_row(str(name), str(error))
    finally:
        bar.close()
    # Only now that the run is over: no worker of it can be writing any more.
    report.removed_temporaries = remove_temporaries([dst for _, dst, _ in items])
    return report


def remove_temporaries(outputs: Sequence[str]) -> int:
    """Remove the hidden temporary files of these outputs' atomic writes.

    A worker killed in the middle of a write leaves its temporary file (never the output
    itself). Call this once no worker of the run is alive any more.

    Returns:
        How many were removed.
    """
    names: dict[Path, set[str]] = defaultdict(set)
    for out in outputs:
        if out.startswith("file://"):
            out = out.removeprefix("file://")
        if not is_uri(out):
            path = Path(out)
            names[path.parent].add(path.name)
    removed = 0
    for folder, wanted in names.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            match = _TEMPORARY.match(entry.name)
            if match and match["name"] in wanted:
                try:
                    os.unlink(entry.path)
                    removed += 1
                except OSError:
                    pass
    return removed
