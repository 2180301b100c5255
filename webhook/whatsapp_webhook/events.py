"""What one change becomes: the messages the processor publishes for it. Pure: no I/O.

`plan(change, known, at=...)` decides, given what the memory knows (`known(key)`), which
messages to publish and what the memory learns once each is confirmed:

- field `messages` with `statuses` (Status messages webhook reference, https://developers.
  facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status/):
  one result event (contract `status_event`) per status that moves its message forward, to
  `whatsapp.results` key `<pool>.<status>`; the rest are duplicates (or late);
- field `messages` with `messages` (messages webhook reference, https://developers.facebook.com/
  documentation/business-messaging/whatsapp/webhooks/reference/messages): the envelope
  `{"metadata": {...}, "value": <Meta's value>}` once to `whatsapp.inbound` key tenant id, and
  a `window_record` per message to `whatsapp.windows` key pool (always: a window record is
  idempotent, and a retried change whose envelope went out may not have had its windows out);
- a notice field (contract `NOTICE_KINDS`): one `notice` per route to `whatsapp.notices` key
  namespace;
- field `calls` (Calling API): a `window_record` per user's call (`connect`, USER_INITIATED)
  and per business call the user accepted (status ACCEPTED): Meta opens the customer-service
  window for both (see "calls" below);
- anything else: dropped (`unrouted_field`).

`log_records` reads back what the status log holds (the events above, published by any
replica) as memory entries.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from whatsapp_contract.webhook import (
    INBOUND_EXCHANGE,
    NOTICE_KINDS,
    NOTICES_EXCHANGE,
    RESULTS_EXCHANGE,
    STATUSES,
    WINDOWS_EXCHANGE,
    NoticeKind,
    NumberEntry,
    Status,
    advances,
    decode_callback,
    notice,
    status_event,
    window_record,
)

from .change import Change
from .status_memory import SEEN, inbound_key

MESSAGES_FIELD = "messages"
# Calling webhooks: routed by `value.metadata.phone_number_id` as messages are (payload.py)
CALLS_FIELD = "calls"
MAX_AMQP_ID = 255  # AMQP shortstr


@dataclass(frozen=True)
class Outgoing:
    """One message to publish (persistent, confirmed); `learns`: the memory entries it
    establishes once confirmed."""

    exchange: str
    routing_key: str
    body: bytes
    kind: str  # status | message | window | notice (the `published_total` label)
    message_id: str | None = None
    learns: tuple[tuple[str, str], ...] = ()
    status: str | None = None  # for a result event: its status (`results_total`)


@dataclass(frozen=True)
class Plan:
    publish: tuple[Outgoing, ...] = ()
    duplicates: Counter[str] = field(default_factory=Counter)  # kind -> count
    dropped: Counter[str] = field(default_factory=Counter)  # reason -> count


def memory_keys(change: Change) -> list[str]:
    """The memory entries `plan` consults for `change` (the processor waits for publishes of
    the same keys still in flight before it plans)."""
    if change.field != MESSAGES_FIELD:
        return []
    keys = [s["id"] for s in _dicts(change.value.get("statuses")) if isinstance(s.get("id"), str)]
    keys += [inbound_key(i) for i in _inbound_ids(change.value)]
    return keys


def plan(change: Change, known: Callable[[str], str | None], *, at: float) -> Plan:
    result = Plan()
    if not change.routes:
        result.dropped["no_route"] += 1
        return result
    if change.field in NOTICE_KINDS:
        return Plan(publish=tuple(_notices(change, at)))
    if change.field == CALLS_FIELD:
        windows = tuple(_call_windows(change, change.routes[0]))
        if not windows:
            result.dropped["unrouted_field"] += 1  # a call event that opens no window
        return Plan(windows, result.duplicates, result.dropped)
    value = change.value
    if change.field != MESSAGES_FIELD or not (
        isinstance(value.get("statuses"), list) or isinstance(value.get("messages"), list)
    ):
        result.dropped["unrouted_field"] += 1
        return result
    route = change.routes[0]
    publish = list(_statuses(change, route, known, result, at))
    publish += _inbound(change, route, known, result)
    return Plan(tuple(publish), result.duplicates, result.dropped)


# --- statuses --------------------------------------------------------------------------------


def _statuses(
    change: Change,
    route: NumberEntry,
    known: Callable[[str], str | None],
    result: Plan,
    at: float,
) -> Iterator[Outgoing]:
    decided: dict[str, str] = {}  # this change's own statuses, in order
    for status in _dicts(change.value.get("statuses")):
        wamid, name = status.get("id"), status.get("status")
        if not isinstance(wamid, str) or not wamid or name not in STATUSES:
            result.dropped["unknown_status"] += 1
            continue
        previous = decided.get(wamid) or known(wamid)
        if not advances(previous, name):
            result.duplicates["status"] += 1
            continue
        decided[wamid] = name
        event = build_status_event(status, route, at=at)
        yield Outgoing(
            RESULTS_EXCHANGE,
            f"{route.pool}.{name}",
            json.dumps(event, separators=(",", ":")).encode(),
            "status",
            message_id=f"{wamid}:{name}"[:MAX_AMQP_ID],
            learns=((wamid, name),),
            status=name,
        )


def build_status_event(status: dict[str, Any], route: NumberEntry, *, at: float) -> dict[str, Any]:
    """The result event of one status (contract `status_event`); `status` is valid."""
    message_id, producer = decode_callback(status.get("biz_opaque_callback_data"))
    conversation, pricing = status.get("conversation"), status.get("pricing")
    recipient = status.get("recipient_id")
    return status_event(
        pool=route.pool,
        tenant_id=route.tenant_id,
        phone_number_id=route.phone_number_id,
        status=cast(Status, status["status"]),
        wamid=status["id"],
        recipient=recipient if isinstance(recipient, str) else None,
        timestamp=_int(status.get("timestamp")),
        message_id=message_id,
        callback_data=producer,
        conversation=conversation if isinstance(conversation, dict) else None,
        pricing=pricing if isinstance(pricing, dict) else None,
        errors=list(_dicts(status.get("errors"))) or None,
        at=at,
    )


# --- inbound messages ----------------------------------------------------------------------


def _inbound(
    change: Change, route: NumberEntry, known: Callable[[str], str | None], result: Plan
) -> list[Outgoing]:
    messages = list(_dicts(change.value.get("messages")))
    if not messages:
        return []
    out = [
        Outgoing(
            WINDOWS_EXCHANGE,
            route.pool,
            window_record(
                pool=route.pool, phone_number_id=route.phone_number_id, wa_id=wa_id, timestamp=ts
            ),
            "window",
        )
        for wa_id, ts in _windows(messages)
    ]
    ids = _inbound_ids(change.value)
    keys = [inbound_key(i) for i in ids]
    if keys and all(known(k) is not None for k in keys):
        result.duplicates["message"] += 1
        return out
    body = json.dumps(inbound_envelope(change, route), separators=(",", ":")).encode()
    envelope = Outgoing(
        INBOUND_EXCHANGE,
        route.tenant_id,
        body,
        "message",
        message_id=ids[0][:MAX_AMQP_ID] if ids else change.change_id,
        learns=tuple((k, SEEN) for k in keys),
    )
    return [envelope, *out]


def inbound_envelope(change: Change, route: NumberEntry) -> dict[str, Any]:
    metadata = change.value.get("metadata")
    display = metadata.get("display_phone_number") if isinstance(metadata, dict) else None
    return {
        "metadata": {
            "tenantId": route.tenant_id,
            "namespace": route.namespace,
            "name": route.name,
            "pool": route.pool,
            "phoneNumberId": route.phone_number_id,
            "displayPhoneNumber": display
            if isinstance(display, str)
            else route.display_phone_number,
            "wabaId": change.waba_id,
            "receivedAt": change.received_at,
        },
        "value": change.value,
    }


def _windows(messages: list[dict[str, Any]]) -> Iterator[tuple[str, int]]:
    for message in messages:
        wa_id, ts = message.get("from"), _int(message.get("timestamp"))
        if isinstance(wa_id, str) and wa_id and ts is not None:
            yield wa_id, ts


def _inbound_ids(value: dict[str, Any]) -> list[str]:
    return [
        m["id"] for m in _dicts(value.get("messages")) if isinstance(m.get("id"), str) and m["id"]
    ]


# --- calls -----------------------------------------------------------------------------------
# Meta, Calling API pricing, "How calling changes the 24 hour customer service window"
# (https://developers.facebook.com/docs/whatsapp/cloud-api/calling/pricing, since October 1,
# 2024): the window "now also starts or refreshes for calls: when a WhatsApp user calls you,
# regardless of if you accept the call or not; when a WhatsApp user accepts your call". In the
# calling webhooks (field `calls`; https://developers.facebook.com/documentation/business-
# messaging/whatsapp/calling/user-initiated-calls): a call is a `calls[]` entry with `event`
# `connect`, `from` the caller, `to` the callee; a user accepting the business's call is a
# `statuses[]` entry with `type` call, `status` ACCEPTED, `recipient_id` the user.
# UNCONFIRMED: the name of the direction field. Partners' copies show `direction`
# (USER_INITIATED, BUSINESS_INITIATED), Meta's Messenger calling webhooks `call_direction`
# (user_initiated): both are read, in any case; without either, a call to the business's
# number from another number is the user's.
USER_INITIATED = "USER_INITIATED"


def _call_windows(change: Change, route: NumberEntry) -> Iterator[Outgoing]:
    value = change.value
    metadata = value.get("metadata")
    display = metadata.get("display_phone_number") if isinstance(metadata, dict) else None
    business = _digits(display)
    opened: list[tuple[str, int]] = []
    for call in _dicts(value.get("calls")):
        caller, ts = call.get("from"), _int(call.get("timestamp"))
        if call.get("event") != "connect" or not isinstance(caller, str) or ts is None:
            continue
        direction = call.get("direction", call.get("call_direction"))
        if isinstance(direction, str):
            user_call = direction.upper() == USER_INITIATED
        else:
            to = _digits(call.get("to"))
            user_call = bool(business) and to == business and _digits(caller) != business
        if user_call and caller:
            opened.append((caller, ts))
    for status in _dicts(value.get("statuses")):
        user, ts = status.get("recipient_id"), _int(status.get("timestamp"))
        accepted = status.get("type") == "call" and status.get("status") == "ACCEPTED"
        if accepted and isinstance(user, str) and user and ts is not None:
            opened.append((user, ts))
    for wa_id, ts in opened:
        record = window_record(
            pool=route.pool, phone_number_id=route.phone_number_id, wa_id=wa_id, timestamp=ts
        )
        yield Outgoing(WINDOWS_EXCHANGE, route.pool, record, "window")


def _digits(number: object) -> str:
    return "".join(c for c in number if c.isdigit()) if isinstance(number, str) else ""


# --- notices ---------------------------------------------------------------------------------


def _notices(change: Change, at: float) -> Iterator[Outgoing]:
    kind = cast(NoticeKind, change.field)
    for route in change.routes:
        body = notice(
            kind=kind,
            namespace=route.namespace,
            name=route.name,
            tenant_id=route.tenant_id,
            waba_id=change.waba_id,
            value=change.value,
            at=at,
        )
        yield Outgoing(NOTICES_EXCHANGE, route.namespace, body, "notice", change.change_id)


# --- the status log, read back -------------------------------------------------------------


def log_records(body: bytes) -> list[tuple[str, str]]:
    """The memory entries in one status-log message: a result event of the receiver's (not a
    worker's: `source` is `webhook`) or an inbound envelope; anything else: none."""
    try:
        data = json.loads(body)
    except ValueError:
        return []
    if not isinstance(data, dict):
        return []
    if data.get("source") == "webhook":
        wamid, status = data.get("wamid"), data.get("status")
        if isinstance(wamid, str) and wamid and status in STATUSES:
            return [(wamid, status)]
        return []
    value = data.get("value")
    if isinstance(data.get("metadata"), dict) and isinstance(value, dict):
        return [(inbound_key(i), SEEN) for i in _inbound_ids(value)]
    return []


# --- helpers ---------------------------------------------------------------------------------


def _dicts(items: object) -> Iterator[dict[str, Any]]:
    if isinstance(items, list):
        yield from (i for i in items if isinstance(i, dict))


def _int(value: object) -> int | None:
    """Meta's timestamps are strings of seconds ("1603086313")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
