"""CSNet in the browser: the static bundle of ``sod100k export --web`` and its runtime.

``assets/`` holds the page and the ES module ``sod100k.js``; the onnxruntime-web files
they need come from npm (``web/package.json``, pinned by ``web/package-lock.json``) and
are found by :func:`~sod100k.web.runtime.find_runtime`.
"""

from sod100k.web.bundle import write_bundle
from sod100k.web.runtime import RUNTIME_VERSION, RuntimeMissingError, find_runtime

__all__ = ["RUNTIME_VERSION", "RuntimeMissingError", "find_runtime", "write_bundle"]
