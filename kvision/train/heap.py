"""The C heap of a training process: large tensors reused, not mapped and unmapped per step.

glibc's ``malloc`` serves a block above its mmap threshold from a fresh memory map and unmaps
it when freed; the threshold adapts to freed blocks, but only up to 32 MiB. A training step
allocates its gradients anew, and the main job's AlexNet/2 has a 37.7 MB dense kernel: each
step mapped its gradient, faulted its 9,200 pages in and unmapped it again (195,000 page faults
in 20 steps). With the mmap threshold at 64 MiB and the heap trimmed only past 128 MiB of free
space at its top, such blocks are reused from the heap: 29 page faults in the same 20 steps.
``benchmarks/heap_ab.py`` (docs/speed.md, "The C heap"): the main job's system time fell from
18-21 s to 5-6 s and its wall time by 12-22 %, and its peak RSS rose by 31-74 MiB.

Set once per training process (``kvision run``, a resume, a sweep's trial), at the start of
the run. ``KVISION_HEAP=glibc`` leaves glibc's defaults (less memory, more system time), a
user's own ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` wins, and allocators
other than glibc's (macOS, musl) are left alone.
"""

from __future__ import annotations

import ctypes
import os
import platform

#: mallopt's parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 64 * 2**20
TRIM_THRESHOLD = 128 * 2**20
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
#: ``KVISION_HEAP=glibc``: leave malloc as glibc sets it.
SWITCH = "KVISION_HEAP"


def keep_large_blocks() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; whether it was done."""
    if os.environ.get(SWITCH) == "glibc" or any(name in os.environ for name in USER_SETTINGS):
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and (
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    )


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (malloc.h), every field a ``size_t``."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            *("arena", "ordblks", "smblks", "hblks", "hblkhd"),
            *("usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"),
        )
    ]


def heap_usage() -> dict[str, int] | None:
    """glibc's own account of its main heap, in bytes: ``size``, ``in_use``, ``free`` (freed
    and kept) and ``mapped`` (blocks served by maps of their own); None without glibc 2.33+.
    For measuring (``benchmarks/heap_breakdown.py``, ``tests/test_heap.py``)."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return {
        "size": info.arena,
        "in_use": info.uordblks,
        "free": info.fordblks,
        "mapped": info.hblkhd,
    }


__all__ = ["heap_usage", "keep_large_blocks"]
