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

from whatsapp_operator.model.conditions import Reason
from whatsapp_operator.postgres.crypto import TokenCipher
from whatsapp_operator.postgres.database import Database
from whatsapp_operator.postgres.errors import DatabaseError, DatabaseUnavailable
from whatsapp_operator.postgres.outcome import SyncResult
from whatsapp_operator.postgres.rows import DesiredRow, StoredRow, WriteKind, plan_write

log = logging.getLogger(__name__)
ATTEMPTS = 3
SEALED = ("access_token", "verify_token")  # plaintext there is refused while encrypting


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

    async def sync(
        self, desired: DesiredRow, *, adopt: bool, approved: bool = False, bound: bool = True
    ) -> SyncResult:
        """Keep `desired` stored. `adopt`, `approved`, `bound`: see rows.plan_write."""
        if not self.health.available:
            return SyncResult.unavailable(self.health.reason)
        try:
            return await self._sync(desired, Access(adopt, approved, bound))
        except DatabaseUnavailable as exc:
            self.health.lost(str(exc))
            return SyncResult.unavailable(self.db.public(str(exc)))
        except DatabaseError as exc:
            log.warning("tenant %s: database error: %s", desired.tenant_id, exc)
            return SyncResult.failed("DatabaseError", self.db.public(str(exc)))

    async def _sync(self, desired: DesiredRow, access: Access) -> SyncResult:
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
                adopt=access.adopt,
                approved=access.approved,
                bound=access.bound,
                stored_verify=stored_verify,
                verify_stale=verify_stale,
            )
            if plan.kind in REFUSED:
                assert stored is not None
                return refusal(plan.kind, desired.tenant_id, stored, access)
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
                    plaintext_columns=tuple(
                        c
                        for c in SEALED
                        if c in plan.columns and self.cipher.is_plaintext(getattr(stored, c))
                    ),
                )
        return SyncResult.unavailable("the row kept changing while being written; retrying")


@dataclass(frozen=True)
class Access:
    """What the tenant may do to a row it did not write (rows.plan_write)."""

    adopt: bool
    approved: bool
    bound: bool


REFUSED = (WriteKind.NOT_MANAGED, WriteKind.OTHER_NAMESPACE, WriteKind.ADOPTION_NOT_APPROVED)
APPROVAL = (
    "the platform team's approval: a WhatsAppTenantPolicy selecting this namespace with "
    "adoptExistingRows: true"
)


def refusal(kind: WriteKind, tenant_id: str, stored: StoredRow, access: Access) -> SyncResult:
    """Synced=False for a row the tenant may not write. A row of another namespace is not
    described (neither its namespace nor its id): the tenant team may not see it."""
    if kind is WriteKind.OTHER_NAMESPACE:
        return SyncResult.failed(
            Reason.ROW_OWNED_BY_ANOTHER_NAMESPACE,
            f"the row for tenant_id {tenant_id!r} was written for a WhatsAppTenant of another "
            "namespace and is never handed to this one; moving a tenant between namespaces "
            f"needs spec.adoptExistingRow: true and {APPROVAL} (docs/tenancy.md)",
        )
    owner = f"managed by {stored.managed_by or 'someone else'!r}"
    if kind is WriteKind.ADOPTION_NOT_APPROVED:
        return SyncResult.failed(
            Reason.ADOPTION_NOT_APPROVED,
            f"a row for tenant_id {tenant_id!r} exists (id {stored.id}), {owner}; "
            f"spec.adoptExistingRow asks to take it over, which needs {APPROVAL}",
            row_id=stored.id,
        )
    approval = f", with {APPROVAL}" if access.bound else ""
    return SyncResult.failed(
        Reason.ROW_NOT_MANAGED,
        f"a row for tenant_id {tenant_id!r} exists (id {stored.id}) and is {owner}; set "
        f"spec.adoptExistingRow: true to let the operator take it over{approval}",
        row_id=stored.id,
    )


@dataclass
class DatabaseHealth:
    """Whether PostgreSQL answers. While it does not, tenants skip it (one prober tries for
    everyone) and are woken together when it is back, so they converge within seconds.
    `reason` goes into tenants' status: without the database's user and host (`public`)."""

    db: Database
    available: bool = True
    reason: str = ""
    probe_interval: float = 1.0

    def __post_init__(self) -> None:
        self._back = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.on_recovery: list[Callable[[], None]] = []

    def lost(self, reason: str) -> None:
        self.reason = self.db.public(reason)
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
                self.reason = self.db.public(str(exc))
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
