"""``sod100k serve`` as a real process on 127.0.0.1: memory, slow and oversized clients,
connection cap and shutdown, which the in-process test client cannot show.

Every client here is bounded in count and time; the servers are killed at the end.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

HOST = "127.0.0.1"
GIB = 1024**3

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads peak RSS from /proc"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _start(weights: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    command = [sys.executable, "-m", "sod100k", "serve", "--host", HOST, "--port", str(port)]
    command += ["--model", "csnet-l-x2", "--weights", str(weights), *flags]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited: {server.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(base + "/healthz", timeout=1.0).status_code == 200:
                return server, base
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    server.kill()
    raise TimeoutError("server did not become healthy")


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.kill()
        server.wait(10)


def _peak_rss(server: subprocess.Popen) -> int:
    for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def live(weights_x2):
    server, base = _start(
        weights_x2,
        "--workers",
        "2",
        "--max-upload-mb",
        "2",
        "--header-timeout",
        "1",
        "--body-timeout",
        "2",
        "--max-connections",
        "12",
    )
    yield server, base
    _stop(server)


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def _read_response(sock: socket.socket, timeout: float) -> tuple[int, dict, float]:
    """Status and JSON body of the reply on ``sock``, and the seconds it took."""
    t0 = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), f"no HTTP response: {data[:200]!r}"
    return int(head.split()[1]), json.loads(body or b"{}"), time.monotonic() - t0


def _photo_png(w: int, h: int) -> bytes:
    bits = np.zeros((h, w), bool)
    bits[h // 6 : 5 * h // 6, w // 4 : 3 * w // 4] = True
    buf = io.BytesIO()
    Image.fromarray(bits).save(buf, "PNG")  # 1-bit: a few kB for 40 MP
    return buf.getvalue()


def test_two_concurrent_20_mp_cutouts_both_succeed_under_3_gib_and_small_requests_flow(live):
    server, base = live  # default settings: one large slot, the other request queues
    big = _photo_png(5164, 3873)  # 20 MP, a phone photo's size
    small = _photo_png(400, 300)

    def post(data: bytes, name: str) -> tuple[int, float, bytes]:
        t0 = time.monotonic()
        r = httpx.post(base + "/v1/cutout", files={"file": (name, data)}, timeout=300)
        return r.status_code, time.monotonic() - t0, r.content

    with ThreadPoolExecutor(2) as pool:
        bigs = [pool.submit(post, big, f"big{i}.png") for i in range(2)]
        time.sleep(1.0)
        small_status, small_s, _ = post(small, "small.png")
        results = [f.result() for f in bigs]
    assert [r[0] for r in results] == [200, 200]  # the second waited for the slot
    for _, _, png in results:
        assert Image.open(io.BytesIO(png)).size == (5164, 3873)
    assert small_status == 200
    assert small_s < max(r[1] for r in results)  # not queued behind the big images
    peak = _peak_rss(server)
    assert peak < 3 * GIB, f"peak RSS {peak / GIB:.2f} GiB"


def test_chunked_upload_is_cut_at_the_limit_while_it_streams(live):
    _, base = live
    head = (
        b"POST /v1/saliency HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
    )
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="huge.png"\r\n\r\n'
    chunk = b"%x\r\n%s\r\n" % (65536, b"\0" * 65536)
    sent = 0
    with socket.create_connection((HOST, _port(base)), timeout=10) as sock:
        sock.sendall(head + b"%x\r\n%s\r\n" % (len(part), part))
        try:
            while sent < 400 * 2**20:  # a 400 MB body, unless the server stops it
                sock.sendall(chunk)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
        except TimeoutError:  # the server stopped reading: its reply is waiting
            pass
        status, body, _ = _read_response(sock, 10)
    assert status == 413 and "upload too large" in body["error"]
    assert sent < 64 * 2**20, f"{sent / 2**20:.0f} MB went in before the 413"


def test_slow_body_and_half_sent_heads_time_out(live):
    _, base = live
    port = _port(base)
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/saliency HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
        )
        part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        t0 = time.monotonic()
        try:
            for i in range(20):  # one byte every 0.5 s: 10 s if never cut
                sock.sendall(part[i : i + 1])
                time.sleep(0.5)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, body, _ = _read_response(sock, 10)
        assert status == 408 and "body" in body["error"]
        assert time.monotonic() - t0 < 8
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(b"POST /v1/saliency HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        status, body, waited = _read_response(sock, 10)
        assert status == 408 and "head" in body["error"] and waited < 5
    assert httpx.get(base + "/healthz", timeout=5).status_code == 200


def test_connection_cap_and_idle_connections_are_closed(live):
    _, base = live
    port = _port(base)
    idle = [socket.create_connection((HOST, port), timeout=10) for _ in range(20)]
    try:
        refused = 0
        for sock in idle[12:]:
            status, body, _waited = _read_response(sock, 3)
            assert status == 503 and "too many connections" in body["error"]
            refused += 1
        assert refused == 8
        time.sleep(2.0)  # past the 1 s header timeout: the idle ones are closed
        r = httpx.get(base + "/healthz", timeout=5)
        assert r.status_code == 200
        for sock in idle[:12]:
            status, _, _ = _read_response(sock, 3)
            assert status == 408
    finally:
        for sock in idle:
            sock.close()


def test_sigterm_with_a_request_in_flight_exits_within_seconds(weights_x2):
    # Shutdown does not depend on the backend; eager torch starts fastest.
    server, base = _start(weights_x2, "--backend", "torch", "--shutdown-timeout", "2")
    try:
        big = _photo_png(6300, 6300)
        outcome: list = []

        def post() -> None:
            try:
                outcome.append(
                    httpx.post(base + "/v1/cutout", files={"file": ("b.png", big)}, timeout=60)
                )
            except httpx.HTTPError as e:
                outcome.append(e)

        client = threading.Thread(target=post)
        client.start()
        time.sleep(1.5)  # the cut-out is running
        t0 = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        server.wait(20)
        assert time.monotonic() - t0 < 10
        client.join(30)
        assert outcome  # answered or disconnected, never left hanging
    finally:
        _stop(server)
