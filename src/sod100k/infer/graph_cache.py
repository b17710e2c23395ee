"""A disk cache of the ONNX graphs exported at start-up, so a command need not re-export.

The ``onnx`` and ``openvino`` backends run the ONNX export of the checkpoint. Exporting
(importing the ONNX package, fusing, tracing) costs about a CPU-second at every start,
a tenth of a 300-image ``sod100k predict`` run on two cores. The graph depends only on
the checkpoint file(s), the model name asked for and the code that exported it, so it is
kept under ``$SOD100K_HOME/cache`` (default ``~/.cache/sod100k/cache``; ``SOD100K_CACHE``
names another folder, or ``0`` turns caching off) by a key made of the SHA-256 of the
checkpoint's bytes, the model name, the torch version and the package's own source
code: another checkpoint, an edited one, another torch or any change to sod100k
exports afresh. OpenVINO's compiled networks are cached beside it (its ``CACHE_DIR``,
keyed by OpenVINO itself).

The cache is an optimisation only: an unreadable, damaged or unwritable cache is
ignored (the graph is exported as without it), and entries are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from importlib import metadata
from pathlib import Path

from sod100k.utils.files import atomic_write_bytes, sod100k_home

log = logging.getLogger(__name__)

#: The cache folder, or ``0`` (``off``, ``no``, ``false``) to turn the cache off.
CACHE_ENV = "SOD100K_CACHE"
#: Bumped when the cache's layout changes.
FORMAT = 1
_PACKAGE = Path(__file__).resolve().parents[1]


def cache_root() -> Path | None:
    """The cache folder, or ``None`` when ``SOD100K_CACHE`` turns the cache off."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() in ("0", "off", "no", "false"):
        return None
    return Path(value).expanduser() if value else sod100k_home() / "cache"


def openvino_cache_dir() -> str | None:
    """The folder OpenVINO keeps compiled networks in (its ``CACHE_DIR``), if caching."""
    root = cache_root()
    return None if root is None else str(root / "openvino")


def graph_key(model: str | None, files: list[Path]) -> str:
    """The cache key of the graph exported from the checkpoint ``files`` as ``model``.

    It covers the files' bytes, the model name, the torch version and every source file
    of the package (a few milliseconds to read), so no code change can reuse a graph
    exported by older code.
    """
    h = hashlib.sha256()
    h.update(json.dumps([FORMAT, model, _version("torch")]).encode())
    for path in [*files, *sorted(_PACKAGE.rglob("*.py"))]:
        with open(path, "rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()


def read_graph(key: str) -> tuple[str | None, bytes] | None:
    """``(arch, ONNX bytes)`` cached under ``key``, or ``None`` (absent or unreadable)."""
    root = cache_root()
    if root is None:
        return None
    try:
        info = json.loads((root / "onnx" / f"{key}.json").read_text())
        data = (root / "onnx" / f"{key}.onnx").read_bytes()
    except (OSError, ValueError):
        return None
    if hashlib.sha256(data).hexdigest() != info.get("sha256"):
        log.warning("ignoring a damaged cached graph %s", key)
        return None
    return info.get("arch"), data


def write_graph(key: str, arch: str | None, data: bytes) -> None:
    """Cache ``data`` (ONNX bytes of an ``arch`` model) under ``key``; errors are ignored."""
    root = cache_root()
    if root is None:
        return
    folder = root / "onnx"
    try:
        atomic_write_bytes(folder / f"{key}.onnx", data)
        info = {"arch": arch, "sha256": hashlib.sha256(data).hexdigest()}
        atomic_write_bytes(folder / f"{key}.json", json.dumps(info).encode())
    except OSError as e:
        log.debug("cannot cache the exported graph in %s: %s", folder, e)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
