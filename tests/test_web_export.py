"""``sod100k export --web`` without a browser: the runtime lookup, the layout, the server."""

from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path

import pytest

from sod100k.cli import main as cli
from sod100k.web import runtime
from sod100k.web.bundle import BundleExistsError, write_bundle
from sod100k.web.static_server import make_server

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_runtime(tmp_path, monkeypatch) -> Path:
    """A folder with stand-ins for the two runtime files, found first."""
    folder = tmp_path / "ort-dist"
    folder.mkdir()
    for name in runtime.RUNTIME_FILES:
        (folder / name).write_bytes(b"// " + name.encode())
    (folder / "VERSION").write_text(runtime.RUNTIME_VERSION)
    monkeypatch.setenv(runtime.RUNTIME_ENV, str(folder))
    return folder


@pytest.fixture
def no_runtime(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(runtime.RUNTIME_ENV, raising=False)
    monkeypatch.setattr(runtime, "VENDORED", tmp_path / "none-vendored")
    monkeypatch.setattr(runtime, "CHECKOUT_PACKAGE", tmp_path / "none-checkout")


def test_pinned_version_is_the_one_the_package_expects():
    package = json.loads((ROOT / "web" / "package.json").read_text())
    lock = json.loads((ROOT / "web" / "package-lock.json").read_text())
    assert package["dependencies"]["onnxruntime-web"] == runtime.RUNTIME_VERSION
    assert lock["packages"]["node_modules/onnxruntime-web"]["version"] == runtime.RUNTIME_VERSION


def test_missing_runtime_says_what_to_do_and_writes_nothing(no_runtime, tmp_path, capsys):
    out = tmp_path / "web"
    assert cli(["export", "--web", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "npm ci --prefix web" in err and f"onnxruntime-web@{runtime.RUNTIME_VERSION}" in err
    assert not out.exists()


def test_another_runtime_version_is_refused(fake_runtime, no_runtime, monkeypatch):
    (fake_runtime / "VERSION").write_text("1.0.0")
    monkeypatch.setenv(runtime.RUNTIME_ENV, str(fake_runtime))
    with pytest.raises(runtime.RuntimeMissingError, match=r"1\.0\.0"):
        runtime.find_runtime()


def test_bundle_layout_and_overwrite_rules(fake_runtime, tmp_path):
    out = tmp_path / "web"
    written = write_bundle(out, b"onnx bytes", name="csnet-l-x2", size=192)
    rel = sorted(str(p.relative_to(out)) for p in written)
    assert rel == sorted(
        [
            "NOTICE.txt",
            "index.html",
            "model.json",
            "model.onnx",
            "sod100k.js",
            "ort/VERSION",
            *(f"ort/{n}" for n in runtime.RUNTIME_FILES),
        ]
    )
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["size"] == 192 and manifest["quantization"] == "truncate"
    assert "non-commercial" in (out / "NOTICE.txt").read_text()
    with pytest.raises(BundleExistsError, match="--force"):
        write_bundle(out, b"other", name="x")
    mine = out / "mine.txt"
    mine.write_text("keep")
    write_bundle(out, b"other", name="x", force=True)
    assert (out / "model.onnx").read_bytes() == b"other"
    assert mine.read_text() == "keep"  # --force replaces only the bundle's own files


def test_static_server_sends_isolation_headers_and_types(fake_runtime, tmp_path):
    out = tmp_path / "web"
    write_bundle(out, b"onnx", name="x")
    server = make_server(out, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with urllib.request.urlopen(base) as r:
            assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        for path, kind in [
            ("sod100k.js", "text/javascript"),
            ("ort/ort.wasm.bundle.min.mjs", "text/javascript"),
            ("ort/ort-wasm-simd-threaded.wasm", "application/wasm"),
        ]:
            with urllib.request.urlopen(base + path) as r:
                assert r.headers["Content-Type"] == kind, path
                assert r.headers["Cross-Origin-Resource-Policy"] == "same-origin"
    finally:
        server.shutdown()
        server.server_close()
