"""A tenant's account and number health as `status.health` keeps it between passes. Pure.

`Health` is what Meta's notices said so far (model/health.py applies them), written to and
read back from the tenant's status, so that a restarted operator keeps it. Templates are
remembered by id (`templateStatuses`) so that each is counted once, under its latest status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.notice_ids import Seen
from whatsapp_operator.model.notices import Restriction
from whatsapp_operator.model.recheck import parse_time

STATUS_KEY = "health"
MAX_TEMPLATES = 1000  # templates remembered by id (the oldest notified are forgotten first)
# status.health.templates: a count per status; statuses not listed count as OTHER
TEMPLATE_COUNTS = (
    "APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED", "FLAGGED", "IN_APPEAL", "LOCKED",
    "ARCHIVED", "UNARCHIVED", "PENDING_DELETION", "LIMIT_EXCEEDED",
)  # fmt: skip
OTHER = "OTHER"


@dataclass(frozen=True)
class Health:
    """What the notices said so far (plus the number's quality rating from its Graph check)."""

    quality_rating: str | None = None
    quality_event: str | None = None
    messaging_limit_tier: str | None = None
    restrictions: tuple[Restriction, ...] = ()
    ban_state: str | None = None
    ban_date: str | None = None
    violation_type: str | None = None
    account_event: str | None = None
    account_deleted: bool = False
    name_status: str | None = None
    name_rejection_reason: str | None = None
    capabilities: tuple[tuple[str, int | str], ...] = ()
    templates: tuple[tuple[str, str], ...] = ()  # (template id, status), oldest first
    last_notice: tuple[str, datetime] | None = None  # kind, when
    recent: Seen = ()  # the notices applied lately (notice_ids.py): redeliveries recognised

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, status in self.templates:
            key = status if status in TEMPLATE_COUNTS else OTHER
            out[key] = out.get(key, 0) + 1
        return out

    def to_status(self) -> dict[str, Any]:
        scalars = {
            "qualityRating": self.quality_rating, "qualityEvent": self.quality_event,
            "messagingLimitTier": self.messaging_limit_tier, "banState": self.ban_state,
            "banDate": self.ban_date, "violationType": self.violation_type,
            "accountEvent": self.account_event, "nameStatus": self.name_status,
            "nameRejectionReason": self.name_rejection_reason,
        }  # fmt: skip
        out: dict[str, Any] = {k: v for k, v in scalars.items() if v is not None}
        out["restrictions"] = [
            {"type": r.type} | ({"expiration": r.expiration} if r.expiration else {})
            for r in self.restrictions
        ]
        out["capabilities"] = dict(self.capabilities)
        out["templates"] = self.counts()
        if self.account_deleted:
            out["accountDeleted"] = True
        if self.templates:
            out["templateStatuses"] = [{"id": i, "status": s} for i, s in self.templates]
        if self.last_notice is not None:
            kind, when = self.last_notice
            out["lastNotice"] = {"kind": kind, "at": c.rfc3339(when)}
        if self.recent:
            out["recentNotices"] = [{"id": i, "at": at} for i, at in self.recent]
        return out

    @classmethod
    def from_status(cls, data: Any) -> Health:
        """The health as stored (anything unreadable is left out)."""
        if not isinstance(data, Mapping):
            return cls()

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        last = data.get("lastNotice")
        when = parse_time(last.get("at")) if isinstance(last, Mapping) else None
        kind = last.get("kind") if isinstance(last, Mapping) else None
        return cls(
            text("qualityRating"), text("qualityEvent"), text("messagingLimitTier"),
            _stored_restrictions(data.get("restrictions")), text("banState"), text("banDate"),
            text("violationType"), text("accountEvent"), data.get("accountDeleted") is True,
            text("nameStatus"), text("nameRejectionReason"),
            _stored_capabilities(data.get("capabilities")),
            _stored_templates(data.get("templateStatuses")),
            (kind, when) if isinstance(kind, str) and when is not None else None,
            _stored_recent(data.get("recentNotices")),
        )  # fmt: skip


def _stored_restrictions(data: Any) -> tuple[Restriction, ...]:
    items = data if isinstance(data, list) else []
    return tuple(
        Restriction(
            r["type"], r.get("expiration") if isinstance(r.get("expiration"), str) else None
        )
        for r in items
        if isinstance(r, Mapping) and isinstance(r.get("type"), str)
    )


def _stored_capabilities(data: Any) -> tuple[tuple[str, int | str], ...]:
    items = data.items() if isinstance(data, Mapping) else ()
    return tuple(
        (str(k), v) for k, v in items if isinstance(v, int | str) and not isinstance(v, bool)
    )


def _stored_templates(data: Any) -> tuple[tuple[str, str], ...]:
    items = data if isinstance(data, list) else []
    return tuple(
        (t["id"], t["status"])
        for t in items
        if isinstance(t, Mapping)
        and isinstance(t.get("id"), str)
        and isinstance(t.get("status"), str)
    )


def _stored_recent(data: Any) -> Seen:
    items = data if isinstance(data, list) else []
    return tuple(
        (r["id"], float(r["at"]))
        for r in items
        if isinstance(r, Mapping)
        and isinstance(r.get("id"), str)
        and isinstance(r.get("at"), int | float)
        and not isinstance(r.get("at"), bool)
    )
