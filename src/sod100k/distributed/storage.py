"""Reading inputs and writing outputs by location: a local path or a pyarrow filesystem URI.

Workers of a cluster read and write where the driver planned: plain paths must name the
same files on every node (shared storage), URIs (``s3://``, ``gs://``, ``hdfs://``,
``file://`` ...) go through :mod:`pyarrow.fs` wherever the user has its filesystem
support and credentials. Writes are atomic in either case: a local or HDFS output is
written to a temporary name beside it and renamed; an object-store output is one upload,
which the store makes visible only once it is complete.
"""

from __future__ import annotations

import contextlib
import functools
import re
import secrets
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sod100k.data.images import ImageError, read_image_bytes
from sod100k.utils.files import atomic_write_bytes

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: pyarrow filesystems whose writes become visible only when complete (one upload).
OBJECT_STORES = ("s3", "gcs", "abfs")


def is_uri(location: str) -> bool:
    """Whether ``location`` is a ``scheme://`` URI rather than a path."""
    return bool(_URI.match(location))


@dataclass(frozen=True)
class Remote:
    """The pyarrow filesystem behind a URI prefix, and the mapping between its paths and URIs.

    Object stores put the bucket in the path (``s3://b/k`` is ``b/k``); others keep the
    authority out of it (``hdfs://host:8020/p`` is ``/p``, ``file:///x`` is ``/x``).
    """

    fs: object  # pyarrow.fs.FileSystem
    #: What a path on ``fs`` is prefixed with to make its URI.
    prefix: str

    def path(self, uri: str) -> str:
        return uri[len(self.prefix) :]

    def uri(self, path: str) -> str:
        return self.prefix + path


@functools.lru_cache(maxsize=32)
def _remote_root(scheme: str, authority: str) -> Remote:
    from pyarrow import fs

    filesystem, root = fs.FileSystem.from_uri(f"{scheme}://{authority}/")
    in_path = root.strip("/") == authority
    return Remote(filesystem, f"{scheme}://" if in_path else f"{scheme}://{authority}")


def remote(uri: str) -> Remote:
    """The filesystem of ``uri`` (resolved once per ``scheme://authority``).

    Raises:
        ValueError: pyarrow does not know the scheme or cannot set up the filesystem; the
            message names the URI.
    """
    scheme, rest = uri.split("://", 1)
    try:
        return _remote_root(scheme, rest.split("/", 1)[0])
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError / ArrowNotImplementedError
        raise ValueError(f"{uri}: cannot open this filesystem ({_first_line(e)})") from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def read_bytes(location: str, name: str | None = None) -> bytes:
    """The bytes of the file at ``location`` (path or URI), non-empty.

    Args:
        location: a path or URI.
        name: how messages name the file (default: ``location``).

    Raises:
        ImageError: it cannot be read or is empty; the message names it.
    """
    name = name or location
    if not is_uri(location):
        return read_image_bytes(location, name)
    try:
        where = remote(location)
        with where.fs.open_input_stream(where.path(location)) as f:
            data = f.read()
    except (OSError, ValueError) as e:
        raise ImageError(f"{name}: cannot read file ({_first_line(e)})") from e
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    return data


def write_bytes(location: str, data: bytes) -> None:
    """Write ``data`` to ``location`` atomically (see the module docstring).

    Raises:
        OSError: the write failed; nothing is left at ``location``.
    """
    if not is_uri(location):
        atomic_write_bytes(location, data)
        return
    where = remote(location)
    fs, path = where.fs, where.path(location)
    if fs.type_name in OBJECT_STORES:
        with fs.open_output_stream(path) as f:
            f.write(data)
        return
    parent = PurePosixPath(path).parent
    fs.create_dir(str(parent), recursive=True)
    # The same temporary naming as utils.files: hidden, so folder scans never take it.
    tmp = str(parent / f".{PurePosixPath(path).name}.{secrets.token_hex(4)}.tmp")
    try:
        with fs.open_output_stream(tmp) as f:
            f.write(data)
        fs.move(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            fs.delete_file(tmp)
        raise


def exists(location: str) -> bool:
    """Whether a file is at ``location`` (path or URI)."""
    if not is_uri(location):
        return Path(location).is_file()
    from pyarrow import fs

    where = remote(location)
    return where.fs.get_file_info(where.path(location)).type == fs.FileType.File
