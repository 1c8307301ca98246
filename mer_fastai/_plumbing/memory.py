"""Freed memory kept for reuse: big tensors without a page fault on every byte.

glibc's malloc serves blocks above its mmap threshold (at most 32 MiB) with fresh `mmap` pages and gives them
back with `munmap` when freed. A CNN on the CPU allocates such activations in every batch, so the kernel zeroes
and maps every page again, batch after batch: for musicnn's body on a batch of 32 patches that was about as much
system time as the convolutions took user time (`benchmarks/musicnn_speed.py`, BENCHMARKS.md "musicnn speed").
`reuse_freed_memory` makes malloc take every block from its heap and keep up to `KEEP_BYTES` of freed memory
there: the next batch reuses the same pages. The numbers computed are the same; only where memory comes from
changes. A no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters (glibc malloc.h)
KEEP_BYTES = 2**31 - 1  # freed heap memory kept for reuse instead of returned to the system


@functools.cache
def reuse_freed_memory() -> bool:
    """Make this process's malloc keep freed memory for reuse (once); whether the C library accepted it."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows): malloc as it is
        return False
