"""Tuning of glibc's allocator for the two ways the package uses memory (elsewhere: no-op).

* A server handles an occasional huge image: afterwards :func:`release_free_memory`
  hands what numpy and OpenCV freed back to the OS.
* A training step allocates and frees the same few hundred activation buffers, many of
  them larger than glibc's 32 MiB ``mmap`` ceiling, so every step maps them afresh and
  page-faults on first touch (a fresh 32 MiB result costs ~14 ms more than writing into
  a reused one). :func:`keep_freed_memory` makes glibc serve every allocation from its
  heap and keep freed memory for reuse, as the long-running training process wants.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_MAX = -4


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if libc is None or not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None  # not glibc
    return libc


def release_free_memory() -> None:
    """Hand freed heap memory back to the OS (glibc's ``malloc_trim``; elsewhere a no-op).

    After a big image, glibc keeps much of what numpy and OpenCV freed in its arenas;
    trimming brings the server's resident size back down for the next request.
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def keep_freed_memory() -> bool:
    """Serve large allocations from the heap and never trim it (glibc ``mallopt``).

    Meant for training processes: the peak resident size stays what the step needs, and
    the step stops paying page faults for its large buffers.

    Returns:
        Whether the allocator was changed (False off glibc).
    """
    libc = _libc()
    if libc is None:
        return False
    ok = libc.mallopt(M_MMAP_MAX, 0) == 1
    # The largest int mallopt accepts: the heap is never trimmed during the run.
    return libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1)) == 1 and ok
