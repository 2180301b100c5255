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
- `PackedBody`: a tenant's body as the scheduler keeps it between passes, compact JSON
  compressed against a dictionary of what tenants hold: 0.3 KB instead of 13.8 KB parsed.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import json
import logging
import zlib
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # mallopt parameter numbers, from glibc's malloc.h
MMAP_THRESHOLD = 256 * 1024  # bytes: blocks at least this large are mapped on their own
TRIM_INTERVAL = 15.0  # seconds between two trims (one took 18 ms on a 239 MB heap)


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


class PackedBody:
    """An object's body between uses: compact JSON, zlib-compressed (with `dictionary`, a
    preset dictionary of what such bodies usually hold: body_dictionary.py), without the
    fields no reader needs (metadata.managedFields, the API server's field-ownership records,
    17 KB of a tenant's 31 parsed; and `drop_annotations`). A Ready tenant's body: 0.3 KB with
    the tenants' dictionary, 1.1 KB without one, 13.8 KB parsed (tests/unit/test_memory.py).
    Packing takes about 85 us per watch event, `unpack` about 25 us once a pass (timeit, that
    tenant); `resource_version` is kept beside it, for comparisons without unpacking."""

    __slots__ = ("_data", "_dictionary", "resource_version")

    def __init__(
        self,
        body: Mapping[str, Any],
        drop_annotations: tuple[str, ...] = (),
        dictionary: bytes = b"",
    ) -> None:
        meta = dict(body.get("metadata") or {})
        meta.pop("managedFields", None)
        if drop_annotations and meta.get("annotations"):
            annotations = meta["annotations"]
            meta["annotations"] = {
                k: v for k, v in annotations.items() if k not in drop_annotations
            }
        slim = {**body, "metadata": meta}
        text = json.dumps(slim, separators=(",", ":")).encode()
        if dictionary:
            packer = zlib.compressobj(zdict=dictionary)
            self._data = packer.compress(text) + packer.flush()
        else:
            self._data = zlib.compress(text)
        self._dictionary = dictionary  # one shared bytes object: a reference, not a copy
        try:
            self.resource_version = int(meta.get("resourceVersion") or 0)
        except (TypeError, ValueError):
            self.resource_version = 0

    def unpack(self) -> dict[str, Any]:
        if self._dictionary:
            unpacker = zlib.decompressobj(zdict=self._dictionary)
            text = unpacker.decompress(self._data) + unpacker.flush()
        else:
            text = zlib.decompress(self._data)
        body: dict[str, Any] = json.loads(text)
        return body

    def __len__(self) -> int:
        return len(self._data)
