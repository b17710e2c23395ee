"""The web page in headless Chromium against a live server on 127.0.0.1."""

from __future__ import annotations

import base64
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from cdp import Browser, find_chromium
from sod100k.infer.predictor import Predictor
from sod100k.infer.runtime import make_backend
from sod100k.server import ServerSettings, create_app

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = find_chromium()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (scripts/install.sh --dev installs it)"
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(weights_x2):
    predictor = Predictor(make_backend("torch", "csnet-l-x2", str(weights_x2)))
    app = create_app(predictor, ServerSettings(workers=2))
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


def test_page_shows_image_map_and_cutout(live_server, ecssd, tmp_path):
    image = sorted((ecssd / "images").glob("*.jpg"))[0]
    browser = Browser(CHROMIUM, tmp_path / "profile")
    try:
        _open_and_choose(browser, live_server, image)
        loaded = (
            "['input-img', 'map-img', 'cutout-img'].every(id => {"
            " const im = document.getElementById(id);"
            " return im.complete && im.naturalWidth > 0; })"
        )
        browser.wait_for(loaded, timeout=60)
        sizes = browser.evaluate(
            "['input-img', 'map-img', 'cutout-img'].map(id => "
            "[document.getElementById(id).naturalWidth, "
            "document.getElementById(id).naturalHeight])"
        )
        status = browser.evaluate("document.getElementById('status').textContent")
        links = browser.evaluate(
            "['map-download', 'cutout-download'].map(id => !document.getElementById(id).hidden)"
        )
        shot = browser.send("Page.captureScreenshot", {"format": "png"})
    finally:
        browser.close()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "browser-page.png").write_bytes(base64.b64decode(shot["data"]))
    assert sizes[0] == sizes[1] == sizes[2], sizes
    assert "done" in status, status
    assert links == [True, True]


def _open_and_choose(browser: Browser, url: str, path: Path) -> None:
    """Open the page and pick ``path`` in its file input, as a user would."""
    browser.open(url)
    browser.wait_for("document.getElementById('file') !== null")
    found = browser.send("Runtime.evaluate", {"expression": "document.getElementById('file')"})
    browser.send(
        "DOM.setFileInputFiles", {"files": [str(path)], "objectId": found["result"]["objectId"]}
    )


def _upload(live_server: str, path: Path, profile: Path, until: str) -> dict:
    browser = Browser(CHROMIUM, profile)
    try:
        _open_and_choose(browser, live_server, path)
        browser.wait_for(until, timeout=60)
        return {
            "input": browser.evaluate(
                "[document.getElementById('input-img').naturalWidth,"
                " document.getElementById('input-img').naturalHeight]"
            ),
            "status": browser.evaluate("document.getElementById('status').textContent"),
        }
    finally:
        browser.close()


def test_tiff_upload_gets_a_preview_and_errors_name_the_file_once(live_server, tmp_path):
    from PIL import Image

    tiff = tmp_path / "scan.tif"
    Image.new("RGB", (90, 60), (200, 40, 40)).save(tiff)  # browsers cannot show TIFF
    shown = _upload(
        live_server,
        tiff,
        tmp_path / "p1",
        "document.getElementById('status').textContent.includes('done')"
        " && document.getElementById('input-img').naturalWidth > 0",
    )
    assert shown["input"] == [90, 60]
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image at all\n" * 10)
    failed = _upload(
        live_server,
        bad,
        tmp_path / "p2",
        "document.getElementById('status').className === 'error'",
    )
    assert failed["status"].count("notes.jpg") == 1, failed["status"]
    assert "not an image" in failed["status"]
