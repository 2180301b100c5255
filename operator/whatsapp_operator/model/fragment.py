"""What each stage of a tenant's pass reports, and what the pass as a whole decides. Pure.

A stage (token renewal, row sync, publication) plans from the gathered facts, applies, and
returns a `Fragment`: its own condition, its part of the status, its Events and audit notes.
`tenant.compose` builds the one `Decision` of a pass from the fragments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.conditions import Condition


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class AuditNote:
    """An entry for the audit trail (postgres/audit.py): an event name, a fingerprint, a
    detail."""

    event: str
    fingerprint: str | None
    detail: str


@dataclass(frozen=True)
class Fragment:
    """One stage's report. `gates_ready`: `Ready` waits for the stage's condition (Synced);
    otherwise the condition is a warning beside `Ready` (TokenRotation)."""

    condition: Condition | None = None
    gates_ready: bool = False
    status: Mapping[str, Any] = field(default_factory=dict)  # top-level status keys it owns
    token: Mapping[str, Any] = field(default_factory=dict)  # fields it adds to status.token
    events: tuple[Event, ...] = ()
    audit: tuple[AuditNote, ...] = ()


@dataclass(frozen=True)
class Decision:
    """The status to store, the Events to post and the audit entries to write: one per pass."""

    status: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    audit: list[AuditNote] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        ready = c.find(self.status.get("conditions", ()), c.READY)
        return ready is not None and ready.get("status") == "True"
