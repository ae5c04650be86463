"""The local stack's heap: give the memory that glibc's malloc keeps after it is freed back to the system.

Every request moto serves runs in a thread of its own, and glibc gives threads arenas of their own; what a
burst allocates there (a scan of a table for a snapshot, a report's pages, an export's body) stays mapped
once freed, so RSS climbs by the peaks of the busiest threads and never comes down while the data held stays
flat. `malloc_trim(0)` returns the free pages of every arena. Elsewhere than glibc this does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _libc() -> Any | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def release_free_memory() -> bool:
    """Give malloc's free pages back to the system; False where there is no glibc to ask."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
