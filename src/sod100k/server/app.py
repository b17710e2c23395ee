"""The FastAPI application: ``/v1/saliency``, ``/v1/cutout``, ``/healthz`` and ``/``.

The model is loaded once by the caller and handed in as a :class:`Predictor`. Decoding,
inference and PNG encoding run in a thread pool sized to the CPU cores (OpenCV, Pillow
and torch release the GIL), so the event loop stays free to accept and refuse requests.
Every bad request gets a 4xx JSON ``{"error": ...}`` and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated

import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image, UnidentifiedImageError

from sod100k import __version__
from sod100k.data.images import ImageError, load_rgb
from sod100k.infer.batch import encode_png
from sod100k.infer.cutout import alpha_matte, cutout_rgba
from sod100k.infer.predictor import Predictor

log = logging.getLogger(__name__)

ImageUpload = Annotated[UploadFile, File(description="an image file")]


@dataclass(frozen=True)
class ServerSettings:
    """Limits and sizing of the service."""

    #: Largest accepted upload, in bytes (larger: 413).
    max_upload_bytes: int = 20 * 1024 * 1024
    #: Largest accepted image, in pixels (larger: 413); checked before decoding.
    max_pixels: int = 40_000_000
    #: Inference threads; defaults to the number of CPU cores.
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    #: Shown by ``/healthz``.
    model_name: str = "csnet"


class RequestError(Exception):
    """A request the service refuses: an HTTP status and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _check_pixels(data: bytes, name: str, max_pixels: int) -> None:
    """Refuse over-large images from their header alone, before any pixel is decoded."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
    except UnidentifiedImageError as e:
        raise RequestError(415, f"{name}: not an image file (unrecognised format)") from e
    except Image.DecompressionBombError as e:
        raise RequestError(413, f"{name}: refused as a decompression bomb ({e})") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise RequestError(400, f"{name}: corrupt or truncated image ({e})") from e
    if w * h > max_pixels:
        raise RequestError(413, f"{name}: image too large ({w}x{h}, limit {max_pixels / 1e6:g} MP)")


def _decode(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    if not data:
        raise RequestError(400, f"{name}: empty file (0 bytes)")
    _check_pixels(data, name, max_pixels)
    try:
        return load_rgb(data, name)
    except ImageError as e:
        status = 415 if "not an image" in str(e) else 400
        raise RequestError(status, str(e)) from e


def _saliency_png(predictor: Predictor, data: bytes, name: str, max_pixels: int) -> bytes:
    return encode_png(predictor(_decode(data, name, max_pixels)))


def _cutout_png(
    predictor: Predictor,
    data: bytes,
    name: str,
    max_pixels: int,
    threshold: int | None,
    refine: bool,
) -> bytes:
    rgb = _decode(data, name, max_pixels)
    alpha = alpha_matte(rgb, predictor(rgb), threshold, refine)
    return encode_png(cutout_rgba(rgb, alpha))


def create_app(predictor: Predictor, settings: ServerSettings | None = None) -> FastAPI:
    """A FastAPI app serving ``predictor`` (already loaded) within ``settings``' limits."""
    settings = settings or ServerSettings()
    pool = ThreadPoolExecutor(max(1, settings.workers), thread_name_prefix="sod-infer")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        pool.shutdown(wait=True, cancel_futures=True)

    app = FastAPI(
        title="sod100k",
        version=__version__,
        description="Salient object detection with CSNet: saliency maps and cut-outs.",
        lifespan=lifespan,
    )
    app.state.predictor = predictor
    app.state.settings = settings

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> JSONResponse:
        log.info(
            "%s %s refused (%d): %s", request.method, request.url.path, exc.status, exc.message
        )
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.middleware("http")
    async def limit_upload(request: Request, call_next):
        # Refuse by the declared length before the body is read; _read checks the real size.
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_upload_bytes + 64 * 1024:
            return JSONResponse(
                {
                    "error": f"upload too large ({int(length)} bytes, limit "
                    f"{settings.max_upload_bytes})"
                },
                status_code=413,
            )
        return await call_next(request)

    async def _read(file: UploadFile) -> tuple[bytes, str]:
        data = await file.read(settings.max_upload_bytes + 1)
        name = file.filename or "upload"
        if len(data) > settings.max_upload_bytes:
            raise RequestError(
                413, f"{name}: upload too large (limit {settings.max_upload_bytes} bytes)"
            )
        return data, name

    async def _run(fn, *args) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    png = {"content": {"image/png": {}}, "description": "PNG image"}
    errors = {
        400: {"description": "corrupt, truncated or empty image"},
        413: {"description": "upload or image too large"},
        415: {"description": "not an image"},
    }

    @app.post("/v1/saliency", response_class=Response, responses={200: png, **errors})
    async def saliency(file: ImageUpload) -> Response:
        """Saliency map of the uploaded image: a grey PNG of the image's size."""
        data, name = await _read(file)
        out = await _run(_saliency_png, predictor, data, name, settings.max_pixels)
        return Response(out, media_type="image/png")

    @app.post("/v1/cutout", response_class=Response, responses={200: png, **errors})
    async def cutout(
        file: ImageUpload,
        threshold: Annotated[
            int | None, Query(ge=0, le=255, description="hard alpha: 255 where the map >= this")
        ] = None,
        refine: Annotated[bool, Query(description="refine the alpha edges (guided filter)")] = True,
    ) -> Response:
        """The salient object cut out: an RGBA PNG of the image's size."""
        data, name = await _read(file)
        out = await _run(_cutout_png, predictor, data, name, settings.max_pixels, threshold, refine)
        return Response(out, media_type="image/png")

    @app.get("/healthz")
    async def healthz() -> dict:
        """Liveness: the model is loaded and the service answers."""
        return {"status": "ok", "model": settings.model_name, "version": __version__}

    page = resources.files("sod100k.server").joinpath("static/index.html").read_text("utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    return app
