"""The served web page in headless Chromium (Playwright) against a live server on 127.0.0.1.

The page runs the model in the browser by default (onnxruntime-web, the server's own
model under ``/web/``) and on the server when asked or when the runtime cannot load.
"""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image

from chromium import B64_JS, skip_without_browser
from sod100k.cli.serve import browser_model
from sod100k.infer.predictor import Predictor
from sod100k.infer.runtime import make_backend
from sod100k.server import ServerSettings, create_app
from sod100k.server.web import add_browser_routes
from sod100k.web.runtime import RuntimeMissingError, find_runtime

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
STATUS = "document.getElementById('status')"
SETTLED = f"{STATUS}.textContent.includes('done') || {STATUS}.className === 'error'"
MODE_KNOWN = "!document.getElementById('mode-note').textContent.startsWith('Loading')"

pytestmark = skip_without_browser()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(weights_x2):
    predictor = Predictor(make_backend("torch", "csnet-l-x2", str(weights_x2)))
    app = create_app(predictor, ServerSettings(workers=2))
    model = browser_model("csnet-l-x2", str(weights_x2))
    add_browser_routes(app, model, "csnet-l-x2", predictor.size, predictor.quantization)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def runtime_installed() -> bool:
    try:
        find_runtime()
    except RuntimeMissingError:
        return False
    return True


def _open(page, url: str, mode: str | None = None) -> None:
    page.goto(url)
    page.wait_for_function(MODE_KNOWN, timeout=120_000)
    if mode is not None:
        page.check(f"#mode-{mode}")


def _choose(page, path: Path) -> str:
    page.set_input_files("#file", str(path))
    page.wait_for_function(SETTLED, timeout=60_000)
    return page.text_content("#status")


def _img_bytes(page, img_id: str) -> bytes:
    data = page.evaluate(
        f"""async (id) => {{
      {B64_JS}
      const blob = await (await fetch(document.getElementById(id).src)).blob();
      return b64(new Uint8Array(await blob.arrayBuffer()));
    }}""",
        img_id,
    )
    return base64.b64decode(data)


def test_page_headers_and_empty_state(page, live_server, runtime_installed):
    headers = httpx.get(live_server).headers
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert headers["cross-origin-embedder-policy"] == "require-corp"
    assert "cross-origin-embedder-policy" not in httpx.get(live_server + "healthz").headers
    for asset in ("web/sod100k.js", "web/model.json"):  # HEAD as GET, without the body
        got, head = httpx.get(live_server + asset), httpx.head(live_server + asset)
        assert head.status_code == got.status_code == 200 and head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers["cross-origin-resource-policy"] == "same-origin"
    _open(page, live_server)
    assert page.evaluate("crossOriginIsolated") is True
    # Before the first upload: a note, and no image element shown (no broken icons).
    assert page.is_visible("#empty")
    assert not page.is_visible("#results")
    assert page.evaluate("[...document.images].filter(im => im.checkVisibility()).length") == 0
    # In-browser by default wherever the runtime loads.
    assert page.is_checked("#mode-browser") is runtime_installed
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-page-empty.png"))


def test_browser_mode_gives_the_servers_map(page, live_server, ecssd, runtime_installed):
    if not runtime_installed:
        pytest.skip("onnxruntime-web is not installed (npm ci --prefix web)")
    image = sorted((ecssd / "images").glob("*.jpg"))[0]
    _open(page, live_server)
    status = _choose(page, image)
    assert "done" in status and "in this browser" in status, status
    local = np.asarray(Image.open(io.BytesIO(_img_bytes(page, "map-img"))))
    served = httpx.post(
        live_server + "v1/saliency", files={"file": (image.name, image.read_bytes())}
    )
    remote = np.asarray(Image.open(io.BytesIO(served.content)))
    assert local.shape == remote.shape
    diff = np.abs(local.astype(int) - remote)
    assert diff.mean() <= 0.5 and (diff <= 2).mean() >= 0.999, (diff.mean(), diff.max())
    assert page.errors == []


def test_page_falls_back_to_the_server_without_the_runtime(page, live_server, ecssd):
    page.route("**/web/ort/**", lambda route: route.fulfill(status=404, body="missing"))
    _open(page, live_server)
    assert page.is_disabled("#mode-browser") and page.is_checked("#mode-server")
    assert "did not load" in page.text_content("#mode-note")
    status = _choose(page, sorted((ecssd / "images").glob("*.jpg"))[0])
    assert "done" in status and "on the server" in status, status


def test_server_mode_shows_image_map_and_cutout(page, live_server, ecssd):
    image = sorted((ecssd / "images").glob("*.jpg"))[0]
    _open(page, live_server, mode="server")
    status = _choose(page, image)
    loaded = (
        "['input-img', 'map-img', 'cutout-img'].every(id => {"
        " const im = document.getElementById(id);"
        " return im.complete && im.naturalWidth > 0; })"
    )
    page.wait_for_function(loaded, timeout=60_000)
    sizes = page.evaluate(
        "['input-img', 'map-img', 'cutout-img'].map(id => "
        "[document.getElementById(id).naturalWidth, document.getElementById(id).naturalHeight])"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-page.png"))
    assert sizes[0] == sizes[1] == sizes[2], sizes
    assert "done" in status and "on the server" in status, status
    assert page.is_visible("#map-download") and page.is_visible("#cutout-download")


def test_tiff_upload_gets_a_preview_and_errors_name_the_file_once(page, live_server, tmp_path):
    tiff = tmp_path / "scan.tif"
    Image.new("RGB", (90, 60), (200, 40, 40)).save(tiff)  # browsers cannot show TIFF
    _open(page, live_server, mode="server")
    assert "done" in _choose(page, tiff)
    page.wait_for_function("document.getElementById('input-img').naturalWidth > 0")
    assert page.evaluate(
        "[document.getElementById('input-img').naturalWidth,"
        " document.getElementById('input-img').naturalHeight]"
    ) == [90, 60]
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image at all\n" * 10)
    failed = _choose(page, bad)
    assert failed.count("notes.jpg") == 1, failed
    assert "not an image" in failed
