"""The numbers lately read from each WABA's `phone_numbers` list, shared by its tenants' checks.

A business with a tenant per number has one WABA holding them all: each tenant's check
would page through the same list (for N numbers, N checks of up to N/100 pages each, and
Meta's management limit is per WABA). Here the checks of one WABA (and token) take turns, and
a number seen in the list within `ttl` seconds counts as found without a request. A number
not seen is always looked for at Meta: one just added to the WABA never waits for this memo
to expire. Kept per token (its fingerprint): a token only ever benefits from what a read with
the same token showed. Entries expire after `ttl`; nothing else is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable

Key = tuple[str, str]  # (WABA id, token fingerprint)
# Seconds: shorter than the shortest re-check of one tenant (validation.interval >= 1m, less
# 10 % jitter; a finished check never repeats within 30 s), so a tenant's own checks always
# read the list again: only the checks of a WABA's tenants made together share a read.
DEFAULT_TTL = 30.0


class WabaNumbers:
    def __init__(self, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self._clock = clock
        self._seen: OrderedDict[Key, tuple[float, frozenset[str]]] = OrderedDict()
        self._turns: dict[Key, tuple[asyncio.Lock, int]] = {}

    def seen(self, key: Key, phone_number_id: str) -> bool:
        """The number was in the WABA's list, read with this token, less than `ttl` ago."""
        self._expire()
        entry = self._seen.get(key)
        return entry is not None and phone_number_id in entry[1]

    def remember(self, key: Key, ids: Iterable[str]) -> None:
        """What a read of the list showed now, added to what the reads since the entry's
        first one showed (the entry keeps that first read's time: nothing lives past
        `ttl` after it was read)."""
        self._expire()
        entry = self._seen.get(key)
        if entry is None:
            self._seen[key] = (self._clock(), frozenset(ids))
        else:
            self._seen[key] = (entry[0], entry[1].union(ids))

    def __len__(self) -> int:
        return len(self._seen)

    def _expire(self) -> None:
        limit = self._clock() - self.ttl
        while self._seen:
            key, (at, _) = next(iter(self._seen.items()))
            if at > limit:
                break
            del self._seen[key]

    @contextlib.asynccontextmanager
    async def turn(self, key: Key) -> AsyncIterator[None]:
        """One check of this WABA (and token) at a time: the next finds what it read."""
        lock, users = self._turns.get(key) or (asyncio.Lock(), 0)
        self._turns[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._turns[key]
            if users == 1:
                del self._turns[key]
            else:
                self._turns[key] = (lock, users - 1)
