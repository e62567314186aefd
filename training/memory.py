"""Keeping a training run's resident memory at what one step needs.

glibc's malloc serves a freed block back to later requests from its heap and, after the first
large block is freed, raises its mmap threshold to that block's size (up to 32 MB): a step's
activation tensors then live on a heap that fragments and is not returned, and a run's RSS
settles well above what any step holds at once (bc5cdr, batch 32 x 128: 1.8 GB against 1.3 GB;
docs/results.md). A fixed threshold keeps every block of 1 MB or more in a mapping of its own,
returned to the system when freed, at the cost of fresh pages each step.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
THRESHOLD = 1 << 20


def steady_heap(threshold: int = THRESHOLD) -> bool:
    """Fix glibc's mmap and trim thresholds for this process; False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl, for one, has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, threshold) == 1 and mallopt(M_TRIM_THRESHOLD, threshold) == 1
