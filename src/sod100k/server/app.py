"""The FastAPI application: ``/v1/saliency``, ``/v1/cutout``, ``/v1/preview``, ``/healthz``, ``/``.

The model is loaded once by the caller and handed in as a :class:`Predictor`; the app
compiles and warms it up for its one input shape at start-up, before any request can
reach it (see :meth:`OpenVinoBackend._compiled_for` for the deadlock this prevents).
Decoding, inference and encoding run in worker threads (OpenCV, Pillow and the
backends release the GIL), so the event loop stays free to accept and refuse requests.

Images over ``large_pixels`` run in a pool of their own with ``large_slots`` threads;
when every slot is busy they wait in a bounded queue (``queue_size`` requests, at most
``queue_timeout`` seconds each), and only a full queue or a wait that runs out is answered
503 with ``Retry-After``: big images cannot exhaust memory or hold up small ones.
Every error, whatever raised it (our checks, FastAPI's validation, routing, the
multipart parser), is answered ``{"error": ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from typing import Annotated

import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image, ImageDraw
from starlette.exceptions import HTTPException as StarletteHTTPException

from sod100k import __version__
from sod100k.data import images
from sod100k.infer.predictor import Predictor
from sod100k.server.imaging import RequestError, cutout_png, preview_jpeg, probe, saliency_png
from sod100k.server.limits import Admission, AdmissionRefused, BodyLimitMiddleware
from sod100k.utils.malloc import release_free_memory

log = logging.getLogger(__name__)

ImageUpload = Annotated[UploadFile, File(description="an image file")]


@dataclass(frozen=True)
class ServerSettings:
    """Limits and sizing of the service (``sod100k serve --help`` sets them)."""

    #: Largest accepted upload, in bytes (larger: 413, counted while it streams in).
    max_upload_bytes: int = 20 * 1024 * 1024
    #: Largest accepted image, in pixels (larger: 413); checked before decoding.
    max_pixels: int = 40_000_000
    #: Inference threads for ordinary images; defaults to the number of CPU cores.
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    #: Images over this many pixels are "large": they need a free slot.
    large_pixels: int = 4_000_000
    #: Large images processed at once (their own threads); more wait in the queue.
    large_slots: int = 1
    #: Large images that may wait for a slot; more get 503 + Retry-After.
    queue_size: int = 8
    #: Seconds a large image waits for a slot at most; then 503 + Retry-After.
    queue_timeout: float = 60.0
    #: ``Retry-After`` seconds sent with 503.
    retry_after: int = 5
    #: Seconds a client has to send the whole request body (slower: 408).
    body_timeout: float = 60.0
    #: Seconds a client has to send the request line and headers (slower: 408, closed).
    header_timeout: float = 10.0
    #: Open connections at most; more are answered 503 and closed.
    max_connections: int = 128
    #: Longest side of ``/v1/preview`` images.
    preview_side: int = 1024
    #: Shown by ``/healthz``.
    model_name: str = "csnet"


def warm_up(predictor: Predictor) -> None:
    """Compile and run the network once for the one shape the server feeds it."""
    shape = (1, 3, predictor.size, predictor.size)
    backend = predictor.backend
    if hasattr(backend, "warm_up"):
        backend.warm_up(shape)
    else:
        backend(np.zeros(shape, np.float32))


def favicon_ico() -> bytes:
    """A small icon (a dark disc cut out of a square), drawn rather than shipped."""
    img = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse((3, 3, 28, 28), fill=(51, 102, 204, 255))
    buf = io.BytesIO()
    img.save(buf, "ICO", sizes=[(16, 16), (32, 32)])
    return buf.getvalue()


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _then_trim(job):
    try:
        return job()
    finally:
        release_free_memory()


def create_app(predictor: Predictor, settings: ServerSettings | None = None) -> FastAPI:
    """A FastAPI app serving ``predictor`` (already loaded) within ``settings``' limits.

    Args:
        predictor: The loaded model; warmed up when the app starts.
        settings: Limits and sizing; defaults to :class:`ServerSettings`'s.

    Returns:
        The ASGI application, wrapped in the streaming body limit.

    Raises:
        ValueError: ``$SOD100K_MAX_MEGAPIXELS`` is not a positive number.
    """
    settings = settings or ServerSettings()
    if settings.max_pixels > images.max_pixels():  # decode what the header check admits
        images.set_max_megapixels(settings.max_pixels / 1e6)
    pool = ThreadPoolExecutor(max(1, settings.workers), thread_name_prefix="sod-infer")
    large_pool = ThreadPoolExecutor(max(1, settings.large_slots), thread_name_prefix="sod-large")
    admission = Admission(
        settings.large_slots, settings.queue_size, settings.queue_timeout, settings.retry_after
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await asyncio.get_running_loop().run_in_executor(pool, warm_up, predictor)
        yield
        # Never wait for running work here: shutdown must finish within seconds.
        pool.shutdown(wait=False, cancel_futures=True)
        large_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="sod100k",
        version=__version__,
        description="Salient object detection with CSNet: saliency maps and cut-outs.",
        lifespan=lifespan,
    )
    app.state.predictor = predictor
    app.state.settings = settings
    app.state.admission = admission

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> JSONResponse:
        log.info(
            "%s %s refused (%d): %s", request.method, request.url.path, exc.status, exc.message
        )
        return error(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"{request.url.path}: not found"
        elif exc.status_code == 405:
            message = f"{request.method} {request.url.path}: method not allowed"
        return error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return error(500, f"internal error ({type(exc).__name__})")

    async def _read(file: UploadFile) -> tuple[bytes, str]:
        data = await file.read(settings.max_upload_bytes + 1)
        name = file.filename or "upload"
        if len(data) > settings.max_upload_bytes:
            raise RequestError(
                413, f"{name}: upload too large (limit {settings.max_upload_bytes} bytes)"
            )
        return data, name

    async def _run(data: bytes, name: str, job) -> bytes:
        """Check the header, then run ``job`` in the small or the large pool."""
        w, h = probe(data, name, settings.max_pixels)
        if w * h <= settings.large_pixels:
            return await asyncio.wrap_future(pool.submit(job))
        try:
            await admission.acquire()
        except AdmissionRefused as e:
            raise RequestError(
                503,
                f"{name}: busy with large images ({w}x{h} is over "
                f"{settings.large_pixels / 1e6:g} MP; {settings.large_slots} at a time, {e}), "
                f"retry in {settings.retry_after} s",
                {"Retry-After": str(settings.retry_after)},
            ) from None
        future = large_pool.submit(_then_trim, job)
        # Released when the job ends or is cancelled, not when the client goes away.
        future.add_done_callback(lambda _: admission.release())
        return await asyncio.wrap_future(future)

    png = {"content": {"image/png": {}}, "description": "PNG image"}
    errors = {
        400: {"description": "corrupt, truncated or empty image; unparsable multipart body"},
        408: {"description": "request head or body sent too slowly"},
        413: {"description": "upload or image too large"},
        415: {"description": "not an image"},
        422: {"description": "missing file field or bad query value"},
        503: {
            "description": "large-image queue full or wait over, or too many connections; "
            "see Retry-After"
        },
    }

    @app.post("/v1/saliency", response_class=Response, responses={200: png, **errors})
    async def saliency(file: ImageUpload) -> Response:
        """Saliency map of the uploaded image: a grey PNG of the image's size."""
        data, name = await _read(file)
        out = await _run(data, name, partial(saliency_png, predictor, data, name))
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
        job = partial(cutout_png, predictor, data, name, threshold, refine)
        out = await _run(data, name, job)
        return Response(out, media_type="image/png")

    jpeg = {"content": {"image/jpeg": {}}, "description": "JPEG image"}

    @app.post("/v1/preview", response_class=Response, responses={200: jpeg, **errors})
    async def preview(file: ImageUpload) -> Response:
        """The upload as a JPEG of at most ``preview_side`` pixels a side (for browsers
        that cannot display the original format, such as TIFF)."""
        data, name = await _read(file)
        out = await _run(data, name, partial(preview_jpeg, data, name, settings.preview_side))
        return Response(out, media_type="image/jpeg")

    @app.get("/healthz")
    async def healthz() -> dict:
        """Liveness: the model is loaded and the service answers (``HEAD`` too)."""
        return {"status": "ok", "model": settings.model_name, "version": __version__}

    app.head("/healthz", include_in_schema=False)(healthz)

    page = resources.files("sod100k.server").joinpath("static/index.html").read_text("utf-8")
    icon = favicon_ico()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(icon, media_type="image/x-icon")

    app.add_middleware(
        BodyLimitMiddleware,
        max_upload_bytes=settings.max_upload_bytes,
        body_timeout=settings.body_timeout,
    )
    return app
