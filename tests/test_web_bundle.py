"""The browser bundle (``sod100k export --web``) in headless Chromium, offline.

The bundle is exported once, served from 127.0.0.1 by ``sod100k.web.static_server``, and
every page may reach only this machine. Its maps and cut-outs are compared with what
``sod100k predict`` writes for the same 20 ECSSD images.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chromium import B64_JS, skip_without_browser
from sod100k.cli import main as cli
from sod100k.infer.cutout import alpha_matte
from sod100k.web.runtime import RuntimeMissingError, find_runtime
from sod100k.web.static_server import make_server

pytestmark = skip_without_browser()

N_IMAGES = 20
#: Tolerances of issue 23, in grey levels.
MEAN_TOL = 0.5
LEVELS_TOL = 2
SHARE_WITHIN = 0.999
READY = "document.getElementById('runtime').textContent.startsWith('Model')"
FAILED = "document.getElementById('status').className === 'error'"


@pytest.fixture(scope="module")
def images(ecssd) -> list[Path]:
    return sorted((ecssd / "images").glob("*.jpg"))[:N_IMAGES]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, weights_x2, images) -> Path:
    try:
        find_runtime()
    except RuntimeMissingError as e:
        if os.environ.get("CI"):
            pytest.fail(str(e))
        pytest.skip(str(e))
    out = tmp_path_factory.mktemp("bundle") / "web"
    assert cli(["export", "--web", str(out), "-m", "csnet-l-x2", "-w", str(weights_x2)]) == 0
    (out / "testdata").mkdir()
    for path in images:
        shutil.copyfile(path, out / "testdata" / path.name)
    return out


@pytest.fixture(scope="module")
def cli_outputs(tmp_path_factory, weights_x2, images) -> Path:
    """``sod100k predict``'s map, soft cut-out and ``--threshold 128`` cut-out per image."""
    root = tmp_path_factory.mktemp("cli")
    model = ["-m", "csnet-l-x2", "-w", str(weights_x2), "--quiet"]
    names = [str(p) for p in images]
    assert cli(["predict", *names, "-o", str(root / "mask"), *model]) == 0
    assert cli(["predict", *names, "-o", str(root / "soft"), "-f", "rgba", *model]) == 0
    hard = ["-f", "rgba", "--threshold", "128"]
    assert cli(["predict", *names, "-o", str(root / "hard"), *hard, *model]) == 0
    return root


def _serve(folder: Path, isolate: bool) -> Iterator[str]:
    server = make_server(folder, port=0, isolate=isolate)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def site(bundle) -> Iterator[str]:
    """The bundle with COOP/COEP: cross-origin isolated, multi-threaded."""
    yield from _serve(bundle, isolate=True)


@pytest.fixture(scope="module")
def plain_site(bundle) -> Iterator[str]:
    """The bundle from a server that sends no isolation headers."""
    yield from _serve(bundle, isolate=False)


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function(f"{READY} || {FAILED}", timeout=120_000)
    assert page.text_content("#status") == "", page.text_content("#status")


def test_bundle_loads_offline_and_multithreaded(page, site):
    _open(page, site)
    runtime = page.text_content("#runtime")
    assert page.evaluate("crossOriginIsolated") is True
    cores = page.evaluate("navigator.hardwareConcurrency")
    assert f"{min(4, cores)} thread" in runtime, runtime
    # the tidy empty state: a note, no results area, no image elements at all
    assert page.is_visible("#empty")
    assert not page.is_visible("#results")
    assert page.locator("img").count() == 0
    assert page.errors == []


def test_page_without_isolation_runs_on_one_thread(page, plain_site, images):
    _open(page, plain_site)
    assert page.evaluate("crossOriginIsolated") is False
    assert "1 thread " in page.text_content("#runtime")
    page.set_input_files("#file", str(images[0]))
    page.wait_for_function(
        f"document.getElementById('status').textContent.includes('done') || {FAILED}",
        timeout=60_000,
    )
    assert "done" in page.text_content("#status"), page.text_content("#status")


_RUN_ALL = (
    """async (names) => {
  const m = await import("./sod100k.js");
  const manifest = await (await fetch("model.json")).json();
  const seg = await m.load(manifest.onnx, manifest);
  """
    + B64_JS
    + """
  const alphaOf = (im) => im.data.filter((_, i) => i % 4 === 3);
  const out = [];
  for (const name of names) {
    const img = await m.decodeImage(await (await fetch("testdata/" + name)).blob(), name);
    const map = await seg.saliency(img);
    const soft = await seg.cutout(img, { saliency: map });
    const hard = await seg.cutout(img, { saliency: map, threshold: 128 });
    const png = new Uint8Array(await (await m.toPng(soft)).arrayBuffer());
    const first = name === names[0];
    const input = first ? m.preprocess(img, seg.size) : null;
    const logits = first ? await seg.logits(img) : null;
    out.push({
      name, width: map.width, height: map.height, map: b64(map.data),
      soft: b64(alphaOf(soft)), hard: b64(alphaOf(hard)),
      png: first ? b64(png) : null,
      input: first ? b64(new Uint8Array(input.buffer)) : null,
      logits: first ? b64(new Uint8Array(logits.buffer)) : null,
      fast: first ? b64(m.alphaMatte(img, map.data, { subsample: 3 })) : null,
    });
  }
  return out;
}"""
)


def _plane(text: str, height: int, width: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), np.uint8).reshape(height, width)


