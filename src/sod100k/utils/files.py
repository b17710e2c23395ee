"""File helpers: atomic writes, so that a crash never leaves a half-written output."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


def sod100k_home() -> Path:
    """``$SOD100K_HOME``, or ``~/.cache/sod100k``: where weights are looked up and caches
    kept."""
    return Path(os.environ.get("SOD100K_HOME") or Path.home() / ".cache" / "sod100k")


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it over ``path``.

    The rename is atomic on POSIX, so readers see the old file or the new one, never a
    partial one. On error the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file 0600; give it the mode a plain open() would (0666 less
        # the umask), or the permissions ``path`` already had.
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


#: Read once at import (os.umask can only be read by setting it, which is not thread-safe).
_UMASK = _read_umask()


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_UMASK


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save(path: str | Path, writer: Callable[[IO], None]) -> None:
    """Call ``writer(file)`` on a temporary file and move the result to ``path``."""
    with atomic_open(path, "wb") as f:
        writer(f)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that needs a file name, not a file.

    Some writers (FFmpeg muxers that re-read their output, for instance) must open the
    file themselves. Whatever is at the yielded path on success is synced and renamed
    over ``path``; on error it is removed and ``path`` is untouched. The temporary name
    keeps ``path``'s suffix, for writers that pick a format by it.

    Args:
        path: the final output path.

    Yields:
        The temporary path to write to (it exists, empty).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    try:
        os.fchmod(fd, _mode_for(path))
        os.close(fd)
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
