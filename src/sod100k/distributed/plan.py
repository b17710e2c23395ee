"""Planning a run whose inputs or output are filesystem URIs (``s3://``, ``file://`` ...).

The rules are the local planner's (:func:`sod100k.infer.inputs.plan_run`) for a folder
output: a folder's images keep their sub-folder layout under ``-o``, a file lands there
by its stem, a glob's matches keep their layout below the pattern's fixed part; every
output is a ``.png``. Hidden names are left out, files under the output prefix are never
inputs, and two inputs that would write the same output are failures. Local paths may
be mixed in; they become ``file://`` URIs.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from sod100k.distributed.storage import is_uri, remote
from sod100k.infer.inputs import has_image_suffix

_GLOB_MAGIC = re.compile(r"[*?[]")


@dataclass
class UriPlan:
    """The ``(src, dst, name)`` items of a run and what will not run."""

    items: list[tuple[str, str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


def as_uri(location: str) -> str:
    """``location`` as a URI: paths become ``file://`` URIs of their absolute form."""
    return location if is_uri(location) else "file://" + os.path.abspath(location)


def plan_uris(inputs: list[str], output: str, skip_existing: bool = False) -> UriPlan:
    """List the images of ``inputs`` (paths, URIs, globs) and name their outputs under ``output``.

    Args:
        inputs: files, folders and glob patterns, as paths or URIs.
        output: the output folder, a path or URI.
        skip_existing: leave out items whose output exists.

    Returns:
        The :class:`UriPlan`.

    Raises:
        ValueError: an input or the output on a filesystem pyarrow cannot open.
    """
    from pyarrow import fs as pafs

    plan = UriPlan()
    out = as_uri(output).rstrip("/")
    out_fs = remote(out)
    out_path = out_fs.path(out)
    claimed: dict[str, str] = {}
    for arg in inputs:
        uri = as_uri(arg)
        where = remote(uri)
        path = where.path(uri)
        pattern = _GLOB_MAGIC.search(path)
        base = _glob_base(path) if pattern else path
        info = where.fs.get_file_info(base)
        if info.type == pafs.FileType.NotFound:
            plan.failed.append((arg, "no such file or folder"))
            continue
        if info.type == pafs.FileType.File and not pattern:
            found, root = [path], str(PurePosixPath(path).parent)
        else:
            if where.fs is out_fs.fs and out_path.rstrip("/") == base.rstrip("/"):
                plan.failed.append((arg, "the output folder is this input folder"))
                continue
            selector = pafs.FileSelector(base, recursive=True)
            listed = [i.path for i in where.fs.get_file_info(selector) if i.is_file]
            found = []
            for p in sorted(listed):
                rel = p[len(base) :].lstrip("/")
                if any(part.startswith(".") for part in rel.split("/")):
                    continue
                if where.fs is out_fs.fs and _under(p, out_path):
                    continue  # an output of this run
                if pattern and not fnmatch.fnmatchcase(p, path):
                    continue
                if has_image_suffix(p):
                    found.append(p)
                else:
                    plan.skipped.append(where.uri(p))
            root = base
            if not found:
                what = "no image file matches this pattern" if pattern else "no images found"
                plan.failed.append((arg, what))
        for p in found:
            rel = PurePosixPath(p[len(root) :].lstrip("/")).with_suffix(".png")
            src, dst = where.uri(p), f"{out}/{rel}"
            name = src if is_uri(arg) else p
            if dst == src:
                plan.failed.append((name, f"output {dst} would overwrite an input"))
            elif dst in claimed:
                plan.failed.append((name, f"output {dst} is already the output of {claimed[dst]}"))
            else:
                claimed[dst] = name
                plan.items.append((src, dst, name))
    if skip_existing and plan.items:
        infos = out_fs.fs.get_file_info([out_fs.path(dst) for _, dst, _ in plan.items])
        kept = []
        for item, info in zip(plan.items, infos, strict=True):
            if info.type == pafs.FileType.File:
                plan.existing.append(item[1])
            else:
                kept.append(item)
        plan.items = kept
    return plan


def _glob_base(path: str) -> str:
    parts = []
    for part in path.split("/")[:-1]:
        if _GLOB_MAGIC.search(part):
            break
        parts.append(part)
    return "/".join(parts) or "/"


def _under(path: str, folder: str) -> bool:
    folder = folder.rstrip("/")
    return path == folder or path.startswith(folder + "/")
