"""The served page's "run in this browser" mode: the model and runtime under ``/web/``.

:func:`add_browser_routes` adds to an app made by :func:`~sod100k.server.create_app`:

* ``GET /web/sod100k.js``, ``/web/ort/<file>``: the ES module and the onnxruntime-web
  files (:func:`sod100k.web.find_runtime`); 404 when the runtime is not installed, and
  the page then runs on the server;
* ``GET /web/model.onnx``: the server's model as ONNX, exported on first request;
  ``/web/model.json``: the input size and quantisation the page passes to ``load()``, the
  server's own, so both modes give the same maps;
* the headers that make the page cross-origin isolated, so the WASM runtime may use
  threads: ``Cross-Origin-Opener-Policy: same-origin`` and
  ``Cross-Origin-Embedder-Policy: require-corp`` on the page and its assets, with
  ``Cross-Origin-Resource-Policy: same-origin`` on the assets. The API routes are left
  as they are.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response

from sod100k.web.bundle import asset_bytes, model_manifest
from sod100k.web.runtime import RUNTIME_FILES, RuntimeMissingError, find_runtime
from sod100k.web.static_server import ISOLATION_HEADERS

#: Paths whose responses get :data:`ISOLATION_HEADERS`: the page and what it loads.
ISOLATED_PATHS = ("/", "/favicon.ico")
ISOLATED_PREFIX = "/web/"


class LazyModel:
    """ONNX bytes made once, on first use, by ``make`` (an export takes seconds)."""

    def __init__(self, make: Callable[[], bytes]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._data: bytes | None = None

    def __call__(self) -> bytes:
        with self._lock:
            if self._data is None:
                self._data = self._make()
            return self._data


def add_browser_routes(
    app: FastAPI, model: Callable[[], bytes], name: str, size: int, quantization: str
) -> None:
    """Serve the browser mode of the page from ``app`` (see the module docstring).

    Args:
        app: the service.
        model: returns the ONNX graph (called once, in a worker thread).
        name: the model's name, shown by the page.
        size: network input side, the server's.
        quantization: ``"truncate"`` or ``"round"``, the server's.
    """
    onnx = LazyModel(model)
    manifest = json.dumps(model_manifest(name, size, quantization))
    module = asset_bytes("sod100k.js")
    try:
        runtime: Path | None = find_runtime()
    except RuntimeMissingError:
        runtime = None

    def missing(what: str) -> Response:
        return Response(
            json.dumps({"error": f"{what}: not available on this server"}),
            status_code=404,
            media_type="application/json",
        )

    @app.api_route("/web/sod100k.js", methods=["GET", "HEAD"], include_in_schema=False)
    async def web_module() -> Response:
        return Response(module, media_type="text/javascript")

    @app.api_route("/web/ort/{file}", methods=["GET", "HEAD"], include_in_schema=False)
    async def web_runtime(file: str) -> Response:
        if runtime is None or file not in RUNTIME_FILES:
            return missing(f"/web/ort/{file}")
        kind = "application/wasm" if file.endswith(".wasm") else "text/javascript"
        return FileResponse(runtime / file, media_type=kind)

    @app.api_route("/web/model.json", methods=["GET", "HEAD"], include_in_schema=False)
    async def web_manifest() -> Response:
        return Response(manifest, media_type="application/json")

    @app.api_route("/web/model.onnx", methods=["GET", "HEAD"], include_in_schema=False)
    async def web_model() -> Response:
        data = await asyncio.get_running_loop().run_in_executor(None, onnx)
        return Response(data, media_type="application/octet-stream")

    @app.middleware("http")
    async def isolate(request: Request, call_next):
        response = await call_next(request)
        path = request.url.path
        if path in ISOLATED_PATHS or path.startswith(ISOLATED_PREFIX):
            response.headers.update(ISOLATION_HEADERS)
        return response
