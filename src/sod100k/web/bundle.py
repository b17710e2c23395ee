"""``sod100k export --web``: a self-contained static folder that runs CSNet in the browser.

Layout (every path relative, so the folder works from any static file server or
sub-path, with no network access at run time)::

    index.html        the page: choose/drop an image, map + cut-out, live camera
    sod100k.js        the ES module (load / saliency / cutout)
    model.onnx        the fused CSNet graph, as `sod100k export` writes it
    model.json        what the page passes to load(): input size, quantisation, model name
    ort/              onnxruntime-web: one ES module, its WASM binary, VERSION
    NOTICE.txt        the licences of the parts (the released weights are non-commercial)
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

from sod100k import __version__
from sod100k.utils.files import atomic_save, atomic_write_bytes
from sod100k.web.runtime import RUNTIME_FILES, RUNTIME_VERSION, find_runtime

#: Files of ``sod100k/web/assets`` copied into every bundle.
ASSETS = ("index.html", "sod100k.js")

NOTICE = """\
This folder was written by `sod100k export --web` (sod100k {version}).

- index.html, sod100k.js: sod100k, MIT licence.
- ort/: onnxruntime-web {runtime}, Copyright (c) Microsoft Corporation, MIT licence
  (https://github.com/microsoft/onnxruntime/blob/main/LICENSE).
- model.onnx: {source}. The released CSNet checkpoints (csnet-L-x1, csnet-L-x2) and
  everything derived from them, this ONNX graph included, are the SOD100K authors' work,
  under CC BY-NC-SA 4.0: non-commercial use only; commercial use needs the authors'
  permission. Weights you trained yourself on data you may use are yours.
"""


class BundleExistsError(FileExistsError):
    """The output folder holds files and overwriting was not asked for."""


def asset_bytes(name: str) -> bytes:
    """One of :data:`ASSETS` (the page or the module), from the installed package."""
    return resources.files("sod100k.web").joinpath("assets", name).read_bytes()


def model_manifest(name: str, size: int, quantization: str) -> dict:
    """What ``model.json`` says: how the page should call ``load()`` for this model."""
    return {
        "format": "sod100k.web/1",
        "model": name,
        "onnx": "model.onnx",
        "size": size,
        "quantization": quantization,
        "sod100k": __version__,
        "onnxruntime_web": RUNTIME_VERSION,
    }


def write_bundle(
    out_dir: str | Path,
    onnx_model: bytes,
    name: str,
    size: int = 224,
    quantization: str = "truncate",
    source: str | None = None,
    force: bool = False,
) -> list[Path]:
    """Write the static bundle for ``onnx_model`` into ``out_dir``.

    Args:
        out_dir: the folder; created if missing. One with files in it is refused unless
            ``force`` (then only the bundle's own files are replaced).
        onnx_model: the graph (``sod100k.infer.onnx_export.export_bytes``).
        name: the model's name, shown by the page.
        size: network input side the page uses.
        quantization: ``"truncate"`` (CSNet) or ``"round"``.
        source: where the weights came from (for ``NOTICE.txt``).
        force: replace the files of an earlier bundle in ``out_dir``.

    Returns:
        The files written.

    Raises:
        RuntimeMissingError: the onnxruntime-web files are not installed.
        BundleExistsError: ``out_dir`` is not empty and ``force`` is false.
    """
    runtime = find_runtime()  # first: fail before anything is written
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BundleExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise BundleExistsError(f"{out} is not empty; pass --force to replace its bundle files")
    manifest = model_manifest(name, size, quantization)
    files: dict[str, bytes] = {n: asset_bytes(n) for n in ASSETS}
    files["model.onnx"] = onnx_model
    files["model.json"] = (json.dumps(manifest, indent=2) + "\n").encode()
    files["NOTICE.txt"] = NOTICE.format(
        version=__version__, runtime=RUNTIME_VERSION, source=source or name
    ).encode()
    written = []
    for rel, data in files.items():
        atomic_write_bytes(out / rel, data)
        written.append(out / rel)
    for rel in RUNTIME_FILES:
        with (runtime / rel).open("rb") as src:
            atomic_save(out / "ort" / rel, lambda f, src=src: shutil.copyfileobj(src, f))
        written.append(out / "ort" / rel)
    atomic_write_bytes(out / "ort" / "VERSION", f"{RUNTIME_VERSION}\n".encode())
    written.append(out / "ort" / "VERSION")
    return written
