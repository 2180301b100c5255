"""Meta's account and number notices, as the webhook receiver hands them on. Pure.

The receiver (`whatsapp_webhook`) publishes each account-level change Meta posts for a tenant's
WABA as a contract `notice(...)` (whatsapp_contract/webhook.py): persistent, to the topic
exchange `whatsapp.notices`, routing key the tenant's namespace. `parse_notice` reads that
envelope; one reader per kind takes from Meta's `value` only the fields Meta documents, each
typed, so that `model.health` never handles raw JSON. A field missing or of another type reads
as None: Meta adds and retires fields (several were announced for removal in February 2026).

Meta's references (the `value` of each `changes[]` entry, `object: whatsapp_business_account`):
- https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/phone_number_quality_update/
- https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/account_update/
- https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/phone_number_name_update/
- https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/business_capability_update/
- https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/message_template_status_update/
- the field list: https://developers.facebook.com/docs/graph-api/webhooks/reference/whatsapp-business-account/
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime
from typing import Any, Protocol

from whatsapp_contract.webhook import NOTICE_KINDS

TEXT_LIMIT = 200  # characters kept of any string Meta sends (status and Event messages)


class Receipt(Protocol):
    """The broker's hold on one notice (pools/notices.py): `settle` once its effect is at the
    API server (the message is acknowledged then); `void` once the broker hands it out again
    (the connection it came on closed): the copy held here is then not applied."""

    @property
    def void(self) -> bool: ...

    def settle(self) -> None: ...


@dataclass(frozen=True)
class Notice:
    """One notice for one tenant (`whatsapp_contract.webhook.notice`)."""

    kind: str  # one of NOTICE_KINDS: the webhook field
    namespace: str
    name: str
    tenant_id: str
    waba_id: str
    value: Mapping[str, Any]  # Meta's `value`, as posted
    at: float  # unix seconds: when the receiver handled it
    receipt: Receipt | None = dataclass_field(default=None, compare=False, repr=False)

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    @property
    def when(self) -> datetime:
        return datetime.fromtimestamp(self.at, UTC)


def parse_notice(data: bytes) -> Notice | None:
    """The notice in a message body; None when it is not one (the caller counts and drops it)."""
    try:
        body = json.loads(data)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("schemaVersion") != 1:
        return None
    kind, value, at = body.get("kind"), body.get("value"), body.get("at")
    texts = [body.get(k) for k in ("namespace", "name", "tenantId", "wabaId")]
    if kind not in NOTICE_KINDS or not isinstance(value, dict):
        return None
    if not all(isinstance(t, str) and t for t in texts):
        return None
    if isinstance(at, bool) or not isinstance(at, int | float) or not 0 < at < 1e11:
        return None
    if not math.isfinite(at):
        return None
    namespace, name, tenant_id, waba_id = (str(t) for t in texts)
    return Notice(str(kind), namespace, name, tenant_id, waba_id, value, float(at))


def text(value: Mapping[str, Any], key: str) -> str | None:
    """A string field, cut to TEXT_LIMIT; None when absent, empty or not a string."""
    found = value.get(key)
    return found[:TEXT_LIMIT] if isinstance(found, str) and found else None


def _integer(value: Mapping[str, Any], key: str) -> int | None:
    found = value.get(key)
    if isinstance(found, bool):
        return None
    if isinstance(found, int):
        return found
    if isinstance(found, str) and found.lstrip("-").isdigit():
        return int(found)
    return None


def digits(number: str | None) -> str:
    return "".join(c for c in number or "" if c.isdigit())


# --- phone_number_quality_update -------------------------------------------------------------
@dataclass(frozen=True)
class QualityUpdate:
    """`display_phone_number`, `event` (documented today: ONBOARDING, THROUGHPUT_UPGRADE; in
    earlier versions of the page and in partners' copies of it also FLAGGED, UNFLAGGED,
    UPGRADE, DOWNGRADE), and the messaging limit: `max_daily_conversations_per_business`, or
    the older `current_limit` / `old_limit` (TIER_50 ... TIER_UNLIMITED, TIER_NOT_SET), which
    Meta says will be removed in February 2026. No quality rating: Meta's payload has none."""

    display_phone_number: str | None
    event: str | None
    limit: str | None
    old_limit: str | None


def read_quality(value: Mapping[str, Any]) -> QualityUpdate:
    limit = text(value, "max_daily_conversations_per_business") or text(value, "current_limit")
    return QualityUpdate(
        text(value, "display_phone_number"), text(value, "event"), limit,
        text(value, "old_limit"),
    )  # fmt: skip


# --- account_update --------------------------------------------------------------------------
@dataclass(frozen=True)
class Restriction:
    """One of `restriction_info[]`: `restriction_type` (RESTRICTED_ADD_PHONE_NUMBER_ACTION,
    RESTRICTED_BIZ_INITIATED_MESSAGING, RESTRICTED_CUSTOMER_INITIATED_MESSAGING, ...) and when
    it ends. UNCONFIRMED: the type of `expiration`: Meta's page names no type; partners' copies
    show ISO 8601 text ("2026-04-19T13:59:20+0000") and pywa reads unix seconds. Both are read;
    kept as RFC 3339 when understood, else as sent."""

    type: str
    expiration: str | None = None

    def until(self) -> datetime | None:
        return parse_expiration(self.expiration)


