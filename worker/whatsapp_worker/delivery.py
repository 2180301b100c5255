"""One queued message as the worker sees it: decoding, retry headers, result events. Pure.

Two kinds of message arrive in a shard queue:
- the seed's plain JSON, published by any producer to the pool's exchange;
- a Celery task message (protocol 2, JSON serializer) of `whatsapp.send_message`, published by
  Python producers through Celery's API and routed by the same phone number.
Both become one `OutboundMessage` or one `InvalidMessage` with a machine-readable reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from whatsapp_graph.errors import GraphApiError

from .messages import (
    INVALID_ENVELOPE,
    MAX_BODY_BYTES,
    NOT_JSON,
    TOO_LARGE,
    InvalidMessage,
    OutboundMessage,
    parse_body,
    parse_message,
)
from .policy import Attempt, Decision

TASK_NAME = "whatsapp.send_message"
TASK_ID = "id"  # a Celery task message's header: its task id
H_ATTEMPTS = "x-whatsapp-attempts"
H_THROTTLES = "x-whatsapp-throttles"
H_PAIR_THROTTLES = "x-whatsapp-pair-throttles"
H_HELD_SINCE = "x-whatsapp-held-since"
H_REASON = "x-whatsapp-reason"
H_DETAIL = "x-whatsapp-detail"
H_CODE = "x-whatsapp-code"
H_CLASS = "x-whatsapp-error-class"
H_TENANT = "x-whatsapp-tenant-id"
H_SHARD = "x-whatsapp-shard"
H_DEAD_AT = "x-whatsapp-dead-at"
H_POSSIBLE_DUPLICATE = "x-whatsapp-possible-duplicate"
H_COPY = "x-whatsapp-copy"  # a copy this worker published (see journal.delivery_key)
PHONE_MISMATCH = "phone_number_mismatch"


def is_task(headers: Mapping[str, Any]) -> bool:
    """A Celery protocol 2 message names its task in the headers."""
    return "task" in headers and TASK_ID in headers


def decode(body: bytes, headers: Mapping[str, Any]) -> OutboundMessage:
    """The message in a delivery, or InvalidMessage with the reason."""
    if not is_task(headers):
        return parse_body(body)
    if headers.get("task") != TASK_NAME:
        raise InvalidMessage(INVALID_ENVELOPE, f"unknown task {str(headers.get('task'))[:100]}")
    if len(body) > MAX_BODY_BYTES:
        raise InvalidMessage(TOO_LARGE, f"the task body is over {MAX_BODY_BYTES} bytes")
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidMessage(NOT_JSON, "the task body is not JSON") from None
    if not (isinstance(decoded, list) and len(decoded) == 3):
        raise InvalidMessage(INVALID_ENVELOPE, "the task body is not [args, kwargs, embed]")
    args, kwargs = decoded[0], decoded[1]
    if isinstance(args, list) and args:
        return parse_message(args[0])
    if isinstance(kwargs, dict) and "message" in kwargs:
        return parse_message(kwargs["message"])
    raise InvalidMessage(INVALID_ENVELOPE, "send_message needs the message as its argument")


def _number(value: Any, kind: type[int] | type[float]) -> Any:
    """A finite number from a header value, or None (a producer may put anything there)."""
    if isinstance(value, bool) or not isinstance(value, int | float | bytes | str):
        return None
    try:
        number = kind(value) if isinstance(value, bytes | str) else value
        if isinstance(number, float) and not math.isfinite(number):
            return None
        return kind(number)
    except (ValueError, OverflowError):
        return None


def read_attempt(headers: Mapping[str, Any]) -> Attempt:
    """What earlier attempts left in the headers (anything unreadable counts as nothing)."""
    attempts = _number(headers.get(H_ATTEMPTS), int)
    throttles = _number(headers.get(H_THROTTLES), int)
    pair = _number(headers.get(H_PAIR_THROTTLES), int)
    held = _number(headers.get(H_HELD_SINCE), float)
    return Attempt(
        attempts=max(0, attempts or 0),
        throttles=max(0, throttles or 0),
        pair_throttles=max(0, pair or 0),
        held_since=held,
    )


def attempt_headers(headers: Mapping[str, Any], attempt: Attempt) -> dict[str, Any]:
    """The headers of a message going round a delay queue: the producer's, plus ours."""
    ours = (H_ATTEMPTS, H_THROTTLES, H_PAIR_THROTTLES, H_HELD_SINCE)
    out = {k: v for k, v in headers.items() if k not in ours}
    out[H_ATTEMPTS] = attempt.attempts
    out[H_THROTTLES] = attempt.throttles
    out[H_PAIR_THROTTLES] = attempt.pair_throttles
    if attempt.held_since is not None:
        out[H_HELD_SINCE] = repr(attempt.held_since)
    out.pop("x-death", None)  # RabbitMQ's own history grows on each round: keep it small
    return out


