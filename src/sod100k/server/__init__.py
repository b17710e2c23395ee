"""HTTP service: saliency maps and cut-outs over FastAPI, plus a one-page web UI."""

from sod100k.server.app import ServerSettings, create_app

__all__ = ["ServerSettings", "create_app"]
