"""Throughput of ``sod100k predict`` locally and on Ray, actor start-up, and a model for N nodes.

Every measurement runs in a fresh interpreter (harness.run_cell), one after the other;
each Ray measurement starts its own local cluster (``ray.init(num_cpus=CORES)``) and
shuts it down. Rows:

* ``local``: the local pipeline (``run_batch``, default backend, all cores).
* ``ray, A actor(s) x C CPU(s)``: ``predict_files`` (what ``predict --ray`` runs) with
  one actor of all the cores, and one actor per core.
* For both: the steady rate on N images once started (local: after the model is
  loaded; Ray: over the rows after the first 10%, from the times they come back), and
  the start-up cost beside it (model load; export, actor start and the first tasks).
* ``actor start-up``: seconds from creating one actor to its first answer (process start,
  imports, compiling the graph the driver exported).
* ``driver``: seconds per file to list and plan the input folder (``plan_run``), and the
  driver's and Ray Data's cost per task: a pool of no-op actors over one-row tasks.

The written model: with ``r`` images/s per node (the better ``ray`` row), ``t_task``
seconds of driver time per task of ``k`` rows and ``t_list`` seconds per file of listing,
``n`` nodes process ``F`` files in about ``F * t_list + F / min(n * r, k / t_task) +
start-up`` seconds: throughput grows with the nodes until the driver cannot hand out
tasks faster. The script prints that model for
10 and 100 nodes beside the measurements.

    .venv/bin/python benchmarks/ray_scaling.py --images ../shared/data/ECSSD/images -n 400
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import harness

#: Rows per task of ``predict --ray`` on a big job (sod100k.distributed.batch).
ROWS_PER_TASK = 64


def _copy_images(folder: Path, n: int, dst: Path) -> Path:
    """The first ``n`` images of ``folder``, cycled if it has fewer, copied to ``dst``."""
    from sod100k.data.images import IMAGE_SUFFIXES

    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
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


#: Rows done before the steady rate is timed: start-up and the first tasks lie before.
RAMP = 0.1


def _local(cell: dict, folder: Path, out: Path) -> dict:
    from sod100k.infer.batch import run_batch
    from sod100k.infer.predictor import Predictor
    from sod100k.infer.runtime import make_backend

    start = time.perf_counter()
    predictor = Predictor(make_backend("auto", None, cell["weights"]))
    loaded = time.perf_counter()
    report = run_batch(_jobs(folder, out), predictor, 8, 2, progress=False)
    assert not report.failed, report.failed[:1]
    done = time.perf_counter()
    return {
        "images_per_s": cell["n"] / (done - loaded),
        "start_s": loaded - start,
        "total_s": done - start,
    }


def _ray(cell: dict, folder: Path, out: Path) -> dict:
    from sod100k.distributed.batch import predict_files
    from sod100k.distributed.model import ModelSpec
    from sod100k.infer.batch import render_mask

    start = time.perf_counter()
    spec = ModelSpec.load(weights=cell["weights"])
    items = [(str(j.src), str(j.dst), str(j.src)) for j in _jobs(folder, out)]
    times: list[float] = []
    report = predict_files(
        items,
        spec,
        render_mask,
        actors=cell["actors"],
        cpus_per_actor=cell["cpus"],
        progress=False,
        on_row=lambda name, error: times.append(time.perf_counter()),
    )
    assert not report.failed, report.failed[:1]
    # Rows come back a task (block) at a time, microseconds apart within a block: time
    # from the block that completes the ramp to the last block, over the rows in between.
    blocks: list[list[float]] = []
    for t in times:
        if blocks and t - blocks[-1][-1] < 0.005:
            blocks[-1].append(t)
        else:
            blocks.append([t])
    ramp, done, k = max(1, int(RAMP * len(times))), 0, 0
    while done < ramp:
        done += len(blocks[k])
        k += 1
    if k >= len(blocks):
        raise SystemExit(f"-n {cell['n']}: too few tasks to time a steady rate; raise -n")
    rate = (len(times) - done) / (blocks[-1][-1] - blocks[k - 1][-1])
    return {
        "images_per_s": rate,
        "start_s": times[-1] - start - len(times) / rate,
        "total_s": times[-1] - start,
    }


def _start_ray(cores: int) -> None:
    import ray

    from sod100k.distributed.cluster import connect

    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    connect()  # quiet Ray Data


def throughput(cell: dict) -> dict:
    """Images/s of one setting on N images, after its start-up (in this fresh process).

    Local: the pipeline's rate once the model is loaded. Ray: the rate over the rows
    after the first 10% (actor start-up and the first tasks lie before), from the times
    the rows come back to the driver; ``start_s`` is what the run took beyond that rate.
    """
    if cell["kind"] == "ray":
        _start_ray(cell["cores"])
    run = _local if cell["kind"] == "local" else _ray
    with tempfile.TemporaryDirectory(prefix="sod100k-ray-bench-") as tmp:
        folder = _copy_images(Path(cell["images"]), cell["n"], Path(tmp) / "in")
        return run(cell, folder, Path(tmp) / "out")


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
            actor = actor_cls.remote(spec, render_mask)
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


MEASURES = {"throughput": throughput, "actor_startup": actor_startup, "driver": driver}


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


def main() -> int:
    cell = harness.worker_cell(sys.argv)
    if cell is not None:
        harness.emit(MEASURES[cell["measure"]](cell))
        return 0
    p = harness.parser(__doc__, weights="../shared/weights/csnet-L-x2", threads=None)
    p.add_argument("--images", type=Path, default=Path("../shared/data/ECSSD/images"))
    p.add_argument("-n", type=int, default=400, help="images per run")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="CPUs of the cluster")
    args = p.parse_args()
    meta = harness.start("ray_scaling", args.note)
    base = {
        "images": str(args.images.resolve()),
        "weights": str(args.weights.resolve()),
        "n": args.n,
        "cores": args.cores,
    }
    script = Path(__file__).resolve()
    settings = [("local", {"kind": "local"})]
    settings += [
        (f"ray, 1 actor x {args.cores} CPUs", {"kind": "ray", "actors": 1, "cpus": args.cores})
    ]
    if args.cores > 1:
        settings += [
            (f"ray, {args.cores} actors x 1 CPU", {"kind": "ray", "actors": args.cores, "cpus": 1})
        ]
    rows = []
    for label, extra in settings:
        result = harness.run_cell(script, {**base, **extra, "measure": "throughput"})
        rows.append({"setting": label, **result})
    start = harness.run_cell(script, {**base, "measure": "actor_startup", "cpus": 1, "runs": 3})
    drv = harness.run_cell(script, {**base, "measure": "driver", "files": 1000, "tasks": 300})
    node_rate = max(r["images_per_s"] for r in rows[1:])  # a node's best Ray setting
    predicted = model(node_rate, drv["task_s"], drv["list_s_per_file"], start["actor_start_s"])
    table = harness.markdown_table(
        {
            "setting": "setting",
            "images_per_s": "images/s (steady)",
            "start_s": "start-up s",
            "total_s": f"s for {args.n} images",
        },
        rows,
    )
    notes = (
        f"Actor start-up (create to first answer, median of 3): {start['actor_start_s']:.2f} s; "
        f"the driver's ONNX export: {start['export_s']:.2f} s.  \n"
        f"Driver: listing and planning {drv['list_s_per_file'] * 1e6:.0f} µs per file; "
        f"{drv['task_s'] * 1e3:.1f} ms per task (one-row tasks through no-op actors).\n\n"
        f"Model for nodes like this one ({node_rate:.1f} images/s each), "
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
