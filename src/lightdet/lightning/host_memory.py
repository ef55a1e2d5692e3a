"""The host allocator, set for training: freed tensor memory is kept for the next step.

glibc's ``malloc`` serves every block above its mmap threshold (128 KiB at first, raised to at
most 32 MiB as blocks are freed) with a fresh ``mmap`` and returns it with ``munmap`` when the
tensor is freed: each training step then touches its activations' pages anew, and the kernel
zeroes every page on first touch. With the threshold and the trim threshold at 1 GiB (blocks
up to 1 GiB from the heap, freed memory kept up to 1 GiB), the next step reuses them (SSDlite's
page faults and step time, before and after: benchmarks/README.md). The cost: the process
keeps up to 1 GiB of freed memory instead of returning it to the system (the next step needs
it again). Loader workers forked after this inherit it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3


def keep_freed_memory(limit_bytes: int = 2**30) -> bool:
    """Let glibc serve blocks up to ``limit_bytes`` from its heap and keep up to that much freed
    memory; True when set (Linux with glibc), False elsewhere (nothing changed)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries without mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    done = bool(mallopt(M_MMAP_THRESHOLD, limit_bytes)) and bool(
        mallopt(M_TRIM_THRESHOLD, limit_bytes)
    )
    if done:
        log.debug("host allocator: blocks up to %d MiB from the heap", limit_bytes >> 20)
    return done
