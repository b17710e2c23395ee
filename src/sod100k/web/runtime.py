"""Where the onnxruntime-web files come from, and how they get into the package.

A page needs two files of onnxruntime-web's 136 MB ``dist/``: the WASM-only ES module
with its loader built in (``ort.wasm.bundle.min.mjs``) and the one WASM binary it loads
(``ort-wasm-simd-threaded.wasm``, SIMD, threads when the page allows them). They come
from the npm registry, pinned in ``web/package-lock.json``, and are never committed.

:func:`find_runtime` looks, in order, in ``$SOD100K_WEB_RUNTIME``, in the package's own
``sod100k/web/runtime/`` (filled by :func:`vendor_runtime`, which ``scripts/install.sh``
runs after ``npm ci``, so wheels built from the checkout carry the files), and in the
checkout's ``web/node_modules``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

#: The onnxruntime-web release the bundle is built and tested with (web/package.json).
RUNTIME_VERSION = "1.30.0"
#: The files of onnxruntime-web's ``dist/`` a page loads.
RUNTIME_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")
#: Environment variable naming a folder with :data:`RUNTIME_FILES`.
RUNTIME_ENV = "SOD100K_WEB_RUNTIME"

_HERE = Path(__file__).resolve().parent
#: Where :func:`vendor_runtime` puts the files inside the package.
VENDORED = _HERE / "runtime"
#: onnxruntime-web as ``npm ci --prefix web`` installs it in a checkout.
CHECKOUT_PACKAGE = _HERE.parents[2] / "web" / "node_modules" / "onnxruntime-web"


class RuntimeMissingError(RuntimeError):
    """The onnxruntime-web files are not installed (the message says how to get them)."""


def _version(folder: Path) -> str | None:
    """The onnxruntime-web version of a folder: its ``VERSION`` file (vendored copies) or
    the ``package.json`` above an npm ``dist/``; ``None`` if neither says."""
    if (folder / "VERSION").is_file():
        return (folder / "VERSION").read_text().strip()
    package = folder.parent / "package.json"
    if package.is_file():
        return json.loads(package.read_text()).get("version")
    return None


def _candidates() -> list[Path]:
    found = [Path(os.environ[RUNTIME_ENV])] if os.environ.get(RUNTIME_ENV) else []
    return [*found, VENDORED, CHECKOUT_PACKAGE / "dist"]


def find_runtime() -> Path:
    """The folder holding :data:`RUNTIME_FILES` of onnxruntime-web :data:`RUNTIME_VERSION`.

    Raises:
        RuntimeMissingError: no candidate folder has them (or only another version).
    """
    looked = []
    for folder in _candidates():
        if all((folder / name).is_file() for name in RUNTIME_FILES):
            version = _version(folder)
            if version in (None, RUNTIME_VERSION):
                return folder
            looked.append(f"{folder} (onnxruntime-web {version}, need {RUNTIME_VERSION})")
        else:
            looked.append(str(folder))
    raise RuntimeMissingError(
        f"onnxruntime-web {RUNTIME_VERSION} is not installed (looked in: {', '.join(looked)}). "
        "In a sod100k checkout run `npm ci --prefix web` (scripts/install.sh does it when "
        f"npm is present); elsewhere run `npm install onnxruntime-web@{RUNTIME_VERSION}` and "
        f"set {RUNTIME_ENV}=$PWD/node_modules/onnxruntime-web/dist"
    )


def vendor_runtime(package: Path = CHECKOUT_PACKAGE, dest: Path = VENDORED) -> Path:
    """Copy :data:`RUNTIME_FILES` from an installed npm package into ``dest``, with a
    ``VERSION`` file; returns ``dest``.

    Raises:
        RuntimeMissingError: ``package`` lacks the files or is another version.
    """
    dist = package / "dist"
    version = _version(dist)
    if version != RUNTIME_VERSION or not all((dist / n).is_file() for n in RUNTIME_FILES):
        raise RuntimeMissingError(
            f"{package}: need onnxruntime-web {RUNTIME_VERSION} (found {version or 'nothing'}); "
            "run `npm ci --prefix web`"
        )
    dest.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_FILES:
        shutil.copyfile(dist / name, dest / name)
    (dest / "VERSION").write_text(RUNTIME_VERSION + "\n")
    return dest


def main(argv: list[str] | None = None) -> int:
    """``python -m sod100k.web [--vendor]``: say where the runtime is, or vendor it."""
    p = argparse.ArgumentParser(
        prog="python -m sod100k.web",
        description="Print the folder of the onnxruntime-web files the bundle uses, or "
        "copy them from web/node_modules into the package.",
    )
    p.add_argument(
        "--vendor",
        action="store_true",
        help="copy the files from web/node_modules into the package (sod100k/web/runtime)",
    )
    args = p.parse_args(argv)
    try:
        path = vendor_runtime() if args.vendor else find_runtime()
    except RuntimeMissingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0
