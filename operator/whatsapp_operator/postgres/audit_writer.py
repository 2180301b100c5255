"""Audit entries written off the tenant loops' path, in batches, and never dropped.

An append takes the chain's global lock (see audit.py) for a few round trips; a thousand
tenants validating at once each waiting for their own append serialised the whole start-up
on that lock. Tenant loops now `submit` (the fields are checked at once, so a refused entry
is still the caller's error) and one task appends whatever has queued in one transaction.
While PostgreSQL is unavailable the entries wait and are retried with backoff; `flush`
gives them a last chance at shutdown.
"""

from __future__ import annotations

import asyncio
import logging

from whatsapp_operator.postgres.audit import AuditEvent, AuditLog, Entry, checked_fields
from whatsapp_operator.postgres.errors import DatabaseError

log = logging.getLogger(__name__)
MAX_BATCH = 500
MAX_PENDING = 100_000  # beyond this (a very long outage) the oldest entries are dropped, loudly
RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class AuditWriter:
    def __init__(self, audit: AuditLog, *, max_batch: int = MAX_BATCH) -> None:
        self.audit = audit
        self.max_batch = max_batch
        self.pending: list[Entry] = []
        self.written = 0
        self.dropped = 0
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def submit(
        self,
        tenant_id: str,
        event: AuditEvent | str,
        actor: str,
        fingerprint: str | None = None,
        detail: str = "",
    ) -> None:
        """Queue one entry. ValueError at once for fields `checked_fields` refuses."""
        checked_fields(tenant_id, event, actor, fingerprint, detail)
        self.pending.append((tenant_id, event, actor, fingerprint, detail))
        if len(self.pending) > MAX_PENDING:
            excess = len(self.pending) - MAX_PENDING
            del self.pending[:excess]
            self.dropped += excess
            log.error("audit: %d entries dropped (PostgreSQL unavailable too long)", excess)
        self._idle.clear()
        self._ready.set()

    async def run(self) -> None:
        failures = 0
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self.pending:
                batch = self.pending[: self.max_batch]
                try:
                    await self.audit.append_many(batch)
                except DatabaseError as exc:
                    delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                    failures += 1
                    log.warning(
                        "audit: %d entries waiting, retry in %gs: %s", len(self.pending), delay, exc
                    )
                    await asyncio.sleep(delay)
                    continue
                failures = 0
                del self.pending[: len(batch)]
                self.written += len(batch)
            self._idle.set()

    async def flush(self, seconds: float) -> bool:
        """Wait until everything submitted is written (True), or `seconds`."""
        try:
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            log.warning("audit: %d entries not written at shutdown", len(self.pending))
            return False
        return True