@dataclass(frozen=True)
class Failure:
    """Why a message is dead-lettered."""

    reason: str
    detail: str = ""
    code: int | None = None
    error_class: str | None = None
    possible_duplicate: bool = False

    @classmethod
    def from_decision(cls, decision: Decision, detail: str = "") -> Failure:
        return cls(
            reason=decision.reason,
            detail=detail,
            code=decision.code,
            error_class=decision.error_class,
            possible_duplicate=decision.possible_duplicate,
        )


def error_detail(exc: GraphApiError) -> str:
    """A dead letter's detail for Meta's refusal: Meta's own words (already scrubbed of tokens
    by the client)."""
    info = exc.info
    text = f"Meta error {info.code}" + (f"/{info.subcode}" if info.subcode is not None else "")
    text += f": {info.message}"
    if info.details:
        text += f" ({info.details})"
    return text[:1000]


def dead_letter_headers(
    headers: Mapping[str, Any],
    failure: Failure,
    *,
    attempt: Attempt,
    tenant_id: str | None,
    shard: int,
    now: float,
) -> dict[str, Any]:
    out = attempt_headers(headers, attempt)
    out.update(
        {
            H_REASON: failure.reason,
            H_DETAIL: failure.detail[:1000],
            H_SHARD: shard,
            H_DEAD_AT: repr(now),
        }
    )
    if failure.code is not None:
        out[H_CODE] = failure.code
    if failure.error_class:
        out[H_CLASS] = failure.error_class
    if tenant_id:
        out[H_TENANT] = tenant_id
    if failure.possible_duplicate:
        out[H_POSSIBLE_DUPLICATE] = True
    return out


def result_event(
    *,
    pool: str,
    message_id: str | None,
    message: OutboundMessage | None,
    attempts: int,
    now: float,
    wamid: str | None = None,
    failure: Failure | None = None,
    possible_duplicate: bool = False,
    answer: SendAnswer | None = None,
    resolved_by: str | None = None,
) -> dict[str, Any]:
    """The outcome of one message, for the results exchange (producers correlate by id).
    `answer` (an accepted send): Meta's `message_status` and the recipient's `wa_id`;
    `resolved_by` ("webhook"): accepted as Meta's status webhook said, its answer never came."""
    event: dict[str, Any] = {
        "schemaVersion": 1,
        "pool": pool,
        "messageId": message_id,
        "status": "failed" if failure else "accepted",
        "attempts": attempts,
        "at": now,
    }
    if message is not None:
        event.update(
            tenantId=message.tenant_id, phoneNumberId=message.phone_number_id, to=message.to
        )
    if answer is not None:
        wamid = wamid if wamid is not None else answer.wamid
        if answer.message_status is not None:
            event["messageStatus"] = answer.message_status
        if answer.wa_id is not None:
            event["waId"] = answer.wa_id
    if wamid is not None:
        event["wamid"] = wamid
    if failure is not None:
        event.update(
            reason=failure.reason,
            detail=failure.detail[:1000],
            code=failure.code,
            errorClass=failure.error_class,
        )
        possible_duplicate = possible_duplicate or failure.possible_duplicate
    if possible_duplicate:
        event["possibleDuplicate"] = True
    if resolved_by is not None:
        event["resolvedBy"] = resolved_by
    return event


def wamid_of(response: Mapping[str, Any]) -> str | None:
    return answer_of(response).wamid


@dataclass(frozen=True)
class SendAnswer:
    """What Meta's 200 to a send says: `messages[0].id` (the wamid), `messages[0].
    message_status` (when present: accepted, held_for_quality_assessment, paused) and
    `contacts[0].wa_id` (the recipient's WhatsApp id: digits, and not always `to`)."""

    wamid: str | None = None
    message_status: str | None = None
    wa_id: str | None = None


def answer_of(response: Mapping[str, Any]) -> SendAnswer:
    """Meta's answer, each field only when it has the expected shape (never raises)."""
    first = _first(response.get("messages"))
    contact = _first(response.get("contacts"))
    status = first.get("message_status")
    wa_id = contact.get("wa_id")
    wamid = first.get("id")
    return SendAnswer(
        wamid=wamid if isinstance(wamid, str) else None,
        message_status=status if _short(status, _STATUS) else None,
        wa_id=wa_id if _short(wa_id, _WA_ID) and str(wa_id).isdigit() else None,
    )


_STATUS = 64  # Meta's statuses are short words; a new one passes as it is
_WA_ID = 32


def _first(items: Any) -> Mapping[str, Any]:
    if isinstance(items, list) and items and isinstance(items[0], Mapping):
        return items[0]
    return {}


def _short(value: Any, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit and value.isascii()
