"""Keeping a tenant's row in `tenant_whatsapp_config` true to the cluster.

Thin on purpose: read the stored row, ask the pure `rows.plan_write` what to do, do it with
optimistic concurrency (a row changed between read and write is re-read, never overwritten
blindly), and report the outcome as a `SyncResult` (outcome.py) for the pass. Two operator
processes racing cannot duplicate a row (unique tenant_id, insert-if-absent) or lose an
update (CAS).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from whatsapp_operator.postgres.crypto import TokenCipher
from whatsapp_operator.postgres.database import Database
from whatsapp_operator.postgres.errors import DatabaseError, DatabaseUnavailable
from whatsapp_operator.postgres.outcome import SyncResult
from whatsapp_operator.postgres.rows import DesiredRow, StoredRow, WriteKind, plan_write

log = logging.getLogger(__name__)
ATTEMPTS = 3


class RowSync:
    def __init__(self, db: Database, cipher: TokenCipher, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.cipher = cipher
        self.clock = clock
        self.health = DatabaseHealth(db)

    def _sealed(
        self, desired: DesiredRow, stored: StoredRow | None, stored_token: str | None
    ) -> str:
        """The access_token column value: the stored ciphertext when it already holds the
        token under the primary key (no needless rewrite), else freshly sealed."""
        if desired.token is None or self.cipher.mode == "none":
            return ""
        if (
            stored is not None
            and stored_token == desired.token
            and not self.cipher.needs_rekey(stored.access_token)
        ):
            return stored.access_token
        return self.cipher.seal(desired.token, desired.tenant_id)

    def _verify(self, desired: DesiredRow, stored: StoredRow | None) -> tuple[str | None, bool]:
        """(the stored verify_token decrypted, whether its stored form is stale)."""
        value = stored.verify_token if stored is not None else None
        if not value:
            return None, False
        plain = self.cipher.open(value, desired.tenant_id, "verify_token")
        return plain, self.cipher.needs_rekey(value)

    def _verify_value(
        self, desired: DesiredRow, stored: StoredRow | None, plain: str | None, stale: bool
    ) -> str | None:
        """The verify_token column value: the stored one while it holds the same token in
        the current form (no needless rewrite), else freshly sealed; None: NULL (the `none`
        mode)."""
        if desired.verify_token is None or self.cipher.mode == "none":
            return None
        if stored is not None and plain == desired.verify_token and not stale:
            return stored.verify_token
        return self.cipher.seal(desired.verify_token, desired.tenant_id, "verify_token") or None

    async def release(self, tenant_id: str, uid: str, policy: str) -> bool:
        """Apply the deletion policy to the tenant's row; True if a row was changed.

        Raises DatabaseUnavailable: the caller keeps the finalizer and retries."""
        if policy == "Retain":
            return False
        if policy == "Delete":
            return await self.db.delete(tenant_id, uid)
        return await self.db.deactivate(tenant_id, uid)

    async def sync(self, desired: DesiredRow, *, adopt: bool) -> SyncResult:
        if not self.health.available:
            return SyncResult.unavailable(self.health.reason)
        try:
            return await self._sync(desired, adopt)
        except DatabaseUnavailable as exc:
            self.health.lost(str(exc))
            return SyncResult.unavailable(str(exc))
        except DatabaseError as exc:
            log.warning("tenant %s: database error: %s", desired.tenant_id, exc)
            return SyncResult.failed("DatabaseError", str(exc))

    async def _sync(self, desired: DesiredRow, adopt: bool) -> SyncResult:
        for _ in range(ATTEMPTS):
            stored = await self.db.fetch(desired.tenant_id)
            if stored is not None and stored.configured and stored.managed_by == desired.managed_by:
                desired = replace(desired, configured=True)  # once Ready, configured stays
            stored_token = (
                self.cipher.open(stored.access_token, desired.tenant_id) if stored else None
            )
            stored_verify, verify_stale = self._verify(desired, stored)
            plan = plan_write(
                stored,
                desired,
                stored_token=stored_token,
                store_token=self.cipher.mode != "none",
                adopt=adopt,
                stored_verify=stored_verify,
                verify_stale=verify_stale,
            )
            if plan.kind is WriteKind.NOT_MANAGED:
                assert stored is not None
                return SyncResult.failed(
                    "RowNotManaged",
                    f"a row for tenant_id {desired.tenant_id!r} exists (id {stored.id}) and is "
                    f"managed by {stored.managed_by or 'someone else'!r}; set "
                    "spec.adoptExistingRow: true to let the operator take it over",
                    row_id=stored.id,
                )
            if plan.kind is WriteKind.NOOP:
                assert stored is not None
                return SyncResult.synced(stored.id, wrote=False, at=None)
            sealed = self._sealed(desired, stored, stored_token)
            verify = self._verify_value(desired, stored, stored_verify, verify_stale)
            if plan.kind is WriteKind.INSERT:
                row_id = await self.db.insert(desired, sealed, verify)
                if row_id is None:
                    continue  # inserted by someone else meanwhile: read it and decide again
                return SyncResult.synced(row_id, wrote=True, at=self.clock())
            assert stored is not None
            if await self.db.update(stored, desired, sealed, verify):
                return SyncResult.synced(
                    stored.id,
                    wrote=True,
                    at=self.clock(),
                    drift_columns=plan.columns if plan.drift else (),
                    adopted=plan.adopting,
                )
        return SyncResult.unavailable("the row kept changing while being written; retrying")


@dataclass
class DatabaseHealth:
    """Whether PostgreSQL answers. While it does not, tenants skip it (one prober tries for
    everyone) and are woken together when it is back, so they converge within seconds."""

    db: Database
    available: bool = True
    reason: str = ""
    probe_interval: float = 1.0

    def __post_init__(self) -> None:
        self._back = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.on_recovery: list[Callable[[], None]] = []

    def lost(self, reason: str) -> None:
        self.reason = reason
        if self.available:
            log.error("PostgreSQL unavailable: %s", reason)
        self.available = False
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._probe(), name="postgres-prober")

    async def _probe(self) -> None:
        while True:
            await asyncio.sleep(self.probe_interval)
            try:
                await self.db.ping()
                await self.db.migrate()
            except (DatabaseUnavailable, DatabaseError) as exc:
                self.reason = str(exc)
                continue
            self.available, self.reason = True, ""
            log.info("PostgreSQL is back")
            for callback in self.on_recovery:
                callback()
            return

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
