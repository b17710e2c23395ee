"""The Ray entry points on a two-node cluster on this machine (``ray.cluster_utils.Cluster``).

Two nodes of one CPU each, started here and shut down at the end of the module:
``predict --ray`` spreads its actors over both, the Ray Data entry point runs beside its
read tasks, and ``sod100k serve --ray`` (a real process joining the cluster) answers real
HTTP requests on 127.0.0.1 with the local server's routes, bytes and error shape.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
httpx = pytest.importorskip("httpx")

from sod100k.cli import main  # noqa: E402

pytestmark = pytest.mark.timeout(400)

HOST = "127.0.0.1"
STEMS = ("0001", "0002", "0557", "0010")


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    nodes = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    ray.init(address=nodes.address, log_to_driver=False)
    yield nodes
    ray.shutdown()
    nodes.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory, ecssd) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for stem in STEMS:
        shutil.copy(ecssd / "images" / f"{stem}.jpg", root)
    return root


@pytest.fixture(scope="module")
def local_masks(photos, weights_x2, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "masks"
    assert main(["predict", str(photos), "-o", str(out), "-w", str(weights_x2), "-q"]) == 0
    return out


def test_predict_spreads_actors_over_both_nodes(
    cluster, photos, weights_x2, local_masks, tmp_path, capsys
):
    out = tmp_path / "ray"
    code = main(["predict", str(photos), "-o", str(out), "-w", str(weights_x2), "--ray"])
    err = capsys.readouterr().err
    assert code == 0
    assert "2 actor(s) of 1 CPU(s)" in err  # one per node: an actor cannot span nodes
    for mask in local_masks.iterdir():
        assert (out / mask.name).read_bytes() == mask.read_bytes()


def test_entry_point_on_two_nodes(cluster, photos, weights_x2, local_masks):
    from sod100k.distributed.cluster import pool_size
    from sod100k.distributed.model import ModelSpec
    from sod100k.distributed.predictor import SaliencyPredictor

    size = pool_size(cpus_per_actor=1, reserve_cpus=1)  # one node's CPU stays for reads
    assert size == 1
    ds = ray.data.read_binary_files(str(photos), include_paths=True)
    ds = ds.map_batches(
        SaliencyPredictor,
        fn_constructor_kwargs={"spec": ModelSpec.load(weights=str(weights_x2))},
        compute=ray.data.ActorPoolStrategy(size=size),
        num_cpus=1,
        batch_size=2,
    )
    import cv2

    for row in ds.take_all():
        expected = cv2.imread(str(local_masks / f"{Path(row['path']).stem}.png"), 0)
        assert row["error"] == "" and (row["mask"] == expected).all()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def test_serve_on_ray_answers_like_the_local_server(cluster, photos, weights_x2, local_masks):
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "sod100k",
        "serve",
        "--ray",
        cluster.address,
        "--host",
        HOST,
        "--port",
        str(port),
        "-w",
        str(weights_x2),
        "--replicas",
        "2",
        "--max-upload-mb",
        "1",
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stderr.read().decode()[-3000:]
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        else:
            raise TimeoutError("serve --ray did not become healthy")
        from ray import serve

        while time.monotonic() < deadline:  # both replicas, one on each node's CPU
            states = serve.status().applications["sod100k"].deployments["sod100k"]
            if states.replica_states.get("RUNNING") == 2:
                break
            time.sleep(0.5)
        else:
            raise TimeoutError(f"two replicas did not start: {states.replica_states}")
        photo = photos / "0001.jpg"
        r = httpx.post(
            base + "/v1/saliency", files={"file": (photo.name, photo.read_bytes())}, timeout=60
        )
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        import cv2
        import numpy as np

        got = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_UNCHANGED)
        assert (got == cv2.imread(str(local_masks / "0001.png"), 0)).all()
        r = httpx.post(base + "/v1/cutout", files={"file": ("x.jpg", b"not an image")}, timeout=60)
        assert r.status_code == 415 and r.json() == {
            "error": "x.jpg: not an image file (unrecognised format)"
        }
        r = httpx.post(
            base + "/v1/cutout", files={"file": ("big.jpg", b"\0" * 1_200_000)}, timeout=60
        )
        assert r.status_code == 413 and "upload too large" in r.json()["error"]
        r = httpx.get(base + "/nowhere", timeout=60)
        assert r.status_code == 404 and r.json() == {"error": "/nowhere: not found"}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
    assert server.returncode == 0
    assert "sod100k" not in serve.status().applications  # deleted when the command stopped
