"""A static file server for the bundle that makes the page cross-origin isolated.

``python -m sod100k.web.static_server out/web`` serves a folder like any static server,
adding the headers that let onnxruntime-web use threads: ``Cross-Origin-Opener-Policy:
same-origin`` and ``Cross-Origin-Embedder-Policy: require-corp`` (plus
``Cross-Origin-Resource-Policy: same-origin``), and the right types for ``.mjs`` and
``.wasm``. Any other static server works too; without these headers the page runs on
one thread.
"""

from __future__ import annotations

import argparse
import functools
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

#: Headers that make a page cross-origin isolated (SharedArrayBuffer, WASM threads).
ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}
#: Types some platforms' ``mimetypes`` tables lack or get wrong.
TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
    ".json": "application/json",
}


class BundleHandler(SimpleHTTPRequestHandler):
    """Serves files with :data:`TYPES`, and :data:`ISOLATION_HEADERS` when ``isolate``."""

    extensions_map: ClassVar[dict[str, str]] = {**SimpleHTTPRequestHandler.extensions_map, **TYPES}
    isolate = True

    def end_headers(self) -> None:
        if self.isolate:
            for name, value in ISOLATION_HEADERS.items():
                self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # quiet unless asked
        if self.server.verbose:  # type: ignore[attr-defined]
            super().log_message(format, *args)


def make_server(
    folder: str | Path, host: str = "127.0.0.1", port: int = 8000, isolate: bool = True
) -> ThreadingHTTPServer:
    """An HTTP server for ``folder`` (port 0: any free port; see ``server_address``)."""
    handler = type("Handler", (BundleHandler,), {"isolate": isolate})
    server = ThreadingHTTPServer((host, port), functools.partial(handler, directory=str(folder)))
    server.verbose = False  # type: ignore[attr-defined]
    return server


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sod100k.web.static_server",
        description="Serve a `sod100k export --web` folder, cross-origin isolated.",
    )
    p.add_argument("folder", type=Path, help="the bundle folder")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default %(default)s)")
    p.add_argument(
        "--no-isolate",
        dest="isolate",
        action="store_false",
        help="leave out COOP/COEP (the page then runs on one thread)",
    )
    args = p.parse_args(argv)
    if not (args.folder / "index.html").is_file():
        print(
            f"error: {args.folder}: no index.html (run `sod100k export --web` first)",
            file=sys.stderr,
        )
        return 2
    server = make_server(args.folder, args.host, args.port, args.isolate)
    server.verbose = True  # type: ignore[attr-defined]
    host, port = server.server_address[:2]
    print(f"serving {args.folder} at http://{host}:{port}/ (Ctrl-C to stop)", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
