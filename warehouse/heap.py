"""Freed memory kept for reuse during allocation-heavy NumPy work (glibc only).

glibc hands large freed blocks back to the kernel at once: a block above the mmap
threshold is unmapped when freed, and the heap's free top is trimmed past the trim
threshold. Work that allocates and frees arrays of the same sizes batch after batch (the
canvas materializer's runs of fields) then takes fresh pages every time, with a page
fault per 4 KiB page, which on a virtual machine costs more than the arithmetic.

Inside `retained_heap()` freed blocks stay in the heap for the next allocation. On
leaving, the free memory is handed back (`malloc_trim`) and the thresholds are left at
the largest values glibc's own adjustment reaches. With another C library it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
RETAIN = 2**30  # blocks up to this size come from the heap, and freed ones stay there
# glibc's dynamic mmap threshold stops at DEFAULT_MMAP_THRESHOLD_MAX (32 MiB on 64-bit)
# and sets the trim threshold to twice it: where long-running numeric work settles anyway
SETTLED_MMAP, SETTLED_TRIM = 32 * 2**20, 64 * 2**20

_lock = threading.Lock()
_holders = 0


@cache
def _glibc() -> ctypes.CDLL | None:
    """The C library, when it is glibc (has mallopt and malloc_trim)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None
    return libc


def supported() -> bool:
    """Whether `retained_heap` has an effect here (glibc)."""
    return _glibc() is not None


@contextmanager
def retained_heap() -> Iterator[None]:
    """Keep freed memory in the heap while the block runs (nestable, thread-safe); hand it
    back when the last holder leaves."""
    global _holders
    libc = _glibc()
    if libc is None:
        yield
        return
    with _lock:
        if _holders == 0:
            libc.mallopt(M_MMAP_THRESHOLD, RETAIN)
            libc.mallopt(M_TRIM_THRESHOLD, 2 * RETAIN - 1)
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                libc.mallopt(M_MMAP_THRESHOLD, SETTLED_MMAP)
                libc.mallopt(M_TRIM_THRESHOLD, SETTLED_TRIM)
                libc.malloc_trim(0)
