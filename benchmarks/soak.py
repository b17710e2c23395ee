"""Soak test of ``sod100k serve``: mixed good and bad traffic for N minutes.

Starts the server itself on 127.0.0.1 (a free port) with its default settings (plus any
``--server-arg``), then keeps ``--concurrency`` clients sending a weighted mix of
requests until ``--minutes`` have passed: saliency maps and cut-outs of a real image,
every kind of bad request (not an image, truncated, empty, missing field, bad query
value, oversized upload, unknown path, wrong method) and a few 20 MP cut-outs that
must be admitted (200) or refused with 503 + Retry-After. Every answer is checked
against the status its kind must get; anything else, or a transport error, is an error.
The server's RSS is sampled every second.

Reports errors, latency percentiles per kind and the RSS curve, as Markdown, with the
date, CPU model and command. Loopback only and bounded (at most 60 minutes, 64 clients,
per-request timeout). Example::

    python benchmarks/soak.py --weights ../shared/weights/csnet-L-x2 \\
        --image ../shared/data/ECSSD/images/0001.jpg --minutes 5
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from harness import cpu_model
from load import wait_healthy  # benchmarks/load.py, beside this script

HOST = "127.0.0.1"


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def sample_rss(pid: int, stop: threading.Event, out: list[tuple[float, int]]) -> None:
    t0 = time.monotonic()
    while not stop.is_set():
        rss = rss_bytes(pid)
        if rss is not None:
            out.append((time.monotonic() - t0, rss))
        stop.wait(1.0)


async def soak(
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="csnet-l-x2")
    p.add_argument("--weights", required=True)
    p.add_argument("--image", required=True, type=Path, help="a good image (a photo)")
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--timeout", type=float, default=120.0, help="per-request timeout, s")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="the server's limit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--server-arg", action="append", default=[], help="extra 'sod100k serve' argument"
    )
    args = p.parse_args()
    if not 0 < args.minutes <= 60 or not 1 <= args.concurrency <= 64:
        p.error("--minutes must be in (0, 60] and --concurrency 1..64")
    kinds = traffic(args.image, args.max_upload_mb)
    port = free_port()
    base = f"http://{HOST}:{port}"
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-m", "sod100k", "serve", "--host", HOST, "--port", str(port)]
    command += ["--model", args.model, "--weights", args.weights]
    command += ["--max-upload-mb", str(args.max_upload_mb), *args.server_arg]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    try:
        wait_healthy(base, server)
        sampler = threading.Thread(target=sample_rss, args=(server.pid, stop, samples))
        sampler.start()
        started = time.monotonic()
        latencies, errors = asyncio.run(
            soak(base, kinds, args.minutes * 60, args.concurrency, args.timeout, args.seed)
        )
        elapsed = time.monotonic() - started
        stop.set()
        sampler.join()
    finally:
        stop.set()
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    report(args, kinds, latencies, errors, samples, elapsed)
    return 1 if errors else 0


def report(args, kinds, latencies, errors, samples, elapsed) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    total = sum(len(v) for v in latencies.values()) + len(errors)
    print(f"# {stamp}; {cpu_model()}, {os.cpu_count()} cores; python {sys.version.split()[0]}")
    print(f"# {' '.join(sys.argv)}")
    print(
        f"\n{total} requests in {elapsed:.0f} s ({total / elapsed:.1f}/s), "
        f"concurrency {args.concurrency}, unexpected answers: {len(errors)}\n"
    )
    print("| kind | answered as expected | p50 ms | p90 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind in kinds:
        ms = np.asarray(latencies[kind.name]) * 1000.0
        if len(ms):
            p50, p90, p99 = np.percentile(ms, [50, 90, 99])
            print(
                f"| {kind.name} | {len(ms)} | {p50:.0f} | {p90:.0f} | {p99:.0f} | {ms.max():.0f} |"
            )
        else:
            print(f"| {kind.name} | 0 | | | | |")
    if errors:
        counts: dict[str, int] = {}
        for e in errors:
            counts[e] = counts.get(e, 0) + 1
        print("\nunexpected: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())))
    if samples:
        rss = np.asarray([r for _, r in samples]) / 2**20
        print(
            f"\nserver RSS (MiB): start {rss[0]:.0f}, min {rss.min():.0f}, "
            f"max {rss.max():.0f}, end {rss[-1]:.0f}"
        )
        step = max(1, len(samples) // 12)
        print("\n| t s | RSS MiB |\n|---:|---:|")
        for t, r in samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else []):
            print(f"| {t:.0f} | {r / 2**20:.0f} |")


if __name__ == "__main__":
    sys.exit(main())