def _check_close(label: str, got: list[np.ndarray], want: list[np.ndarray]) -> None:
    diff = np.concatenate(
        [np.abs(g.astype(int) - w).ravel() for g, w in zip(got, want, strict=True)]
    )
    mean, within = diff.mean(), (diff <= LEVELS_TOL).mean()
    print(f"{label}: mean |diff| {mean:.4f}, {within:.5%} within {LEVELS_TOL}, max {diff.max()}")
    assert mean <= MEAN_TOL and within >= SHARE_WITHIN, (
        f"{label}: mean |diff| {mean:.4f} (<= {MEAN_TOL}), {within:.5%} within "
        f"{LEVELS_TOL} levels (>= {SHARE_WITHIN:.1%}), max {diff.max()}"
    )


def _floats(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), np.float32)


def _check_network(bundle: Path, image: Path, result: dict) -> None:
    """The module's network input equals Python's up to OpenCV's IPP rounding, and the
    WASM runtime's logits equal native ONNX Runtime's on that same input."""
    from sod100k.data.images import load_rgb
    from sod100k.infer.backends import OnnxBackend
    from sod100k.infer.preprocess import preprocess

    x = _floats(result["input"]).reshape(1, 3, 224, 224)
    input_diff = np.abs(x[0] - preprocess(load_rgb(image), 224)).max()
    native = OnnxBackend(bundle / "model.onnx", threads=1)(x)[0]
    logit_diff = np.abs(_floats(result["logits"]).reshape(224, 224) - native).max()
    print(f"network input max |diff| {input_diff:.2e}; WASM vs native logits {logit_diff:.2e}")
    assert input_diff < 1e-4 and logit_diff < 1e-4, (input_diff, logit_diff)


def test_maps_and_cutouts_match_the_cli(page, site, bundle, images, cli_outputs):
    _open(page, site)
    results = page.evaluate(_RUN_ALL, [p.name for p in images])
    maps, soft, hard, want_maps, want_soft, want_hard = [], [], [], [], [], []
    for r, path in zip(results, images, strict=True):
        h, w, stem = r["height"], r["width"], path.stem
        maps.append(_plane(r["map"], h, w))
        soft.append(_plane(r["soft"], h, w))
        hard.append(_plane(r["hard"], h, w))
        want_maps.append(np.asarray(Image.open(cli_outputs / "mask" / f"{stem}.png")))
        want_soft.append(np.asarray(Image.open(cli_outputs / "soft" / f"{stem}.png"))[..., 3])
        want_hard.append(np.asarray(Image.open(cli_outputs / "hard" / f"{stem}.png"))[..., 3])
    _check_close("saliency map", maps, want_maps)
    _check_close("soft cut-out alpha", soft, want_soft)
    _check_close("--threshold 128 cut-out alpha", hard, want_hard)
    assert {int(v) for a in hard for v in np.unique(a)} <= {0, 255}
    # The module's PNG holds the cut-out exactly: the image's colours and the alpha.
    first = results[0]
    _check_network(bundle, images[0], first)
    # The fast guided filter (camera frames, images over 2 MP), on the same map.
    rgb = np.asarray(Image.open(images[0]).convert("RGB"))
    want = alpha_matte(rgb, maps[0], subsample=3)
    fast = _plane(first["fast"], first["height"], first["width"])
    assert np.abs(fast.astype(int) - want).max() <= 1 and (fast == want).mean() >= 0.9999
    png = np.asarray(Image.open(io.BytesIO(base64.b64decode(first["png"]))))
    assert png.shape == (first["height"], first["width"], 4)
    np.testing.assert_array_equal(png[..., 3], soft[0])
    np.testing.assert_array_equal(png[..., :3], np.asarray(Image.open(images[0]).convert("RGB")))


def test_live_camera_runs_and_reports_fps(page, site):
    _open(page, site)
    page.click("#camera-start")
    page.wait_for_function(
        "/[0-9.]+ fps/.test(document.getElementById('fps').textContent)", timeout=60_000
    )
    fps = float(re.search(r"([0-9.]+) fps", page.text_content("#fps")).group(1))
    assert fps > 0
    # the composite shows the background colour somewhere and the camera elsewhere
    colours = page.evaluate(
        """() => {
      const c = document.getElementById('live-canvas');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      const seen = new Set();
      for (let i = 0; i < d.length; i += 4 * 97) seen.add(d[i] + ',' + d[i + 1] + ',' + d[i + 2]);
      return [c.width, c.height, seen.size];
    }"""
    )
    assert colours[0] > 0 and colours[1] > 0 and colours[2] > 10, colours
    page.click("#camera-stop")
    assert page.is_visible("#camera-start")
    assert page.errors == []


def test_corrupt_image_shows_an_error_and_the_page_keeps_working(page, site, images, tmp_path):
    _open(page, site)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(images[0].read_bytes()[:300])  # a JPEG header and no picture
    page.set_input_files("#file", str(bad))
    page.wait_for_function(FAILED, timeout=60_000)
    status = page.text_content("#status")
    assert status.count("broken.jpg") == 1 and "cannot decode" in status, status
    assert page.is_visible("#status") and page.is_visible("#empty")
    page.set_input_files("#file", str(images[1]))
    page.wait_for_function(
        "document.getElementById('status').textContent.includes('done')", timeout=60_000
    )
    assert page.is_visible("#results") and not page.is_visible("#empty")
    sizes = page.evaluate(
        "['input-canvas', 'map-canvas', 'cutout-canvas'].map(id => "
        "[document.getElementById(id).width, document.getElementById(id).height])"
    )
    w, h = Image.open(images[1]).size
    assert sizes == [[w, h]] * 3
    links = page.evaluate(
        "['map-download', 'cutout-download'].map(id => document.getElementById(id).download)"
    )
    assert links == [f"{images[1].stem}_saliency.png", f"{images[1].stem}_cutout.png"]
