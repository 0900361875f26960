"""`warehouse.heap.retained_heap`: freed arrays stay in the process while it is held, and
go back to the kernel when the last holder leaves."""

from __future__ import annotations

import os

import numpy as np
import pytest

from warehouse import heap

pytestmark = pytest.mark.skipif(
    not heap.supported() or not os.path.exists("/proc/self/statm"),
    reason="glibc and /proc only (elsewhere retained_heap does nothing)",
)
SIZE = 256 * 2**20  # bytes: far above the thresholds glibc settles on (32 / 64 MiB)


def resident() -> int:
    """This process's resident bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def touch_and_free() -> int:
    """Resident bytes after an array of SIZE bytes was written and freed."""
    block = np.ones(SIZE // 8)
    del block
    return resident()


def test_freed_memory_is_kept_while_held_and_handed_back_after():
    base = resident()
    with heap.retained_heap():
        kept = touch_and_free()
        assert kept - base > SIZE // 2  # still resident: the next allocation reuses it
    # half the array's size: margin for whatever else the process holds or frees
    assert kept - resident() > SIZE // 2
    assert touch_and_free() - base < SIZE // 2  # settled thresholds: a big block is unmapped


def test_only_the_last_holder_hands_memory_back():
    with heap.retained_heap():
        with heap.retained_heap():
            kept = touch_and_free()
        assert kept - resident() < SIZE // 2  # the outer holder still keeps it
    assert kept - resident() > SIZE // 2
