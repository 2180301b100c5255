"""Meta's payload split into routed changes, pure (no I/O).

A webhook is `{"object": "whatsapp_business_account", "entry": [{"id": <WABA id>,
"changes": [{"field": ..., "value": {...}}]}]}` (WhatsApp webhooks overview,
https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/overview),
one POST holding one or more changes. Each change goes to the tenant(s) it concerns:

- field `messages` (statuses of sent messages, inbound messages, errors) names its business
  number in `value.metadata.phone_number_id` (messages webhook reference,
  https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages):
  routed to that number's tenant. The number's app must be the app that signed the request:
  an app may only speak for the numbers of its own tenants (`app_mismatch` otherwise), so a
  hostile app with a valid secret of its own cannot inject statuses for another app's tenant;
- field `calls` (Calling API webhooks) names its business number the same way: routed like
  `messages` (events.py takes from it the customer-service windows a user's call opens);
- account-level fields (`NOTICE_KINDS`: account_update, message_template_status_update,
  business_capability_update, phone_number_quality_update, phone_number_name_update) concern
  the WABA `entry[].id`: routed to every number of that WABA on the signing app, narrowed to
  one number when the value names it (`display_phone_number`, as quality and name updates do);
- any other field: dropped (`unrouted_field`);
- a number (or WABA) no tenant holds: dropped (`unknown_number`). Dropped changes get a 200
  like the others: Meta would otherwise retry them for days.

A body that is not Meta's shape raises `BadShape` (400): nothing of it is published.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from whatsapp_contract.webhook import NOTICE_KINDS, NumberEntry, digits

from .change import Change
from .config import Index
from .events import CALLS_FIELD

OBJECT = "whatsapp_business_account"
MESSAGES_FIELD = "messages"
_LABEL = 64  # characters of a field name kept for a log line

DropReason = Literal["unknown_number", "app_mismatch", "unrouted_field"]


class BadShape(ValueError):
    """Not the shape of Meta's webhook payload (the message says where, never a value)."""


@dataclass(frozen=True)
class Drop:
    reason: DropReason
    field: str  # Meta's field name (for the log line; metrics are labelled by reason only)
    key: str  # the phone number id or WABA id it named


@dataclass(frozen=True)
class Routing:
    changes: tuple[Change, ...]
    drops: tuple[Drop, ...]


def route_payload(body: object, app_id: str, index: Index, received_at: float) -> Routing:
    """The changes of `body` (signed by `app_id`) to publish, and the ones dropped."""
    if not isinstance(body, dict):
        raise BadShape("the body is not a JSON object")
    kind = body.get("object")
    if kind != OBJECT:
        if isinstance(kind, str):  # another product's webhook on this URL: nothing of ours
            return Routing((), (Drop("unrouted_field", f"object:{kind[:_LABEL]}", ""),))
        raise BadShape("`object` is missing")
    changes: list[Change] = []
    drops: list[Drop] = []
    for waba_id, field, value in _changes(body):
        if field in (MESSAGES_FIELD, CALLS_FIELD):
            routed = _route_number(app_id, waba_id, field, value, index)
        elif field in NOTICE_KINDS:
            routed = _route_account(app_id, waba_id, field, value, index)
        else:
            routed = Drop("unrouted_field", field[:_LABEL], waba_id)
        if isinstance(routed, Drop):
            drops.append(routed)
        else:
            changes.append(Change(app_id, waba_id, field, value, routed, received_at))
    return Routing(tuple(changes), tuple(drops))


def _changes(body: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    entries = body.get("entry")
    if not isinstance(entries, list):
        raise BadShape("`entry` is not a list")
    found: list[tuple[str, str, dict[str, Any]]] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise BadShape(f"entry[{i}] is not an object")
        waba_id, changes = entry.get("id"), entry.get("changes")
        if not isinstance(waba_id, str) or not waba_id or not isinstance(changes, list):
            raise BadShape(f"entry[{i}] lacks `id` or `changes`")
        for j, change in enumerate(changes):
            if not isinstance(change, dict):
                raise BadShape(f"entry[{i}].changes[{j}] is not an object")
            field, value = change.get("field"), change.get("value")
            if not isinstance(field, str) or not isinstance(value, dict):
                raise BadShape(f"entry[{i}].changes[{j}] lacks `field` or `value`")
            found.append((waba_id, field, value))
    return found


def _route_number(
    app_id: str, waba_id: str, field: str, value: dict[str, Any], index: Index
) -> tuple[NumberEntry, ...] | Drop:
    metadata = value.get("metadata")
    phone = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    if not isinstance(phone, str) or not phone:
        raise BadShape(f"a `{MESSAGES_FIELD}` change lacks value.metadata.phone_number_id")
    number = index.numbers.get(phone)
    if number is None:
        return Drop("unknown_number", field, phone)
    if number.app_id != app_id:
        return Drop("app_mismatch", field, phone)
    return (number,)


def _route_account(
    app_id: str, waba_id: str, field: str, value: dict[str, Any], index: Index
) -> tuple[NumberEntry, ...] | Drop:
    numbers = index.wabas.get(waba_id, ())
    if not numbers:
        return Drop("unknown_number", field, waba_id)
    mine = tuple(n for n in numbers if n.app_id == app_id)
    if not mine:
        return Drop("app_mismatch", field, waba_id)
    display = value.get("display_phone_number")
    if isinstance(display, str) and digits(display):
        named = index.displays.get((waba_id, digits(display)), ())
        narrowed = tuple(n for n in named if n.app_id == app_id)
        if not narrowed:
            return Drop("unknown_number", field, waba_id)
        return narrowed
    return mine
