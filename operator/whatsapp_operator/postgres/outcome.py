"""What keeping a tenant's row in sync did (`SyncResult`), and the row stage's part of the
tenant's status: the `Synced` condition, `status.database`, its Events. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.conditions import Condition, Reason
from whatsapp_operator.model.fragment import Event, Fragment


@dataclass(frozen=True)
class SyncResult:
    """The outcome of keeping the tenant's Postgres row in sync (see sync.py)."""

    status: c.Status
    reason: str
    message: str
    row_id: int | None = None
    wrote: bool = False
    at: datetime | None = None  # when the row was last written by this sync (None: no write)
    drift_columns: tuple[str, ...] = ()
    adopted: bool = False
    # columns that held a plaintext value while encrypting, now rewritten sealed (crypto.py)
    plaintext_columns: tuple[str, ...] = ()

    @property
    def transient(self) -> bool:
        return self.reason == Reason.DATABASE_UNAVAILABLE

    @classmethod
    def synced(
        cls,
        row_id: int,
        *,
        wrote: bool,
        at: datetime | None,
        drift_columns: tuple[str, ...] = (),
        adopted: bool = False,
        plaintext_columns: tuple[str, ...] = (),
    ) -> SyncResult:
        # The message must not depend on whether this pass wrote, or the status would change
        # again on the next pass (status.database.syncedAt records the writes).
        return cls(
            "True",
            Reason.SYNCED,
            f"row {row_id} of tenant_whatsapp_config matches the cluster",
            row_id,
            wrote,
            at,
            drift_columns,
            adopted,
            plaintext_columns,
        )

    @classmethod
    def unavailable(cls, message: str) -> SyncResult:
        return cls("False", Reason.DATABASE_UNAVAILABLE, f"PostgreSQL unavailable: {message}")

    @classmethod
    def failed(cls, reason: str, message: str, row_id: int | None = None) -> SyncResult:
        return cls("False", reason, message, row_id)

    @classmethod
    def skipped(cls, message: str) -> SyncResult:
        return cls("Unknown", Reason.NOT_SYNCED, message)


def sync_fragment(sync: SyncResult, stored: Mapping[str, Any], token_storage: str) -> Fragment:
    """The row stage's report: `Synced` (which `Ready` waits for), `status.database` (kept
    from `stored`, the status as stored, and updated), and an Event for drift or adoption."""
    return Fragment(
        condition=Condition(c.SYNCED, sync.status, sync.reason, sync.message),
        gates_ready=True,
        status={"database": _database_status(sync, stored, token_storage)},
        events=tuple(_sync_events(sync)),
    )


def _database_status(
    sync: SyncResult, stored: Mapping[str, Any], token_storage: str
) -> dict[str, Any]:
    database = dict(stored.get("database") or {})
    if sync.row_id is not None:
        database["rowId"] = sync.row_id
    if sync.at is not None:
        database["syncedAt"] = c.rfc3339(sync.at)
    database["tokenStorage"] = token_storage
    return database


def _sync_events(sync: SyncResult) -> list[Event]:
    events = []
    if sync.drift_columns:
        events.append(
            Event(
                "Warning",
                Reason.DRIFT_REPAIRED,
                f"row {sync.row_id} was changed outside the operator; restored columns: "
                + ", ".join(sync.drift_columns),
            )
        )
    if sync.adopted:
        events.append(Event("Normal", Reason.ROW_ADOPTED, f"adopted existing row {sync.row_id}"))
    if sync.plaintext_columns:
        events.append(
            Event(
                "Warning",
                Reason.PLAINTEXT_TOKEN_REPLACED,
                f"row {sync.row_id} held a plaintext token in "
                f"{', '.join(sync.plaintext_columns)} while token storage is encrypted: not "
                "used, replaced with the encrypted token from the cluster's Secret",
            )
        )
    return events
