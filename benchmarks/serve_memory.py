"""Peak memory of ``sod100k serve`` on big images, one case at a time.

Starts the server itself on 127.0.0.1 (a free port, default settings plus any
``--server-arg``), generates the images of issue #13 (a 1-bit 6300 x 6300 PNG of
4.9 kB, 39.7 MP; a 36 MP photo-like JPEG; a 20 MP PNG), then for each case resets the
server's peak-RSS counter (``/proc/PID/clear_refs``), sends the request(s) and reads
``VmHWM``: the peak resident memory of the whole server process during that case.
Also times a small cut-out sent while a 40 MP cut-out runs. Linux only; loopback only.

Example::

    python benchmarks/serve_memory.py --weights ../shared/weights/csnet-L-x2 \\
        --image ../shared/data/ECSSD/images/0001.jpg
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import cv2
import httpx
import numpy as np
from PIL import Image

from load import wait_healthy
from soak import HOST, cpu_model, free_port, rss_bytes

MIB = 2**20


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def make_images(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    bits = np.zeros((6300, 6300), bool)
    bits[1000:5000, 1500:4500] = True
    paths = {"bits": folder / "bits-6300x6300.png", "photo": folder / "photo-6928x5196.jpg"}
    Image.fromarray(bits).save(paths["bits"])
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="csnet-l-x2")
    p.add_argument("--weights", required=True)
    p.add_argument("--image", required=True, type=Path, help="a small photo")
    p.add_argument("--server-arg", action="append", default=[])
    args = p.parse_args()
    port = free_port()
    base = f"http://{HOST}:{port}"
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-m", "sod100k", "serve", "--host", HOST, "--port", str(port)]
    command += ["--model", args.model, "--weights", args.weights, *args.server_arg]
    rows: list[tuple[str, str, float, int, int]] = []
    with tempfile.TemporaryDirectory(prefix="sod100k-mem-") as tmp:
        images = make_images(Path(tmp))
        server = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_healthy(base, server)
            pid = server.pid
            rows.append(
                ("idle, after start-up and warm-up", "", 0.0, peak_rss(pid), rss_bytes(pid))
            )

            def case(label: str, run) -> None:
                reset_peak(pid)
                t0 = time.perf_counter()
                statuses = run()
                rows.append(
                    (label, statuses, time.perf_counter() - t0, peak_rss(pid), rss_bytes(pid))
                )

            small = args.image
            case("small cut-out", lambda: str(post(base, "cutout", small)[0]))
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
            case("2 concurrent cut-outs of the 20 MP photo", lambda: concurrent("20mp", 2))
            case("4 concurrent cut-outs of the 39.7 MP PNG", lambda: concurrent("bits", 4))

            def small_during_big() -> str:
                with ThreadPoolExecutor(1) as pool:
                    big = pool.submit(post, base, "cutout", images["bits"])
                    time.sleep(1.0)
                    status, seconds = post(base, "cutout", small)
                    big_status, big_s = big.result()
                return (
                    f"small {status} in {seconds * 1000:.0f} ms; big {big_status} in {big_s:.1f} s"
                )

            case("small cut-out while a 39.7 MP cut-out runs", small_during_big)
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# {stamp}; {cpu_model()}, {os.cpu_count()} cores; python {sys.version.split()[0]}")
    print(f"# {' '.join(sys.argv)}")
    print("\n| case | status | seconds | peak RSS MiB | RSS after MiB |")
    print("|---|---|---:|---:|---:|")
    for label, status, seconds, peak, after in rows:
        print(f"| {label} | {status} | {seconds:.1f} | {peak / MIB:.0f} | {after / MIB:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
