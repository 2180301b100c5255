"""The operator's memory footprint: freed memory given back to the system (glibc's malloc; a
no-op with any other libc), and the tenants' bodies that kopf keeps made smaller.

Python's own allocator serves objects of up to 512 bytes; everything larger (watch-event
lines, dicts' tables, JSON strings, the publisher's shard documents) comes from malloc, whose
heap only shrinks from its top. After thousands of tenants start, most of that heap is free
but scattered between a few live blocks, and it stays resident: at 2,000 tenants 188 MB of a
239 MB heap was free, which `malloc_trim` handed back (RSS 492 -> 321 MB) in 18 ms.

- `tune()`, once at start and before any thread: a fixed mmap threshold, so that large
  buffers are mapped and unmapped on their own instead of growing the heap (glibc otherwise
  raises the threshold to the largest block freed so far: one large Secret and every later
  large buffer stays on the heap);
- `trimming()`, a background loop: `malloc_trim(0)` now and then, which returns the free
  pages in the middle of the heap too (cheap: it walks the free blocks only);
- `share_strings()`: one copy of each key and short string across all the bodies kopf keeps.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import sys
from typing import Any

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # mallopt parameter numbers, from glibc's malloc.h
MMAP_THRESHOLD = 256 * 1024  # bytes: blocks at least this large are mapped on their own
TRIM_INTERVAL = 60.0  # seconds between two trims
SHARED_MAX = 32  # characters: string values up to this long are shared (see `share_strings`)


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    # glibc only: musl and macOS have neither call (and their own return policies).
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None
    return libc


_LIBC = _libc()


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                     "uordblks", "fordblks", "keepcost")
    ]  # fmt: skip


def tune() -> bool:
    """Fix malloc's mmap threshold (call before threads start); False where not glibc."""
    if _LIBC is None:
        return False
    return bool(_LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def trim() -> bool:
    """Return the heap's free pages to the system; True if any were returned."""
    if _LIBC is None:
        return False
    return bool(_LIBC.malloc_trim(0))


def heap_stats() -> str:
    """malloc's heap, for the SIGUSR1 diagnostics (glibc 2.33+)."""
    if _LIBC is None or not hasattr(_LIBC, "mallinfo2"):
        return "unavailable (not glibc)"
    mallinfo2 = _LIBC.mallinfo2
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return (
        f"heap {info.arena / 1e6:.1f} MB ({info.uordblks / 1e6:.1f} MB in use, "
        f"{info.fordblks / 1e6:.1f} MB free), {info.hblkhd / 1e6:.1f} MB mapped on their own"
    )


async def trimming(interval: float = TRIM_INTERVAL) -> None:
    """Trim the heap every `interval` seconds (runs as long as the operator does)."""
    if _LIBC is None:
        log.debug("malloc_trim unavailable (not glibc): freed heap memory stays resident")
        await asyncio.Event().wait()  # a background task of the operator must not end
    while True:
        await asyncio.sleep(interval)
        trim()


def share_strings(value: Any) -> Any:
    """Make a parsed JSON tree (changed in place) use one shared copy of each key and of each
    short string value: every watch event is parsed anew, so each tenant's body otherwise
    holds its own "type", "status", "lastTransitionTime", "True", reason names... A tenant's
    body (managedFields dropped) takes 7 KB instead of 14 KB; 50 us per event.
    Strings are interned with `sys.intern`: a string no body uses any more is freed."""
    if isinstance(value, dict):
        items = [(sys.intern(k), share_strings(v)) for k, v in value.items()]
        value.clear()
        value.update(items)
    elif isinstance(value, list):
        value[:] = [share_strings(v) for v in value]
    elif isinstance(value, str) and len(value) <= SHARED_MAX:
        return sys.intern(value)
    return value