def parse_expiration(raw: Any) -> datetime | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float) and 0 < raw < 1e11:
        return datetime.fromtimestamp(raw, UTC)
    if isinstance(raw, str) and raw:
        if raw.isdigit():
            return parse_expiration(int(raw))
        try:
            when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return None
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return None


def _expiration(raw: Any) -> str | None:
    when = parse_expiration(raw)
    if when is not None:
        return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(raw)[:TEXT_LIMIT] if isinstance(raw, str | int) and raw != "" else None


@dataclass(frozen=True)
class AccountUpdate:
    """`event` (ACCOUNT_RESTRICTION, ACCOUNT_VIOLATION, DISABLED_UPDATE, ACCOUNT_DELETED,
    PARTNER_*, ACCOUNT_OFFBOARDED, ACCOUNT_RECONNECTED, ...), with `ban_info` {waba_ban_state:
    DISABLE | SCHEDULE_FOR_DISABLE | REINSTATE, waba_ban_date} for DISABLED_UPDATE,
    `restriction_info[]` for ACCOUNT_RESTRICTION and `violation_info` {violation_type} for
    ACCOUNT_VIOLATION. `restrictions` is None when the notice carries no list."""

    event: str | None
    ban_state: str | None = None
    ban_date: str | None = None
    restrictions: tuple[Restriction, ...] | None = None
    violation_type: str | None = None


def read_account(value: Mapping[str, Any]) -> AccountUpdate:
    ban = value.get("ban_info")
    ban = ban if isinstance(ban, Mapping) else {}
    state = ban.get("waba_ban_state")
    if isinstance(state, list):  # one example of Meta's shows a list of the states
        state = next((s for s in reversed(state) if isinstance(s, str)), None)
    violation = value.get("violation_info")
    listed = value.get("restriction_info")
    restrictions = None
    if isinstance(listed, list):
        restrictions = tuple(
            Restriction(str(r["restriction_type"])[:TEXT_LIMIT], _expiration(r.get("expiration")))
            for r in listed
            if isinstance(r, Mapping) and isinstance(r.get("restriction_type"), str)
        )
    return AccountUpdate(
        text(value, "event"),
        state[:TEXT_LIMIT] if isinstance(state, str) and state else None,
        text(ban, "waba_ban_date"),
        restrictions,
        text(violation, "violation_type") if isinstance(violation, Mapping) else None,
    )


# --- phone_number_name_update ----------------------------------------------------------------
@dataclass(frozen=True)
class NameUpdate:
    """`decision` (APPROVED, DEFERRED, PENDING, REJECTED), `requested_verified_name` and
    `rejection_reason` (null when accepted) for the number `display_phone_number`."""

    display_phone_number: str | None
    decision: str | None
    requested_name: str | None
    rejection_reason: str | None


def read_name(value: Mapping[str, Any]) -> NameUpdate:
    return NameUpdate(
        text(value, "display_phone_number"), text(value, "decision"),
        text(value, "requested_verified_name"), text(value, "rejection_reason"),
    )  # fmt: skip


# --- business_capability_update --------------------------------------------------------------
# Meta's field -> status.health.capabilities key, and whether Meta sends a number. UNCONFIRMED:
# `max_daily_conversations_per_business` is typed Integer on Meta's page but its values are
# TIER_250 ... TIER_UNLIMITED: it is kept as text either way.
CAPABILITIES: dict[str, tuple[str, bool]] = {
    "max_daily_conversation_per_phone": ("maxDailyConversationPerPhone", True),
    "max_daily_conversations_per_business": ("maxDailyConversationsPerBusiness", False),
    "max_phone_numbers_per_business": ("maxPhoneNumbersPerBusiness", True),
    "max_phone_numbers_per_waba": ("maxPhoneNumbersPerWaba", True),
}


def read_capabilities(value: Mapping[str, Any]) -> dict[str, int | str]:
    """The documented capabilities present in the notice, under their status names."""
    out: dict[str, int | str] = {}
    for field, (key, numeric) in CAPABILITIES.items():
        found: int | str | None
        if numeric:
            found = _integer(value, field)
        else:
            number = _integer(value, field)
            found = str(number) if number is not None else text(value, field)
        if found is not None:
            out[key] = found
    return out


# --- message_template_status_update ----------------------------------------------------------
@dataclass(frozen=True)
class TemplateUpdate:
    """`event` (APPROVED, REJECTED, PENDING, PAUSED, DISABLED, FLAGGED, IN_APPEAL, LOCKED,
    REINSTATED, ARCHIVED, UNARCHIVED, PENDING_DELETION, DELETED, LIMIT_EXCEEDED) for the
    template `message_template_id` (an integer), its name, language and `reason`."""

    template_id: str | None
    event: str | None
    name: str | None
    language: str | None
    reason: str | None


def read_template(value: Mapping[str, Any]) -> TemplateUpdate:
    number = _integer(value, "message_template_id")
    return TemplateUpdate(
        str(number) if number is not None else None, text(value, "event"),
        text(value, "message_template_name"), text(value, "message_template_language"),
        text(value, "reason"),
    )  # fmt: skip
