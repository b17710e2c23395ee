"""Throughput: the network's limit beside `sod100k predict` end to end, folders and video.

Measures in one run, on one machine (issue 24's targets):

1. **network only**: images/s of the default backend (OpenVINO fp32, csnet-L-x2 at 224)
   for each batch size and stream setting, each cell in a fresh process: ``1`` is the
   latency setting (one stream, all threads in each call), ``auto`` OpenVINO's throughput
   setting (one single-threaded stream per core on a small CPU), an integer that many
   streams sharing the threads. As many calls are kept in flight as the backend has
   streams, from threads, as ``sod100k predict`` does. No decoding or encoding.
2. **folder end to end**: the whole command ``python -m sod100k predict IMAGES -o TMP -w
   x2 -q`` (interpreter start, model load, then every image decoded, run, encoded and
   written), timed from outside: images/s, and its ratio to the best network-only
   images/s (the target is >= 0.85).
3. **video end to end**: ``python -m sod100k predict clip.mp4 -o TMP --format FMT -w x1
   -q`` on a generated 640x360, 25 fps H.264 clip with AAC audio (a slow pan over ECSSD
   images; ``--clip`` takes your own), model load included: frames/s (target for mask:
   >= 25 on 2 cores).
4. **where the CPU goes** (``--no-stages`` skips it): in one fresh process, CPU ms per
   image of each stage of the folder pipeline alone on one thread (decode, resize and
   normalise, map, PNG, atomic write), of the whole pipeline with a network that does
   nothing, and of the whole pipeline with the real one (no interpreter start or model
   load). What the real pipeline costs beyond "network alone + pipeline alone" is what
   the stages cost each other by sharing the cores (caches, scheduling).

Commands run with their defaults unless ``--predict-args`` adds options (to compare,
say, the old latency setting ``--streams 1 --batch-size 8``). End-to-end timings are the
median of ``--repeats`` runs with a filled graph cache (every run after the first),
beside one run with an empty one (the first run after installing or changing the
weights exports the model); the CPU seconds of each command (all its threads) are
reported too. Run from the repository root on an otherwise idle machine (~3 minutes):

    .venv/bin/python benchmarks/throughput.py
"""

from __future__ import annotations

import contextlib
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import harness

SCRIPT = Path(__file__).resolve()
MODELS = {"x1": "csnet-L-x1", "x2": "csnet-L-x2"}


# ---------------------------------------------------------------- network only


