"""``sod100k serve``: the HTTP service and web page, with uvicorn."""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sod100k.cli import ray_serve
from sod100k.cli.common import (
    CLIError,
    add_model_args,
    add_precision_args,
    backend_from_args,
    check_device,
    model_label,
    positive,
)
from sod100k.infer.predictor import DEFAULT_SIZE, Predictor
from sod100k.infer.runtime import BACKENDS, resolve_backend, serving_threads

if TYPE_CHECKING:
    from sod100k.infer.backends import Backend
    from sod100k.server.app import ServerSettings


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "serve",
        help="serve saliency maps and cut-outs over HTTP, with a web page",
        description="POST /v1/saliency and /v1/cutout (multipart 'file'), GET /healthz, "
        "OpenAPI docs at /docs, and a web page at /.",
    )
    add_model_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default %(default)s)")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help="network input side")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="inference backend (default %(default)s: openvino on CPU, torch on CUDA)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="inference threads (default: CPU cores, %(default)s)",
    )
    add_precision_args(p)
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="upload limit (413)")
    p.add_argument("--max-megapixels", type=float, default=40.0, help="image limit (413)")
    p.add_argument(
        "--large-megapixels",
        type=float,
        default=4.0,
        help="images over this are large: they need a free slot (default %(default)s)",
    )
    p.add_argument(
        "--large-slots",
        type=int,
        default=1,
        help="large images processed at once; more wait in the queue (default %(default)s)",
    )
    p.add_argument(
        "--queue-size",
        type=int,
        default=8,
        help="large images that may wait for a slot; more get 503 + Retry-After; 0 refuses "
        "whenever the slots are busy (default %(default)s)",
    )
    p.add_argument(
        "--queue-timeout",
        type=float,
        default=60.0,
        help="seconds a large image waits for a slot before 503 + Retry-After "
        "(default %(default)s)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=128,
        help="open connections at most; more get 503 (default %(default)s)",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="seconds to send the request head (default %(default)s)",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=60.0,
        help="seconds to send the whole request body (default %(default)s)",
    )
    p.add_argument(
        "--shutdown-timeout",
        type=float,
        default=5.0,
        help="seconds in-flight requests get after SIGTERM/Ctrl-C (default %(default)s)",
    )
    ray_serve.add_ray_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from sod100k.server import create_app
    from sod100k.server.protocol import guarded_protocol
    from sod100k.server.web import add_browser_routes

    for name in ("workers", "port", "large_slots", "max_connections"):
        positive(name.replace("_", "-"), getattr(args, name))
    for name in ("header_timeout", "body_timeout", "shutdown_timeout", "queue_timeout"):
        positive(name.replace("_", "-"), getattr(args, name))
    if args.queue_size < 0:
        raise CLIError(f"--queue-size must be 0 or more, got {args.queue_size}")
    check_device(args.device)
    if args.ray is not None:
        return ray_serve.run(args)
    backend, model, weights = serving_backend(args)
    settings = settings_from_args(args, model_label(model, weights))
    predictor = Predictor(backend, args.size)
    app = create_app(predictor, settings)
    add_browser_routes(
        app, browser_model(model, weights), settings.model_name, args.size, predictor.quantization
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="info",
        http=guarded_protocol(settings.header_timeout, settings.max_connections),
        timeout_graceful_shutdown=max(1, round(args.shutdown_timeout)),
    )
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        _exit_now_if_work_is_stuck(code=130)
        raise
    _exit_now_if_work_is_stuck()
    return 0


def serving_backend(args: argparse.Namespace) -> tuple[Backend, str | None, str]:
    """The backend of ``sod100k serve``: one stream per request thread (``--workers``
    plus ``--large-slots``), each on one thread.

    Each request is one small image: parallelism comes from the request pools, so one
    thread per inference call avoids oversubscribing the cores, and OpenVINO gets as many
    streams as there are request threads (up to the CPU's cores), so concurrent requests
    do not queue inside the network.

    Returns:
        ``(backend, model, weights)`` as :func:`backend_from_args` resolves them.
    """
    streams = args.workers + args.large_slots
    threads = serving_threads(resolve_backend(args.backend, args.device), streams)
    return backend_from_args(args, threads=threads, streams=streams)


def browser_model(model: str | None, weights: str) -> Callable[[], bytes]:
    """The ONNX graph the page's "run in this browser" mode loads: an ``.onnx`` file as
    given, else the fp32 export of the weights (made on the first request for it)."""
    if Path(weights).suffix == ".onnx":
        return Path(weights).read_bytes

    def export() -> bytes:
        from sod100k.checkpoints.loading import load_model
        from sod100k.infer.onnx_export import export_bytes

        return export_bytes(load_model(model, weights))

    return export


def settings_from_args(args: argparse.Namespace, model_name: str) -> ServerSettings:
    """The service's limits and sizing from the options."""
    from sod100k.server.app import ServerSettings

    return ServerSettings(
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_pixels=int(args.max_megapixels * 1e6),
        workers=args.workers,
        large_pixels=int(args.large_megapixels * 1e6),
        large_slots=args.large_slots,
        queue_size=args.queue_size,
        queue_timeout=args.queue_timeout,
        body_timeout=args.body_timeout,
        header_timeout=args.header_timeout,
        max_connections=args.max_connections,
        model_name=model_name,
    )


def _exit_now_if_work_is_stuck(grace: float = 1.0, code: int = 0) -> None:
    """End the process (with ``code``) if an image job is still running after ``grace`` s.

    uvicorn has answered or cancelled every request by now; a worker thread still inside
    the network would only make the interpreter wait for it at exit. (On SIGTERM uvicorn
    re-raises the signal after its graceful shutdown, which ends the process anyway.)
    """
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        busy = [t for t in threading.enumerate() if t.name.startswith(("sod-infer", "sod-large"))]
        if not busy:
            return
        time.sleep(0.05)
    logging.getLogger(__name__).warning("exiting with %d image job(s) still running", len(busy))
    logging.shutdown()
    os._exit(code)
