"""HTTP API with FastAPI's test client: endpoints, limits and the bad-input corpus."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from badinputs import corpus
from sod100k.infer.batch import encode_png
from sod100k.infer.predictor import Predictor
from sod100k.infer.runtime import make_backend
from sod100k.server import ServerSettings, create_app


@pytest.fixture(scope="module")
def predictor(weights_x2) -> Predictor:
    return Predictor(make_backend("torch", "csnet-l-x2", str(weights_x2)))


@pytest.fixture(scope="module")
def client(predictor):
    settings = ServerSettings(max_upload_bytes=2_000_000, max_pixels=4_000_000, workers=2)
    with TestClient(create_app(predictor, settings)) as c:
        yield c


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def _post(client, path: str, name: str, data: bytes, **params):
    return client.post(
        path, files={"file": (name, data, "application/octet-stream")}, params=params
    )


def test_healthz_docs_and_page(client):
    assert client.get("/healthz").json()["status"] == "ok"
    schema = client.get("/openapi.json").json()
    assert {"/v1/saliency", "/v1/cutout", "/healthz"} <= set(schema["paths"])
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="cutout-download"' in page.text


def test_saliency_and_cutout_match_the_python_api(client, predictor, ecssd):
    path = sorted((ecssd / "images").glob("*.jpg"))[0]
    data = path.read_bytes()
    r = _post(client, "/v1/saliency", path.name, data)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    sal = np.asarray(Image.open(io.BytesIO(r.content)))
    np.testing.assert_array_equal(sal, predictor(data))
    assert r.content == encode_png(sal)  # the file sod100k predict writes, byte for byte
    r = _post(client, "/v1/cutout", path.name, data)
    cut = Image.open(io.BytesIO(r.content))
    assert r.status_code == 200 and cut.mode == "RGBA" and cut.size == Image.open(path).size
    hard = _post(client, "/v1/cutout", path.name, data, threshold=128)
    assert set(np.unique(np.asarray(Image.open(io.BytesIO(hard.content)))[..., 3])) <= {0, 255}
    assert _post(client, "/v1/cutout", path.name, data, threshold=999).status_code == 422


@pytest.mark.parametrize("case", corpus(), ids=lambda c: c.name)
def test_bad_input_corpus_gets_4xx_and_server_stays_up(client, case):
    r = _post(client, "/v1/saliency", case.name, case.data)
    if case.map_size is None:
        assert 400 <= r.status_code < 500
        assert case.name in r.json()["error"]
    else:
        assert r.status_code == 200
        # EXIF orientation is honoured: the map has the displayed (rotated) size.
        assert np.asarray(Image.open(io.BytesIO(r.content))).shape == case.map_size
    assert client.get("/healthz").status_code == 200


def test_status_codes_for_each_kind_of_bad_input(client):
    by_name = {c.name: c.data for c in corpus()}
    assert _post(client, "/v1/cutout", "t.jpg", by_name["text_renamed.jpg"]).status_code == 415
    assert _post(client, "/v1/cutout", "z.jpg", b"").status_code == 400
    assert _post(client, "/v1/cutout", "t.png", by_name["truncated.png"]).status_code == 400
    assert _post(client, "/v1/cutout", "b.png", by_name["bomb.png"]).status_code == 413


def test_upload_and_pixel_limits(client):
    too_many_pixels = _png(Image.new("L", (2500, 2000)))  # 5 MP > 4 MP, small file
    r = _post(client, "/v1/saliency", "big.png", too_many_pixels)
    assert r.status_code == 413 and "too large" in r.json()["error"]
    noise = np.random.default_rng(0).integers(0, 255, (1000, 1000, 3), dtype=np.uint8)
    too_many_bytes = _png(Image.fromarray(noise))  # ~3 MB > 2 MB
    r = _post(client, "/v1/saliency", "noise.png", too_many_bytes)
    assert r.status_code == 413 and "upload too large" in r.json()["error"]
    assert client.post("/v1/saliency").status_code == 422  # no file field
    assert client.get("/healthz").status_code == 200


def test_every_error_has_the_same_json_shape(client):
    def check(r, status):
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]
        return body["error"]

    assert "file" in check(client.post("/v1/saliency"), 422)  # no file field
    r = client.post("/v1/cutout", files={"image": ("x.png", _png(Image.new("L", (8, 8))))})
    assert "file" in check(r, 422)  # wrong field name
    r = _post(client, "/v1/cutout", "x.png", _png(Image.new("L", (8, 8))), threshold="abc")
    assert "threshold" in check(r, 422)
    r = _post(client, "/v1/cutout", "x.png", _png(Image.new("L", (8, 8))), refine="maybe")
    assert "refine" in check(r, 422)
    broken = client.post(
        "/v1/saliency",
        content=b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a\r\n',
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    assert broken.status_code in (400, 422)
    check(broken, broken.status_code)
    assert "/nope" in check(client.get("/nope"), 404)
    r = client.get("/v1/saliency")
    assert "method not allowed" in check(r, 405) and "POST" in r.headers["allow"]
    check(client.delete("/healthz"), 405)


def test_head_healthz_favicon_and_page_fixes(client):
    head = client.head("/healthz")
    assert head.status_code == 200 and head.content == b""
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    assert Image.open(io.BytesIO(icon.content)).format == "ICO"
    page = client.get("/").text
    assert 'href="favicon.ico"' in page and "v1/preview" in page
    assert 'say(file.name + ": " + e.message' not in page  # the name-twice error line


def test_preview_renders_tiff_and_16_bit_images_as_small_jpegs(client):
    buf = io.BytesIO()
    Image.new("RGB", (1200, 1500), (10, 120, 200)).save(buf, "TIFF", compression="tiff_lzw")
    r = _post(client, "/v1/preview", "scan.tif", buf.getvalue())
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size == (819, 1024)  # longest side 1024
    deep = Image.fromarray(np.full((40, 30), 40000, np.uint16))
    r = _post(client, "/v1/preview", "deep.png", _png(deep))
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (30, 40)
    truncated = {c.name: c.data for c in corpus()}["truncated.png"]
    r = _post(client, "/v1/preview", "t.png", truncated)
    assert r.status_code == 400 and r.json()["error"].startswith("t.png: ")


def test_large_images_wait_for_a_slot_then_get_503_when_the_wait_runs_out(predictor):
    settings = ServerSettings(
        max_pixels=4_000_000, large_pixels=100_000, large_slots=1, queue_size=1, queue_timeout=1.0
    )
    app = create_app(predictor, settings)
    big = _png(Image.new("RGB", (400, 300), (200, 30, 30)))  # 0.12 MP: large here
    small = _png(Image.new("RGB", (100, 100), (200, 30, 30)))
    with TestClient(app) as c:
        assert _post(c, "/v1/cutout", "big.png", big).status_code == 200
        assert app.state.admission.try_acquire()  # another big image holds the slot
        try:
            r = _post(c, "/v1/cutout", "big.png", big)  # waits 1 s in the queue, then 503
            assert r.status_code == 503 and r.headers["retry-after"] == "5"
            assert r.json()["error"].startswith("big.png: busy with large images")
            assert "no slot within 1 s" in r.json()["error"]
            assert _post(c, "/v1/cutout", "small.png", small).status_code == 200
            # the slot comes free while this one waits: it is served
            threading.Timer(0.3, app.state.admission.release).start()
            assert _post(c, "/v1/cutout", "big.png", big).status_code == 200
        finally:
            if app.state.admission.try_acquire():  # the timer's release went to the waiter
                app.state.admission.release()
        assert _post(c, "/v1/cutout", "big.png", big).status_code == 200
        assert app.state.admission.try_acquire()  # another big image holds the slot
        try:
            r = _post(c, "/v1/cutout", "big.png", big)
            assert r.status_code == 503 and r.headers["retry-after"] == "5"
            assert r.json()["error"].startswith("big.png: busy with large images")
            assert _post(c, "/v1/cutout", "small.png", small).status_code == 200
        finally:
            app.state.admission.release()
        assert _post(c, "/v1/cutout", "big.png", big).status_code == 200


@pytest.mark.parametrize(("workers", "large_slots"), [(1, 1), (2, 1)])
def test_serve_compiles_one_openvino_stream_per_request_thread(
    weights_x1, workers, large_slots
) -> None:
    """OpenVINO's thread count is the total its streams share: ``serve`` asks for one
    thread per stream, so concurrent requests run side by side instead of queueing in
    one stream. OpenVINO runs at most one stream per core."""
    import os

    from sod100k.cli import build_parser
    from sod100k.cli.serve import serving_backend
    from sod100k.infer.backends import concurrency

    argv = ["serve", "-w", str(weights_x1), "--backend", "openvino"]
    argv += ["--workers", str(workers), "--large-slots", str(large_slots)]
    backend, _, _ = serving_backend(build_parser("serve").parse_args(argv))
    shape = (1, 3, 64, 64)
    compiled = backend._compiled_for(shape)
    expected = min(workers + large_slots, os.cpu_count() or 1)
    assert int(compiled.get_property("NUM_STREAMS")) == expected
    assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == expected
    assert concurrency(backend, shape) == expected


def test_serve_names_its_model_without_the_server_s_paths(weights_x1) -> None:
    """Without --model, /healthz and the page name the weights' folder, not its path."""
    from sod100k.cli import build_parser
    from sod100k.cli.common import model_label
    from sod100k.cli.serve import serving_backend, settings_from_args

    args = build_parser("serve").parse_args(["serve", "-w", str(weights_x1)])
    _, model, weights = serving_backend(args)
    settings = settings_from_args(args, model_label(model, weights))
    assert settings.model_name == weights_x1.name
    assert str(weights_x1.parent) not in settings.model_name
    named = build_parser("serve").parse_args(["serve", "-w", str(weights_x1), "-m", "csnet-l-x1"])
    assert model_label(*serving_backend(named)[1:]) == "csnet-l-x1"