def network_cell(cell: dict) -> dict:
    """Images/s of the backend alone for one batch size and stream setting."""
    import numpy as np

    from sod100k.infer.backends import concurrency
    from sod100k.infer.runtime import make_backend

    streams = None if cell["streams"] == "auto" else int(cell["streams"])
    backend = make_backend(
        "openvino", None, cell["weights"], threads=cell["threads"], streams=streams
    )
    shape = (cell["batch"], 3, cell["size"], cell["size"])
    calls = concurrency(backend, shape)
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    n_calls = max(2 * calls, -(-cell["images"] // cell["batch"]))
    with ThreadPoolExecutor(calls) as pool:
        list(pool.map(backend, [x] * (2 * calls)))  # warm-up: every request created
        cpu, start = time.process_time(), time.perf_counter()
        list(pool.map(backend, [x] * n_calls))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    images = n_calls * cell["batch"]
    return {
        "streams": cell["streams"],
        "calls_in_flight": calls,
        "batch": cell["batch"],
        "images_per_s": round(images / wall, 1),
        "cpu_ms_per_image": round(1000 * cpu / images, 2),
    }


# ---------------------------------------------------------------- where the CPU goes


class _NoNetwork:
    """A backend that returns zero logits at once: the pipeline's cost without a network."""

    arch = "csnet"

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, x):
        import numpy as np

        return np.zeros((x.shape[0], self.size, self.size), dtype=np.float32)


class _CpuClock:
    """CPU ms per image (all threads) of each ``with clock("name"):`` block, in ``ms``."""

    def __init__(self, images: int) -> None:
        self.images, self.ms = images, {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = time.process_time()
        yield
        self.ms[name] = round(1000 * (time.process_time() - start) / self.images, 3)


def _stage_costs(files: list[Path], size: int, tmp: Path, backend) -> dict:
    """CPU ms per image of each stage of the folder pipeline, one after the other.

    The maps come from ``backend``'s logits for the first 16 images, in turn (real maps
    compress unlike noise).
    """
    import cv2
    import numpy as np

    from sod100k.data.images import load_rgb
    from sod100k.infer.batch import encode_png
    from sod100k.infer.preprocess import postprocess, preprocess
    from sod100k.utils.files import atomic_write_bytes

    raw = [f.read_bytes() for f in files]
    first = [preprocess(load_rgb(b, "x"), size) for b in raw[:16]]
    logits = np.concatenate([backend(x[None]) for x in first]).reshape(-1, size, size)
    clock = _CpuClock(len(files))
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # one thread: the stage's own cost
    try:
        with clock("decode"):
            rgbs = [load_rgb(b, "x") for b in raw]
        with clock("preprocess"):
            for im in rgbs:
                preprocess(im, size)
        with clock("map"):
            maps = [
                postprocess(logits[k % len(logits)], *im.shape[:2]) for k, im in enumerate(rgbs)
            ]
        with clock("png"):
            pngs = [encode_png(m) for m in maps]
        with clock("write"):
            for k, data in enumerate(pngs):
                atomic_write_bytes(tmp / f"{k}.png", data)
    finally:
        cv2.setNumThreads(threads)
    return clock.ms


def stages_cell(cell: dict) -> dict:
    """CPU ms per image of each pipeline stage, of the pipeline alone, and of it all."""
    from sod100k.infer.batch import plan_jobs, render_mask, run_batch
    from sod100k.infer.predictor import Predictor
    from sod100k.infer.runtime import make_backend

    size = cell["size"]
    with tempfile.TemporaryDirectory(prefix="sod100k-stages-") as tmp:
        jobs, _ = plan_jobs([cell["images"]], Path(tmp) / "nothing")
        backend = make_backend("openvino", None, cell["weights"], streams=None)
        (Path(tmp) / "stages").mkdir()
        out = _stage_costs([j.src for j in jobs], size, Path(tmp) / "stages", backend)
        clock = _CpuClock(len(jobs))
        nothing = Predictor(_NoNetwork(size), size)
        with clock("no_network"):  # as many calls in flight as the real one has streams
            run_batch(jobs, nothing, 1, 2, render_mask, progress=False, streams=2)
        real = Predictor(backend, size)
        warm, _ = plan_jobs([cell["images"]], Path(tmp) / "warm-up")
        run_batch(warm[:16], real, 1, 2, render_mask, progress=False)  # compile, requests
        jobs, _ = plan_jobs([cell["images"]], Path(tmp) / "real")
        with clock("pipeline"):
            run_batch(jobs, real, 1, 2, render_mask, progress=False)
    return out | clock.ms


def stages_text(stages: dict, network_ms: float) -> str:
    """The stages' CPU ms per image as a table, with the interference they cause."""
    parts = ("decode", "preprocess", "map", "png", "write")
    alone = network_ms + stages["no_network"]
    rows = [{"what": f"{k} (one thread)", "ms": stages[k]} for k in parts]
    real = stages["pipeline"]
    rows += [
        {"what": "the pipeline with a network that does nothing", "ms": stages["no_network"]},
        {"what": "the network alone (best cell above)", "ms": network_ms},
        {"what": "sum of the two", "ms": round(alone, 3)},
        {"what": "the pipeline with the network (one process, no start-up)", "ms": real},
        {"what": "beyond the sum: what they cost each other", "ms": round(real - alone, 3)},
    ]
    table = harness.markdown_table({"what": "where the CPU goes", "ms": "CPU ms / image"}, rows)
    return f"Where the CPU goes (folder pipeline, {stages['images']} images):\n\n{table}"


# ---------------------------------------------------------------- end to end


def run_command(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``argv`` (``env`` added to the environment) to the end; its wall seconds and
    the CPU seconds of all its threads."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=_env() | env, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"{shlex.join(argv)} failed ({done.returncode}): {tail}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(harness.ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    return env


def predict_command(inputs: Path, out: Path, weights: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "sod100k", "predict", str(inputs), "-o", str(out),
            "-w", str(weights), "-q", *extra]  # fmt: skip


def end_to_end(argv_for, count: int, repeats: int) -> dict:
    """Items/s of ``argv_for(out_dir)`` (``count`` items): once with an empty graph cache
    (``cold``: the first run after installing or changing the weights exports the
    model), then the median of ``repeats`` runs with that cache filled (``warm``: every
    later run)."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="sod100k-throughput-") as tmp:
        env = {"SOD100K_CACHE": str(Path(tmp) / "cache")}
        for k in range(1 + repeats):
            runs.append(run_command(argv_for(Path(tmp) / f"out{k}"), env))
    cold, warm = runs[0], runs[1:]
    wall = statistics.median(w for w, _ in warm)
    return {
        "seconds": round(wall, 2),
        "per_s": round(count / wall, 1),
        "cpu_s": round(statistics.median(c for _, c in warm), 1),
        "cold_per_s": round(count / cold[0], 1),
        "runs_s": [round(w, 2) for w, _ in runs],
    }


def make_clip(images: Path, dst: Path, frames: int, width: int = 640, height: int = 360) -> Path:
    """An H.264/AAC clip at 25 fps panning over ECSSD images, two seconds each."""
    import av
    import cv2
    import numpy as np

    paths = sorted(images.glob("*.jpg"))
    per_image = 50
    with av.open(str(dst), "w") as out:
        video = out.add_stream("libx264", rate=25, options={"preset": "medium", "crf": "20"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream("aac", rate=48000)
        sound.layout = "stereo"
        for k in range(0, frames, per_image):
            bgr = cv2.imread(str(paths[(k // per_image) % len(paths)]))
            big = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (width + 100, height + 50))
            for i in range(min(per_image, frames - k)):
                crop = np.ascontiguousarray(big[i : i + height, 2 * i : 2 * i + width])
                out.mux(video.encode(av.VideoFrame.from_ndarray(crop, format="rgb24")))
        out.mux(video.encode(None))
        t = np.arange(round(48000 * frames / 25)) / 48000
        tone = 0.2 * np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)])
        tone = tone.astype(np.float32)
        for k in range(0, tone.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(tone[:, k : k + 1024]), format="fltp", layout="stereo"
            )
            chunk.sample_rate, chunk.pts = 48000, k
            out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
    return dst


def clip_frames(clip: Path) -> int:
    import av

    with av.open(str(clip)) as c:
        return sum(1 for _ in c.decode(video=0))


# ---------------------------------------------------------------- tables


def summary(net_rows: list[dict], folder: dict, videos: list[dict]) -> dict:
    """The best network-only cell and the end-to-end figures against their targets."""
    best = max(net_rows, key=lambda r: r["images_per_s"])
    out = {
        "network_best": f"streams {best['streams']}, batch {best['batch']}",
        "network_best_images_per_s": best["images_per_s"],
        "folder_images_per_s": folder["per_s"],
        "ratio": round(folder["per_s"] / best["images_per_s"], 3),
        "ratio_target": 0.85,
    }
    for v in videos:
        out[f"video_{v['format']}_fps"] = v["per_s"]
    return out


def tables(net_rows: list[dict], folder: dict, videos: list[dict], s: dict) -> str:
    net = harness.markdown_table(
        {
            "streams": "streams",
            "calls_in_flight": "calls in flight",
            "batch": "batch",
            "images_per_s": "images/s",
            "cpu_ms_per_image": "CPU ms/image",
        },
        net_rows,
    )
    e2e = harness.markdown_table(
        {
            "what": "end to end (whole command, model load included)",
            "count": "items",
            "seconds": "s",
            "per_s": "items/s",
            "cpu_s": "CPU s",
            "cold_per_s": "items/s, empty graph cache",
        },
        [folder, *videos],
    )
    verdict = (
        f"Folder end to end / best network-only: {folder['per_s']} / "
        f"{s['network_best_images_per_s']} images/s = **{s['ratio']:.2f}** "
        f"(target >= {s['ratio_target']}; best network cell: {s['network_best']})."
    )
    video_lines = [
        f"Video {v['format']} end to end: **{v['per_s']} frames/s**"
        + (" (target >= 25)" if v["format"] == "mask" else "")
        for v in videos
    ]
    return "\n\n".join(["Network only (no decoding or encoding):", net, e2e, verdict, *video_lines])


def main() -> None:
    cell = harness.worker_cell(sys.argv)
    if cell is not None:
        harness.emit(stages_cell(cell) if cell.get("measure") == "stages" else network_cell(cell))
        return
    p = harness.parser(__doc__, weights="../shared/weights", threads=None)
    p.add_argument("--images", type=Path, default=Path("../shared/data/ECSSD/images"))
    p.add_argument("--model", choices=list(MODELS), default="x2", help="folder runs' model")
    p.add_argument("--video-model", choices=list(MODELS), default="x1")
    p.add_argument("--size", type=int, default=224, help="network input side")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument(
        "--streams", nargs="+", default=["1", "auto"], help="stream settings: 1, auto, N"
    )
    p.add_argument(
        "--threads", type=int, default=None, help="network-only threads (default: all cores)"
    )
    p.add_argument("--network-images", type=int, default=480, help="images per network cell")
    p.add_argument("--repeats", type=int, default=3, help="end-to-end runs (median)")
    p.add_argument("--clip", type=Path, help="your own clip instead of the generated one")
    p.add_argument("--frames", type=int, default=150, help="generated clip length")
    p.add_argument("--video-formats", nargs="+", default=["mask"], help="mask, overlay, rgba")
    p.add_argument(
        "--no-stages", action="store_true", help="skip the where-the-CPU-goes measurement"
    )
    p.add_argument(
        "--predict-args",
        default="",
        help="extra options for both predict commands, e.g. '--streams 1 --batch-size 8'",
    )
    args = p.parse_args()
    meta = harness.start("throughput", args.note)
    extra = shlex.split(args.predict_args)
    folder_weights = args.weights / MODELS[args.model]
    net_rows = []
    for streams in args.streams:
        for batch in args.batches:
            cell = {
                "weights": str(folder_weights.resolve()),
                "threads": args.threads,
                "streams": streams,
                "batch": batch,
                "size": args.size,
                "images": args.network_images,
            }
            net_rows.append(harness.run_cell(SCRIPT, cell))
            harness.log.info("network: %s", net_rows[-1])
    images = len(list(args.images.iterdir()))
    folder = end_to_end(
        lambda out: predict_command(args.images, out, folder_weights, extra),
        images,
        args.repeats,
    )
    folder |= {"what": f"`predict FOLDER` ({MODELS[args.model]})", "count": images}
    harness.log.info("folder: %s", folder)
    videos = []
    with tempfile.TemporaryDirectory(prefix="sod100k-clip-") as tmp:
        clip = args.clip or make_clip(args.images, Path(tmp) / "clip.mp4", args.frames)
        frames = clip_frames(clip)
        for fmt in args.video_formats:
            video_weights = args.weights / MODELS[args.video_model]
            run = end_to_end(
                lambda out, fmt=fmt, w=video_weights: predict_command(
                    clip, out, w, ["--format", fmt, *extra]
                ),
                frames,
                args.repeats,
            )
            what = f"`predict clip.mp4 --format {fmt}` ({MODELS[args.video_model]})"
            videos.append(run | {"what": what, "count": frames, "format": fmt})
            harness.log.info("video: %s", videos[-1])
    s = summary(net_rows, folder, videos)
    text = tables(net_rows, folder, videos, s)
    stages = None
    if not args.no_stages:
        stage_cell = {"measure": "stages", "images": str(args.images.resolve()),
                      "weights": str(folder_weights.resolve()), "size": args.size}  # fmt: skip
        stages = harness.run_cell(SCRIPT, stage_cell) | {"images": images}
        harness.log.info("stages: %s", stages)
        best = max(net_rows, key=lambda r: r["images_per_s"])
        text += "\n\n" + stages_text(stages, best["cpu_ms_per_image"])
    print(text)
    harness.write_results(
        args.out,
        f"throughput-{meta['machine']['cpu_class']}",
        meta,
        [{"kind": "network", **r} for r in net_rows]
        + [{"kind": "end-to-end", **r} for r in (folder, *videos)]
        + [{"kind": "summary", **s}]
        + ([{"kind": "stages", **stages}] if stages else []),
        text,
        intro=f"Throughput of the default backend and of `sod100k predict`, {images} images "
        f"from {args.images} and a {frames}-frame clip; predict options: "
        f"`{args.predict_args or '(defaults)'}`.",
    )


if __name__ == "__main__":
    main()
