"""``sod100k serve``: the HTTP service and web page, with uvicorn."""

from __future__ import annotations

import argparse
import os

from sod100k.api import DEFAULT_MODEL, default_weights
from sod100k.cli.common import CLIError, add_model_args, add_precision_args, check_device, positive
from sod100k.infer.predictor import DEFAULT_SIZE, Predictor
from sod100k.infer.runtime import BACKENDS, make_backend


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
    return p


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from sod100k.server import ServerSettings, create_app

    positive("workers", args.workers)
    positive("port", args.port)
    check_device(args.device)
    model = args.model or (None if args.weights else DEFAULT_MODEL)
    weights = args.weights or str(default_weights(model))
    # Each request is one small image: parallelism comes from the request pool, so one
    # torch thread per worker avoids oversubscribing the cores.
    try:
        backend = make_backend(
            args.backend,
            model,
            weights,
            args.device,
            threads=1,
            streams=args.workers,
            precision=args.precision,
        )
    except ValueError as e:
        raise CLIError(str(e)) from e
    settings = ServerSettings(
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_pixels=int(args.max_megapixels * 1e6),
        workers=args.workers,
        model_name=model or str(weights),
    )
    app = create_app(Predictor(backend, args.size), settings)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
