"""``sod100k serve`` under load: throughput and latency, memory on big images, a soak test.

Each sub-command starts the server itself on 127.0.0.1 (a free port; default settings
plus any ``--server-arg``), waits until ``/healthz`` answers, measures, stops the server
and writes ``serving-<sub-command>-<cpu class>.json`` / ``.md`` to ``--out`` with the CPU
model, command and date. Loopback only and bounded (request counts, minutes, clients and
per-request timeouts are capped), so it cannot be aimed elsewhere or run away. Linux only
(memory is read from /proc). Run from the repository root:

    .venv/bin/python benchmarks/serving.py load --requests 500 --concurrency 16
    .venv/bin/python benchmarks/serving.py memory
    .venv/bin/python benchmarks/serving.py soak --minutes 5

* ``load``: ``--requests`` uploads of one image with ``--concurrency`` in flight (after
  ``--warmup`` untimed ones): requests/s, p50 / p99 latency, errors (exit 1 on any).
* ``memory``: the peak resident memory of the server process (``VmHWM``, reset before
  each case through ``/proc/PID/clear_refs``) for the images of issue 13 (a 1-bit
  6300 x 6300 PNG of 4.9 kB, 39.7 MP; a 36 MP photo-like JPEG; a 20 MP JPEG), two
  concurrent 20 MP and four concurrent 39.7 MP cut-outs (queued for the one large
  slot), and the time of a small cut-out sent while a 39.7 MP one runs.
* ``soak``: ``--concurrency`` clients send a weighted mix of good requests (maps,
  cut-outs, a few 20 MP cut-outs that must be admitted or refused with 503) and every
  kind of bad one (not an image, truncated, empty, missing field, bad query value,
  oversized, unknown path, wrong method) for ``--minutes``; every answer is checked
  against the status its kind must get (exit 1 on any other); the server's RSS is
  sampled every second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

import harness

HOST = "127.0.0.1"
MIB = 2**20
MAX_REQUESTS = 10_000


# ---------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with status {server.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError("server did not become healthy")


@contextlib.contextmanager
def running_server(args: argparse.Namespace, *extra: str) -> Iterator[tuple[str, int]]:
    """``sod100k serve`` on a free loopback port, healthy: yields its URL and PID."""
    port = free_port()
    base = f"http://{HOST}:{port}"
    src = harness.ROOT / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-m", "sod100k", "serve", "--host", HOST, "--port", str(port)]
    command += ["--model", args.model, "--weights", str(args.weights), *extra, *args.server_arg]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_healthy(base, server)
        yield base, server.pid
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


def _proc_status(pid: int, field: str) -> int | None:
    """A ``kB`` field of /proc/PID/status, in bytes (None once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def rss_bytes(pid: int) -> int | None:
    return _proc_status(pid, "VmRSS")


def peak_rss(pid: int) -> int:
    peak = _proc_status(pid, "VmHWM")
    if peak is None:
        raise RuntimeError(f"no VmHWM for process {pid}")
    return peak


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def percentiles(seconds: list[float], qs: list[int]) -> list[float | None]:
    if not seconds:
        return [None] * len(qs)
    return [round(float(v), 0) for v in np.percentile(np.asarray(seconds) * 1000.0, qs)]


# ---------------------------------------------------------------- load


async def send_load(
    url: str, data: bytes, name: str, requests: int, concurrency: int, timeout: float
) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    errors: list[str] = []
    queue = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        for _ in queue:
            t0 = time.perf_counter()
            try:
                r = await client.post(url, files={"file": (name, data, "image/jpeg")})
                if r.status_code != 200:
                    errors.append(f"HTTP {r.status_code}")
                    continue
            except httpx.HTTPError as e:
                errors.append(type(e).__name__)
                continue
            latencies.append(time.perf_counter() - t0)

    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return latencies, errors, elapsed


def load(args: argparse.Namespace, meta: dict) -> int:
    data = args.image.read_bytes()
    extra = ["--workers", str(args.workers)] if args.workers else []
    with running_server(args, *extra) as (base, _):
        url = f"{base}/v1/{args.endpoint}"
        timeout, name = args.timeout, args.image.name
        asyncio.run(send_load(url, data, name, args.warmup, args.concurrency, timeout))
        latencies, errors, elapsed = asyncio.run(
            send_load(url, data, name, args.requests, args.concurrency, timeout)
        )
    p50, p99 = percentiles(latencies, [50, 99])
    row = {
        "endpoint": f"/v1/{args.endpoint}",
        "requests": args.requests,
        "concurrency": args.concurrency,
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": p50,
        "p99_ms": p99,
        "errors": len(errors),
    }
    columns = {
        "endpoint": "endpoint",
        "requests": "requests",
        "concurrency": "concurrency",
        "requests_per_s": "requests/s",
        "p50_ms": "p50 ms",
        "p99_ms": "p99 ms",
        "errors": "errors",
    }
    notes = f"Errors: {', '.join(sorted(set(errors)))}." if errors else ""
    intro = (
        f"`sod100k serve --model {args.model}`, image {args.image.name} ({len(data)} bytes), "
        f"after {args.warmup} warm-up requests."
    )
    write(args, meta, "load", [row], harness.markdown_table(columns, [row]), intro, notes)
    return 1 if errors else 0


# ---------------------------------------------------------------- memory


def make_big_images(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    bits = np.zeros((6300, 6300), bool)
    bits[1000:5000, 1500:4500] = True
    paths = {"bits": folder / "bits-6300x6300.png", "photo": folder / "photo-6928x5196.jpg"}
    Image.fromarray(bits).save(paths["bits"])
    import cv2

    small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    rgb = cv2.resize(small, (6928, 5196), interpolation=cv2.INTER_CUBIC)
    rgb[1500:3500, 2500:4500] = (240, 200, 30)
    rgb = cv2.add(rgb, rng.integers(0, 20, rgb.shape, dtype=np.uint8))
    Image.fromarray(rgb).save(paths["photo"], quality=85)
    paths["20mp"] = folder / "photo-5164x3873.jpg"
    small_rgb = cv2.resize(rgb, (5164, 3873), interpolation=cv2.INTER_AREA)
    Image.fromarray(small_rgb).save(paths["20mp"], quality=90)
    return paths


def post(base: str, endpoint: str, path: Path) -> tuple[int, float]:
    t0 = time.perf_counter()
    r = httpx.post(
        f"{base}/v1/{endpoint}", files={"file": (path.name, path.read_bytes())}, timeout=600
    )
    return r.status_code, time.perf_counter() - t0


def memory(args: argparse.Namespace, meta: dict) -> int:
    rows: list[dict] = []
    with (
        tempfile.TemporaryDirectory(prefix="sod100k-mem-") as tmp,
        running_server(args) as (base, pid),
    ):
        images = make_big_images(Path(tmp))
        rows.append(
            {
                "case": "idle, after start-up and warm-up",
                "peak": round(peak_rss(pid) / MIB),
                "after": round((rss_bytes(pid) or 0) / MIB),
            }
        )

        def case(label: str, run: Callable[[], str]) -> None:
            reset_peak(pid)
            t0 = time.perf_counter()
            status = run()
            rows.append(
                {
                    "case": label,
                    "status": status,
                    "seconds": round(time.perf_counter() - t0, 1),
                    "peak": round(peak_rss(pid) / MIB),
                    "after": round((rss_bytes(pid) or 0) / MIB),
                }
            )

        case("small cut-out", lambda: str(post(base, "cutout", args.image)[0]))
        for key, endpoint in [
            ("bits", "cutout"),
            ("photo", "cutout"),
            ("photo", "saliency"),
            ("20mp", "cutout"),
        ]:
            path = images[key]
            label = f"{endpoint} {path.name} ({path.stat().st_size / 1e6:.2f} MB)"
            case(label, lambda p=path, e=endpoint: str(post(base, e, p)[0]))

        def concurrent(key: str, n: int) -> str:
            with ThreadPoolExecutor(n) as pool:
                done = list(pool.map(lambda _: post(base, "cutout", images[key]), range(n)))
            return " ".join(str(s) for s, _ in sorted(done))

        # The large-image queue: the second request waits for the slot (issue #22).
        case("2 concurrent cut-outs of the 20 MP JPEG", lambda: concurrent("20mp", 2))
        case("4 concurrent cut-outs of the 39.7 MP PNG", lambda: concurrent("bits", 4))

        def small_during_big() -> str:
            with ThreadPoolExecutor(1) as pool:
                big = pool.submit(post, base, "cutout", images["bits"])
                time.sleep(1.0)
                status, seconds = post(base, "cutout", args.image)
                big_status, big_s = big.result()
            return f"small {status} in {seconds * 1000:.0f} ms; big {big_status} in {big_s:.1f} s"

        case("small cut-out while a 39.7 MP cut-out runs", small_during_big)
    columns = {
        "case": "case",
        "status": "status",
        "seconds": "seconds",
        "peak": "peak RSS MiB",
        "after": "RSS after MiB",
    }
    intro = f"`sod100k serve --model {args.model}`, peak resident memory per case."
    write(args, meta, "memory", rows, harness.markdown_table(columns, rows), intro)
    return 0


# ---------------------------------------------------------------- soak


@dataclass(frozen=True)
class Kind:
    name: str
    weight: float
    method: str
    path: str
    #: ``(filename, bytes)`` of the upload, or ``None`` for no file field.
    upload: tuple[str, bytes] | None
    expected: frozenset[int]
    field: str = "file"


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def traffic(image: Path, max_upload_mb: float) -> list[Kind]:
    """The request mix: kind, weight, and the statuses a correct server answers."""
    good = (image.name, image.read_bytes())
    truncated = _png(Image.new("RGB", (300, 200), (10, 200, 90)))
    big = np.zeros((4000, 5000), bool)
    big[1000:3000, 1500:3500] = True
    rng = np.random.default_rng(0)
    oversized = rng.integers(0, 255, int(max_upload_mb * 2**20) + 4096, dtype=np.uint8)
    ok = frozenset({200})
    return [
        Kind("saliency", 40, "POST", "/v1/saliency", good, ok),
        Kind("cutout", 28, "POST", "/v1/cutout", good, ok),
        Kind(
            "cutout 20 MP",
            2,
            "POST",
            "/v1/cutout",
            ("big.png", _png(Image.fromarray(big))),
            frozenset({200, 503}),
        ),
        Kind(
            "not an image", 4, "POST", "/v1/saliency", ("a.jpg", b"hello " * 50), frozenset({415})
        ),
        Kind(
            "truncated",
            4,
            "POST",
            "/v1/cutout",
            ("t.png", truncated[: len(truncated) // 2]),
            frozenset({400}),
        ),
        Kind("empty", 3, "POST", "/v1/saliency", ("e.png", b""), frozenset({400})),
        Kind("no file field", 3, "POST", "/v1/saliency", good, frozenset({422}), field="image"),
        Kind("bad threshold", 3, "POST", "/v1/cutout?threshold=999", good, frozenset({422})),
        Kind(
            "oversized", 3, "POST", "/v1/saliency", ("o.bin", oversized.tobytes()), frozenset({413})
        ),
        Kind("not found", 3, "GET", "/v2/nothing", None, frozenset({404})),
        Kind("wrong method", 3, "GET", "/v1/cutout", None, frozenset({405})),
        Kind("healthz", 4, "HEAD", "/healthz", None, ok),
    ]


def sample_rss(pid: int, stop: threading.Event, out: list[tuple[float, int]]) -> None:
    t0 = time.monotonic()
    while not stop.is_set():
        rss = rss_bytes(pid)
        if rss is not None:
            out.append((time.monotonic() - t0, rss))
        stop.wait(1.0)


async def send_mix(
    base: str, kinds: list[Kind], seconds: float, concurrency: int, timeout: float, seed: int
) -> tuple[dict[str, list[float]], list[str]]:
    latencies: dict[str, list[float]] = {k.name: [] for k in kinds}
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    weights = [k.weight for k in kinds]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client(rng: random.Random, http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            kind = rng.choices(kinds, weights)[0]
            files = {kind.field: kind.upload} if kind.upload else None
            t0 = time.perf_counter()
            try:
                r = await http.request(kind.method, base + kind.path, files=files)
                status = r.status_code
            except httpx.HTTPError as e:
                errors.append(f"{kind.name}: {type(e).__name__}")
                continue
            if status not in kind.expected:
                errors.append(f"{kind.name}: HTTP {status}")
                continue
            if status >= 400 and kind.method != "HEAD" and "error" not in r.json():
                errors.append(f"{kind.name}: HTTP {status} without an error field")
                continue
            latencies[kind.name].append(time.perf_counter() - t0)

    async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:
        await asyncio.gather(*(client(random.Random(seed + i), http) for i in range(concurrency)))
    return latencies, errors


def soak(args: argparse.Namespace, meta: dict) -> int:
    kinds = traffic(args.image, args.max_upload_mb)
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    with running_server(args, "--max-upload-mb", str(args.max_upload_mb)) as (base, pid):
        sampler = threading.Thread(target=sample_rss, args=(pid, stop, samples))
        sampler.start()
        started = time.monotonic()
        try:
            latencies, errors = asyncio.run(
                send_mix(base, kinds, args.minutes * 60, args.concurrency, args.timeout, args.seed)
            )
        finally:
            stop.set()
            sampler.join()
        elapsed = time.monotonic() - started
    rows = []
    for kind in kinds:
        p50, p90, p99, top = percentiles(latencies[kind.name], [50, 90, 99, 100])
        rows.append(
            {
                "kind": kind.name,
                "ok": len(latencies[kind.name]),
                "p50": p50,
                "p90": p90,
                "p99": p99,
                "max": top,
            }
        )
    total = sum(len(v) for v in latencies.values()) + len(errors)
    intro = (
        f"{total} requests in {elapsed:.0f} s ({total / elapsed:.1f}/s), concurrency "
        f"{args.concurrency}, unexpected answers: {len(errors)}."
    )
    notes = []
    if errors:
        counts: dict[str, int] = {}
        for e in errors:
            counts[e] = counts.get(e, 0) + 1
        notes.append("Unexpected: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())))
    if samples:
        rss = np.asarray([r for _, r in samples]) / MIB
        notes.append(
            f"Server RSS (MiB): start {rss[0]:.0f}, min {rss.min():.0f}, "
            f"max {rss.max():.0f}, end {rss[-1]:.0f}."
        )
        step = max(1, len(samples) // 12)
        picked = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
        curve = [{"t": round(t), "rss": round(r / MIB)} for t, r in picked]
        notes.append(harness.markdown_table({"t": "t s", "rss": "RSS MiB"}, curve))
    columns = {
        "kind": "kind",
        "ok": "answered as expected",
        "p50": "p50 ms",
        "p90": "p90 ms",
        "p99": "p99 ms",
        "max": "max ms",
    }
    table = harness.markdown_table(columns, rows)
    write(args, meta, "soak", rows, table, intro, "\n\n".join(notes), errors=errors)
    return 1 if errors else 0


# ---------------------------------------------------------------- main


def write(
    args: argparse.Namespace,
    meta: dict,
    mode: str,
    rows: list[dict],
    table: str,
    intro: str,
    notes: str = "",
    **extra: object,
) -> None:
    stem = f"serving-{mode}-{meta['machine']['cpu_class']}"
    meta = {**meta, **extra}
    harness.write_results(args.out, stem, meta, rows, table, intro=intro, notes=notes)
    print(Path(args.out, f"{stem}.md").read_text())


def main() -> int:
    head, _, rest = __doc__.partition("\n")
    p = argparse.ArgumentParser(
        description=head, epilog=rest, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    modes = p.add_subparsers(dest="mode", required=True)
    subs = {
        name: modes.add_parser(name, help=help_)
        for name, help_ in [
            ("load", "requests/s and latency under a fixed number of uploads"),
            ("memory", "peak memory of the server on big images"),
            ("soak", "mixed good and bad traffic for N minutes"),
        ]
    }
    for sp in subs.values():
        harness.add_common_options(sp, weights="../shared/weights/csnet-L-x2", threads=None)
        sp.add_argument("--model", default="csnet-l-x2")
        sp.add_argument(
            "--image",
            type=Path,
            default=Path("../shared/data/ECSSD/images/0001.jpg"),
            help="a small photo",
        )
        sp.add_argument(
            "--server-arg", action="append", default=[], help="extra 'sod100k serve' argument"
        )
    sp = subs["load"]
    sp.add_argument("--endpoint", choices=["saliency", "cutout"], default="saliency")
    sp.add_argument("--requests", type=int, default=500)
    sp.add_argument("--concurrency", type=int, default=16)
    sp.add_argument("--warmup", type=int, default=16, help="requests sent before timing")
    sp.add_argument("--workers", type=int, default=None, help="server inference threads")
    sp.add_argument("--timeout", type=float, default=60.0, help="per-request timeout, s")
    sp = subs["soak"]
    sp.add_argument("--minutes", type=float, default=2.0)
    sp.add_argument("--concurrency", type=int, default=8)
    sp.add_argument("--timeout", type=float, default=120.0, help="per-request timeout, s")
    sp.add_argument("--max-upload-mb", type=float, default=20.0, help="the server's limit")
    sp.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.mode == "load" and (
        not 1 <= args.requests <= MAX_REQUESTS or not 1 <= args.concurrency <= 256
    ):
        p.error(f"--requests must be 1..{MAX_REQUESTS} and --concurrency 1..256")
    if args.mode == "soak" and (not 0 < args.minutes <= 60 or not 1 <= args.concurrency <= 64):
        p.error("--minutes must be in (0, 60] and --concurrency 1..64")
    meta = harness.start(f"serving {args.mode}", args.note)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one line per request
    return {"load": load, "memory": memory, "soak": soak}[args.mode](args, meta)


if __name__ == "__main__":
    sys.exit(main())
