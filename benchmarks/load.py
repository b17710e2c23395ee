"""Load test of ``sod100k serve``: requests/s, p50/p99 latency and errors.

Starts the server itself on 127.0.0.1 (a free port), sends ``--requests`` uploads of one
image with ``--concurrency`` requests in flight, then stops the server. Loopback only and
bounded (at most 10,000 requests, a per-request timeout), so it cannot be aimed elsewhere
or run away. Example::

    python benchmarks/load.py --weights ../shared/weights/csnet-L-x2 \\
        --image ../shared/data/ECSSD/images/0001.jpg --requests 500 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

MAX_REQUESTS = 10_000
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen:
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [
        sys.executable,
        "-m",
        "sod100k",
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--model",
        args.model,
        "--weights",
        args.weights,
    ]
    if args.workers:
        command += ["--workers", str(args.workers)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


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


async def load(
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="csnet-l-x2")
    p.add_argument("--weights", required=True)
    p.add_argument("--image", required=True, type=Path)
    p.add_argument("--endpoint", choices=["saliency", "cutout"], default="saliency")
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--warmup", type=int, default=16, help="requests sent before timing")
    p.add_argument("--workers", type=int, default=None, help="server inference threads")
    p.add_argument("--timeout", type=float, default=60.0, help="per-request timeout, s")
    args = p.parse_args()
    if not 1 <= args.requests <= MAX_REQUESTS or not 1 <= args.concurrency <= 256:
        p.error(f"--requests must be 1..{MAX_REQUESTS} and --concurrency 1..256")
    data = args.image.read_bytes()
    port = free_port()
    base = f"http://{HOST}:{port}"
    server = start_server(args, port)
    try:
        wait_healthy(base, server)
        url = f"{base}/v1/{args.endpoint}"
        asyncio.run(load(url, data, args.image.name, args.warmup, args.concurrency, args.timeout))
        latencies, errors, elapsed = asyncio.run(
            load(url, data, args.image.name, args.requests, args.concurrency, args.timeout)
        )
    finally:
        server.terminate()
        server.wait(30)
    ms = np.asarray(latencies) * 1000.0
    p50, p99 = np.percentile(ms, [50, 99]) if len(ms) else (float("nan"),) * 2
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"# {stamp}, {platform.machine()} {os.cpu_count()} cores, python "
        f"{platform.python_version()}, image {args.image.name} ({len(data)} bytes)"
    )
    print(f"# {' '.join(sys.argv)}")
    print("| endpoint | requests | concurrency | requests/s | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(
        f"| /v1/{args.endpoint} | {args.requests} | {args.concurrency} | "
        f"{len(latencies) / elapsed:.1f} | {p50:.0f} | {p99:.0f} | {len(errors)} |"
    )
    if errors:
        print(f"# errors: {sorted(set(errors))}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
