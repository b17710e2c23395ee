"""Throughput of ``sod100k predict`` locally and on Ray, actor start-up, and a model for N nodes.

Every measurement runs in a fresh interpreter (harness.run_cell), one after the other;
each Ray measurement starts its own local cluster (``ray.init(num_cpus=CORES)``) and
shuts it down. Rows:

* ``network only``: the ceiling: images/s of the default backend alone in its best
  setting (OpenVINO's throughput setting, batch 1; ``throughput.py``'s cell), no decoding,
  encoding or writing.
* ``local``: the whole ``sod100k predict FOLDER -o OUT -q`` (its defaults: OpenVINO's
  throughput setting, batch 1), run in the cell's process.
* ``ray, A actor(s) x C CPU(s), SETTING``: ``predict_files`` (what ``predict --ray``
  runs), from ``ray.init`` to the last row, with one actor of all the cores and with one
  actor per core, each in the throughput setting (streams auto, batch 1; ``predict
  --ray``'s default) and in the latency setting (1 stream, batch 8).

**The rate is a difference**: each setting runs twice from scratch, on N and on 2N
images; ``N / (T(2N) - T(N))`` is its rate once started, since everything paid once
(interpreter, imports, cluster, export, actor start, graph compilation, the first tasks)
cancels out. It cannot count start-up as work nor time blocks of rows that overlap, so it
cannot overstate the way a rate read from rows as they come back can; ``2N / T(2N)``
(the plain whole run) is a lower bound beside it, the network-only row an upper bound,
and the run checks ``whole run <= rate <= network only`` for every row. N should be a
multiple of 64 x CORES so that the 64-row tasks of ``predict --ray`` split evenly among
the actors at both sizes (the same tail, which then cancels too). ``start-up s`` is
``2 T(N) - T(2N)``: what a run costs beyond its images.

* ``actor start-up``: seconds from creating one actor to its first answer (process start,
  imports, compiling the graph the driver exported).
* ``driver``: seconds per file to list and plan the input folder (``plan_run``), and the
  driver's and Ray Data's cost per task: a pool of no-op actors over one-row tasks.

The written model: with ``r`` images/s per node (the best ``ray`` row), ``t_task``
seconds of driver time per task of ``k`` rows and ``t_list`` seconds per file of listing,
``n`` nodes process ``F`` files in about ``F * t_list + F / min(n * r, k / t_task) +
start-up`` seconds: throughput grows with the nodes until the driver cannot hand out
tasks faster. The script prints that model for
10 and 100 nodes beside the measurements.

    .venv/bin/python benchmarks/ray_scaling.py --images ../shared/data/ECSSD/images -n 512
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness

#: Rows per task of ``predict --ray`` on a big job (sod100k.distributed.batch).
ROWS_PER_TASK = 64
#: The two settings of an actor's network: (label, streams, batch size); the first is
#: ``predict --ray``'s default (sod100k.distributed.batch.DEFAULT_ACTOR_STREAMS).
ACTOR_SETTINGS = (("streams auto, batch 1", None, 1), ("1 stream, batch 8", 1, 8))


def _copy_images(folder: Path, n: int, dst: Path) -> Path:
    """The first ``n`` images of ``folder``, cycled if it has fewer, copied to ``dst``."""
    from sod100k.data.images import list_images

    found = list_images(folder, recursive=False)
    if not found:
        sys.exit(f"no images in {folder}")
    dst.mkdir(parents=True)
    for i in range(n):
        src = found[i % len(found)]
        shutil.copy(src, dst / f"{i:06d}{src.suffix}")
    return dst


def _jobs(folder: Path, out: Path):
    from sod100k.infer.batch import plan_jobs

    jobs, failed = plan_jobs([folder], out)
    if failed:
        sys.exit(f"cannot plan {folder}: {failed[0]}")
    return jobs


def _local(cell: dict, folder: Path, out: Path) -> None:
    from sod100k.cli import main

    code = main(["predict", str(folder), "-o", str(out), "-w", cell["weights"], "-q"])
    assert code == 0, f"sod100k predict exited with {code}"


def _ray(cell: dict, folder: Path, out: Path) -> None:
    from sod100k.distributed.batch import predict_files
    from sod100k.distributed.model import ModelSpec
    from sod100k.infer.batch import render_mask

    _start_ray(cell["cores"])
    spec = ModelSpec.load(weights=cell["weights"])
    items = [(str(j.src), str(j.dst), str(j.src)) for j in _jobs(folder, out)]
    report = predict_files(
        items,
        spec,
        render_mask,
        actors=cell["actors"],
        cpus_per_actor=cell["cpus"],
        batch_size=cell["batch"],
        streams=cell["streams"],
        progress=False,
    )
    assert not report.failed, report.failed[:1]


def _start_ray(cores: int) -> None:
    import ray

    from sod100k.distributed.cluster import connect

    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    connect()  # quiet Ray Data


def throughput(cell: dict) -> dict:
    """Seconds for one whole run of a setting on ``count`` images, in this fresh process
    (the images are copied before the clock starts)."""
    with tempfile.TemporaryDirectory(prefix="sod100k-ray-bench-") as tmp:
        folder = _copy_images(Path(cell["images"]), cell["count"], Path(tmp) / "in")
        run = _local if cell["kind"] == "local" else _ray
        start = time.perf_counter()
        run(cell, folder, Path(tmp) / "out")
        return {"seconds": time.perf_counter() - start}


def network(cell: dict) -> dict:
    """The ceiling: the backend alone in its best setting (``throughput.py``'s cell)."""
    import throughput as net

    return net.network_cell(
        {"weights": cell["weights"], "streams": "auto", "batch": 1, "threads": None,
         "size": 224, "images": cell["count"]}
    )  # fmt: skip


def rate_row(n: int, pairs: list[tuple[float, float]]) -> dict:
    """A setting's row from its ``(T(N), T(2N))`` pairs of whole-run seconds: the rate
    ``N / (T(2N) - T(N))`` (median over the pairs), the start-up ``2 T(N) - T(2N)`` and
    the plain whole-run rate ``2N / T(2N)``."""
    t1 = statistics.median(a for a, _ in pairs)
    t2 = statistics.median(b for _, b in pairs)
    rates = [n / (b - a) if b > a else float("inf") for a, b in pairs]
    return {
        "images_per_s": statistics.median(rates),
        "rates": rates,
        "start_s": 2 * t1 - t2,
        "whole_run_per_s": 2 * n / t2,
        "t_n_s": t1,
        "t_2n_s": t2,
    }


def check(row: dict, ceiling: float) -> str:
    """``ok`` when ``whole run <= rate <= network only`` holds for the row, else why not."""
    if row["images_per_s"] < row["whole_run_per_s"]:
        return "rate below the whole run's"
    if row["images_per_s"] > ceiling:
        return "rate above the network-only ceiling"
    return "ok"


def actor_startup(cell: dict) -> dict:
    """Seconds from creating a predict actor to its first mask written, and the driver's
    export of the graph."""
    import numpy as np
    import ray

    from sod100k.distributed.model import ModelSpec
    from sod100k.infer.batch import render_mask

    _start_ray(cell["cores"])
    start = time.perf_counter()
    spec = ModelSpec.load(weights=cell["weights"])
    export_s = time.perf_counter() - start
    actor_cls = ray.remote(num_cpus=cell["cpus"])(_Started)
    image = next(Path(cell["images"]).glob("*.jpg"))
    starts = []
    with tempfile.TemporaryDirectory(prefix="sod100k-ray-bench-") as tmp:
        one = {"src": [str(image)], "dst": [f"{tmp}/out.png"], "name": [str(image)]}
        batch = {k: np.array(v, dtype=object) for k, v in one.items()}
        for _ in range(cell["runs"]):
            start = time.perf_counter()
            actor = actor_cls.remote(spec, render_mask, cell["batch"], 2, None, cell["streams"])
            errors = ray.get(actor.run.remote(batch))["error"]
            starts.append(time.perf_counter() - start)
            assert not errors[0], errors[0]
            ray.kill(actor)
    return {"export_s": export_s, "actor_start_s": sorted(starts)[len(starts) // 2]}


class _Started:
    """A predict actor with a named method (Ray calls methods by name)."""

    def __init__(self, *args) -> None:
        from sod100k.distributed.batch import FileWorker

        self.worker = FileWorker(*args)

    def run(self, batch: dict) -> dict:
        return self.worker(batch)


class _NoOp:
    """An actor that answers every row at once: what is left is the pipeline's cost."""

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        return {
            "name": batch["name"],
            "dst": batch["dst"],
            "error": np.full(len(batch["name"]), "", dtype=object),
        }


def driver(cell: dict) -> dict:
    """Listing cost per file, and Ray Data's cost per one-row task through no-op actors."""
    import ray
    from ray.data import ActorPoolStrategy

    with tempfile.TemporaryDirectory(prefix="sod100k-ray-bench-") as tmp:
        folder = _copy_images(Path(cell["images"]), cell["files"], Path(tmp) / "in")
        start = time.perf_counter()
        _jobs(folder, Path(tmp) / "out")
        list_s = (time.perf_counter() - start) / cell["files"]
    _start_ray(cell["cores"])
    rows = [{"src": str(i), "dst": str(i), "name": str(i)} for i in range(cell["tasks"])]
    ds = ray.data.from_items(rows, override_num_blocks=cell["tasks"])
    ds = ds.map_batches(
        _NoOp,
        batch_size=1,
        batch_format="numpy",
        num_cpus=1,
        compute=ActorPoolStrategy(size=cell["cores"]),
    )
    start = time.perf_counter()
    count = sum(len(b["name"]) for b in ds.iter_batches(batch_size=None, batch_format="numpy"))
    assert count == cell["tasks"]
    return {"list_s_per_file": list_s, "task_s": (time.perf_counter() - start) / cell["tasks"]}


MEASURES = {
    "throughput": throughput,
    "network": network,
    "actor_startup": actor_startup,
    "driver": driver,
}


def model(node_rate: float, task_s: float, list_s: float, start_s: float) -> list[dict]:
    """Predicted throughput for 10 and 100 nodes like this one, on 1M files."""
    files = 1_000_000
    driver_cap = ROWS_PER_TASK / task_s  # rows/s the driver can hand out
    rows = []
    for nodes in (1, 10, 100):
        rate = min(nodes * node_rate, driver_cap)
        seconds = files * list_s + files / rate + start_s
        rows.append(
            {
                "nodes": nodes,
                "images_per_s": rate,
                "hours_per_million": seconds / 3600,
                "bound": "driver" if rate == driver_cap else "nodes",
            }
        )
    return rows


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n > 1 else ''}"


def main() -> int:
    cell = harness.worker_cell(sys.argv)
    if cell is not None:
        harness.emit(MEASURES[cell["measure"]](cell))
        return 0
    p = harness.parser(__doc__, weights="../shared/weights/csnet-L-x2", threads=None)
    p.add_argument("--images", type=Path, default=Path("../shared/data/ECSSD/images"))
    p.add_argument("-n", type=int, default=512, help="N: each setting runs on N and on 2N images")
    p.add_argument("--repeats", type=int, default=1, help="(N, 2N) pairs per setting")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="CPUs of the cluster")
    args = p.parse_args()
    if args.n % (ROWS_PER_TASK * args.cores):
        print(
            f"warning: -n {args.n} is no multiple of {ROWS_PER_TASK} x {args.cores}: the "
            "actors' last tasks differ between N and 2N, and so may the rate",
            file=sys.stderr,
        )
    meta = harness.start("ray_scaling", args.note)
    base = {
        "images": str(args.images.resolve()),
        "weights": str(args.weights.resolve()),
        "cores": args.cores,
    }
    script = Path(__file__).resolve()
    # first: it also fills the graph cache that every later run then finds
    net = harness.run_cell(script, {**base, "measure": "network", "count": 2 * args.n})
    ceiling = net["images_per_s"]
    settings = [("local: sod100k predict FOLDER (defaults)", {"kind": "local"})]
    pools = [(1, args.cores)] + ([(args.cores, 1)] if args.cores > 1 else [])
    for actors, cpus in pools:
        for label, streams, batch in ACTOR_SETTINGS:
            pool = f"{_count(actors, 'actor')} x {_count(cpus, 'CPU')}"
            settings.append(
                (
                    f"ray, {pool}, {label}",
                    {"kind": "ray", "actors": actors, "cpus": cpus, "streams": streams,
                     "batch": batch},
                )
            )  # fmt: skip
    rows = []
    for label, extra in settings:
        pairs = []
        for k in range(args.repeats):
            sizes = (args.n, 2 * args.n) if k % 2 == 0 else (2 * args.n, args.n)
            seconds = {
                count: harness.run_cell(
                    script, {**base, **extra, "measure": "throughput", "count": count}
                )["seconds"]
                for count in sizes
            }
            pairs.append((seconds[args.n], seconds[2 * args.n]))
        row = {"setting": label, **rate_row(args.n, pairs)}
        rows.append({**row, "check": check(row, ceiling)})
    streams, batch = ACTOR_SETTINGS[0][1:]
    start = harness.run_cell(
        script,
        {**base, "measure": "actor_startup", "cpus": 1, "runs": 3, "streams": streams,
         "batch": batch},
    )  # fmt: skip
    drv = harness.run_cell(script, {**base, "measure": "driver", "files": 1000, "tasks": 300})
    best = max(rows[1:], key=lambda r: r["images_per_s"])  # a node's best Ray setting
    node_rate = best["images_per_s"]
    predicted = model(node_rate, drv["task_s"], drv["list_s_per_file"], start["actor_start_s"])
    table = harness.markdown_table(
        {
            "setting": "setting",
            "images_per_s": "images/s",
            "whole_run_per_s": f"whole run, {2 * args.n} images",
            "start_s": "start-up s",
            "t_n_s": f"s for {args.n}",
            "t_2n_s": f"s for {2 * args.n}",
            "check": "whole run <= rate <= network",
        },
        rows,
    )
    notes = (
        f"Network only (the ceiling; OpenVINO's throughput setting, batch 1, no decoding "
        f"or encoding): {ceiling:.1f} images/s.  \n"
        f"images/s = {args.n} / (s for {2 * args.n} - s for {args.n}), median of "
        f"{args.repeats} pair(s); start-up s = 2 x (s for {args.n}) - s for {2 * args.n}.\n\n"
        f"Actor start-up (create to first answer, median of 3): {start['actor_start_s']:.2f} s; "
        f"the driver's ONNX export: {start['export_s']:.2f} s.  \n"
        f"Driver: listing and planning {drv['list_s_per_file'] * 1e6:.0f} µs per file; "
        f"{drv['task_s'] * 1e3:.1f} ms per task (one-row tasks through no-op actors).\n\n"
        f"Model for nodes like this one ({node_rate:.1f} images/s each: {best['setting']}), "
        f"{ROWS_PER_TASK}-row tasks, 1M files:\n\n"
        + harness.markdown_table(
            {
                "nodes": "nodes",
                "images_per_s": "images/s",
                "hours_per_million": "hours / 1M",
                "bound": "bound by",
            },
            predicted,
        )
    )
    _, md = harness.write_results(
        args.out,
        f"ray-scaling-{meta['machine']['cpu_class']}",
        meta,
        [
            {"setting": "network only", **net},
            *rows,
            {"setting": "actor start-up", **start},
            {"setting": "driver", **drv},
            *({"setting": f"model, {r['nodes']} nodes", **r} for r in predicted),
        ],
        table,
        notes=notes,
    )
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
