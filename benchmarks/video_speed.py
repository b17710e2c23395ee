"""Video throughput of ``sod100k predict clip.mp4``: frames per second per output format.

Makes a 640x360, 25 fps H.264 test clip with AAC audio from ECSSD images (a slow pan
over each; or pass ``--clip`` to use your own), then for each setting runs
:func:`sod100k.infer.video.predict_video` in a fresh process (so no runtime's idle
threads slow another) and records frames per second. Each process first compiles the
network for its batch shape (reported apart: ``compile s``), then times the whole
pipeline: decode, resize, network, resize back, render, encode, mux. It also times each
stage alone on the same frames, to show which one bounds the pipeline. Run from the
repository root:

    PYTHONPATH=src python benchmarks/video_speed.py --weights ../shared/weights/csnet-L-x1

Each setting is ``format:batch:threads``, e.g. ``mask:8:2``. Results go to
``--out``/``video-speed.json`` and ``.md``, with the CPU model, command and date.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

from harness import cpu_model
from sod100k.infer.predictor import Predictor
from sod100k.infer.preprocess import postprocess, preprocess
from sod100k.infer.runtime import make_backend
from sod100k.infer.video import OUTPUTS, make_frame_renderer, predict_video


def make_clip(images: Path, dst: Path, width: int, height: int, seconds: float) -> Path:
    """An H.264/AAC clip panning over ECSSD images, two seconds each."""
    paths = sorted(images.glob("*.jpg"))
    frames = round(seconds * 25)
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
        tone = np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)])
        tone = (0.2 * tone).astype(np.float32)
        for k in range(0, tone.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(tone[:, k : k + 1024]), format="fltp", layout="stereo"
            )
            chunk.sample_rate, chunk.pts = 48000, k
            out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
    return dst


def run_one(setting: str, clip: Path, weights: Path, size: int) -> dict:
    """Measure one ``format:batch:threads`` setting in this process."""
    fmt, batch, threads = setting.split(":")
    batch_size, n_threads = int(batch), int(threads)
    start = time.perf_counter()
    backend = make_backend("openvino", None, str(weights), threads=n_threads)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    backend(np.zeros((batch_size, 3, size, size), np.float32))  # compiles this shape
    compile_s = time.perf_counter() - start
    predictor = Predictor(backend, size)
    with tempfile.TemporaryDirectory(prefix="sod100k-video-") as tmp:
        dst = Path(tmp) / f"out{OUTPUTS[fmt].suffix}"
        cpu = time.process_time()
        report = predict_video(clip, dst, predictor, fmt, batch_size=batch_size, progress=False)
        cpu_ms = (time.process_time() - cpu) * 1000 / report.frames
        out_bytes = dst.stat().st_size
    stages = stage_cpu_ms(clip, predictor, fmt, batch_size)
    return {
        "setting": setting,
        "weights": weights.name,
        "frames": report.frames,
        "load_s": round(load_s, 2),
        "compile_s": round(compile_s, 2),
        "seconds": round(report.seconds, 2),
        "fps": round(report.fps, 1),
        "cpu_ms_per_frame": round(cpu_ms, 1),
        "audio": report.audio,
        "output_kib": round(out_bytes / 1024),
        **{f"{k}_cpu_ms": round(v, 1) for k, v in stages.items()},
    }


def stage_cpu_ms(clip: Path, predictor: Predictor, fmt: str, batch_size: int) -> dict[str, float]:
    """CPU milliseconds per frame of each stage alone, on (up to) the clip's first 100
    frames. CPU time (all threads) is what a stage takes from the machine's cores, and it
    varies much less with other load than wall time does."""
    start = time.process_time()
    rgbs, tensors = [], []
    with av.open(str(clip)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in c.decode(stream):
            rgbs.append(frame.to_ndarray(format="rgb24"))
            tensors.append(preprocess(rgbs[-1], predictor.size))
            if len(rgbs) == 100:
                break
    ms = {"decode": (time.process_time() - start) * 1000 / len(rgbs)}
    n = len(rgbs) - len(rgbs) % batch_size
    start = time.process_time()
    logits = [
        lg
        for k in range(0, n, batch_size)
        for lg in predictor.backend(np.stack(tensors[k : k + batch_size]))
    ]
    ms["network"] = (time.process_time() - start) * 1000 / n
    spec = OUTPUTS[fmt]
    render = make_frame_renderer(fmt)
    start = time.process_time()
    with (
        tempfile.TemporaryDirectory(prefix="sod100k-video-") as tmp,
        av.open(str(Path(tmp) / f"x{spec.suffix}"), "w") as out,
    ):
        stream = out.add_stream(spec.codec, rate=25, options=dict(spec.options))
        stream.height, stream.width = rgbs[0].shape[:2]
        stream.pix_fmt = spec.pix_fmt
        for rgb, lg in zip(rgbs, logits, strict=False):
            image = render(rgb, postprocess(lg, *rgb.shape[:2]))
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, spec.frame_format)))
        out.mux(stream.encode(None))
    ms["render_encode"] = (time.process_time() - start) * 1000 / n
    return ms


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        f"{meta['cpu']}; {meta['date']}; clip {meta['clip']}, {meta['size']}x{meta['size']} "
        f"network input. Command: `{meta['command']}`",
        "",
        "fps: the whole pipeline, wall clock (network compiled beforehand). CPU ms/frame: "
        "CPU time of all threads per frame, for the pipeline and for each stage alone "
        "(decode = decode + resize for the network; render+encode = map back to frame "
        "size, render, encode); on N idle cores the pipeline can reach at most "
        "N x 1000 / (CPU ms/frame) fps.",
        "",
        "| weights | format:batch:threads | frames | fps | CPU ms/frame | "
        "decode | network | render+encode | compile s | output KiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['weights']} | {r['setting']} | {r['frames']} | {r['fps']} | "
            f"{r['cpu_ms_per_frame']} | {r['decode_cpu_ms']} | {r['network_cpu_ms']} | "
            f"{r['render_encode_cpu_ms']} | {r['compile_s']} | {r['output_kib']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", type=Path, default=Path("../shared/weights/csnet-L-x1"))
    p.add_argument("--images", type=Path, default=Path("../shared/data/ECSSD/images"))
    p.add_argument("--clip", type=Path, help="your own clip instead of the generated one")
    p.add_argument("--seconds", type=float, default=12.0, help="generated clip length")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--size", type=int, default=224, help="network input side")
    p.add_argument(
        "--settings",
        nargs="+",
        default=["mask:8:2", "overlay:8:2", "rgba:8:2"],
        help="format:batch:threads (default %(default)s)",
    )
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one setting
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.clip, args.weights, args.size)))
        return
    with tempfile.TemporaryDirectory(prefix="sod100k-clip-") as tmp:
        clip = args.clip or make_clip(
            args.images, Path(tmp) / "clip.mp4", args.width, args.height, args.seconds
        )
        rows = []
        for setting in args.settings:
            cmd = [sys.executable, __file__, "--one", setting, "--clip", str(clip)]
            cmd += ["--weights", str(args.weights), "--size", str(args.size)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{setting} failed:\n{done.stderr}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(rows[-1], file=sys.stderr)
        with av.open(str(clip)) as c:
            v = c.streams.video[0]
            clip_desc = (
                f"{clip.name}: {v.codec_context.width}x{v.codec_context.height} "
                f"{v.codec_context.name} {v.average_rate} fps, {v.frames} frames"
            )
    meta = {
        "cpu": f"{cpu_model()}, {os.cpu_count()} CPUs",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "PYTHONPATH=src python benchmarks/video_speed.py " + shlex.join(sys.argv[1:]),
        "clip": clip_desc,
        "size": args.size,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "video-speed.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (args.out / "video-speed.md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))


if __name__ == "__main__":
    main()
