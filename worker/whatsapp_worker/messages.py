"""Parse and validate one queued message: pure functions, no I/O.

A queue message is a JSON object::

    {"metadata": {"tenantId": "t_a3eecb94bb822a92", "phoneNumberId": "882555404932892",
                  "messageId": "optional-correlation-id"},
     "wabaPayload": {"to": "919876543220", "type": "text", "text": {"body": "Hello!"}}}

`metadata.tenantId` is 1..50 characters of `[A-Za-z0-9_.-]` starting with a letter or digit;
`metadata.phoneNumberId` is a string of 1..40 digits (a JSON number is refused);
`metadata.messageId` (optional) is the producer's correlation id, 1..128 characters of
`[A-Za-z0-9._:-]`. Other metadata keys (tracing fields) and other top-level keys are ignored.

`wabaPayload` is the body of Meta's `POST /{phone-number-id}/messages` without
`messaging_product` (the worker adds it; if given it must be "whatsapp"). Its top-level keys
are `to`, `type`, the object named by `type`, and optionally `recipient_type` (only
"individual": groups are out of scope), `context` (`{"message_id": ...}`, a reply) and
`biz_opaque_callback_data` (a string of at most 512 characters). Any other key, or the
object of another type, is refused. The type objects are checked by `message_types`.

Recipient rule (`normalise_recipient`): remove whitespace, hyphens, dots and parentheses;
then drop one leading `+`, or else a leading `00` international prefix; digits only are taken
as international too (the seed's producers write `919876543220`). What remains must be 7..15
ASCII digits (E.164 allows 15; the shortest numbers in use, Niue's, have 7) not starting with
0: these cheap checks come first. Then `phonenumbers` (Google's libphonenumber) reads `+` and
those digits: the country code must exist and the length must be *possible* for it (exactly
`IS_POSSIBLE`: a local number without its area code is refused). The result is E.164 with its
`+` ("+91 98765-43220", "0091 98765 43220" and "919876543220" all give "+919876543220"): Meta
reads a `to` without `+` as a national number of the business number's own country and may
deliver to someone else. Possible, not valid: validity checks number ranges against a
snapshot of each country's plan, so a newly opened range (or Ofcom's 07700 900xxx) would be
refused until the library is upgraded, while a wrong length or country code is what turns a
message into a misdelivery. Anything else is `invalid_recipient`, its detail saying what
was wrong.

Errors are `InvalidMessage(reason, detail)`: `reason` is one of `REASONS`, `detail` names
the field paths and what is wrong with them and never repeats a value from the message
(values may hold personal data).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from whatsapp_worker.message_base import Loc, Problem, problems_of
from whatsapp_worker.message_types import MESSAGE_TYPES, check_type_object
from whatsapp_worker.recipients import RecipientError, international

MAX_BODY_BYTES: Final = 256 * 1024
MAX_DEPTH: Final = 32  # nesting of wabaPayload; Meta's deepest objects use about 10 levels
MAX_LISTED_PROBLEMS: Final = 5

NOT_JSON: Final = "not_json"
TOO_LARGE: Final = "too_large"
INVALID_ENVELOPE: Final = "invalid_envelope"
UNKNOWN_TYPE: Final = "unknown_type"
INVALID_PAYLOAD: Final = "invalid_payload"
INVALID_RECIPIENT: Final = "invalid_recipient"
REASONS: Final = (
    NOT_JSON,
    TOO_LARGE,
    INVALID_ENVELOPE,
    UNKNOWN_TYPE,
    INVALID_PAYLOAD,
    INVALID_RECIPIENT,
)

TOP_LEVEL_KEYS: Final = frozenset(
    {"messaging_product", "recipient_type", "to", "type", "context", "biz_opaque_callback_data"}
)
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # others may be data: not echoed


class InvalidMessage(ValueError):
    """A message that can never be sent as it is: drop it (or dead-letter it), never retry."""

    reason: str
    detail: str

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[InvalidMessage], tuple[str, str]]:
        return (type(self), (self.reason, self.detail))


@dataclass(frozen=True)
class OutboundMessage:
    tenant_id: str
    phone_number_id: str
    message_id: str | None
    to: str  # normalised recipient: E.164 with its "+" (the pair limit's and the key's form)
    type: str
    payload: dict[str, Any]  # the JSON body to POST to Meta


class _Metadata(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    tenant_id: str = Field(
        alias="tenantId", min_length=1, max_length=50, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
    )
    phone_number_id: str = Field(alias="phoneNumberId", pattern=r"^[0-9]{1,40}$")
    message_id: str | None = Field(
        default=None, alias="messageId", min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$"
    )


class _Envelope(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    metadata: _Metadata
    waba_payload: dict[str, Any] = Field(alias="wabaPayload")


def parse_body(body: bytes) -> OutboundMessage:
    """Size check, UTF-8 and JSON decoding, then `parse_message`."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidMessage(
            TOO_LARGE, f"body: {len(body)} bytes is over the limit of {MAX_BODY_BYTES} bytes"
        )
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage(NOT_JSON, f"body: not valid UTF-8 (at byte {exc.start})") from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        detail = f"body: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        raise InvalidMessage(NOT_JSON, detail) from None
    except (ValueError, RecursionError) as exc:  # NaN/Infinity, huge integers, deep nesting
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise InvalidMessage(NOT_JSON, f"body: not valid JSON ({reason})") from None
    return parse_message(data)


def _refuse_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def parse_message(data: object) -> OutboundMessage:
    """Validate one decoded queue message and build the body to POST to Meta."""
    if not isinstance(data, dict):
        raise InvalidMessage(NOT_JSON, f"message: must be a JSON object, not {_kind(data)}")
    try:
        envelope = _Envelope.model_validate(data)
    except ValidationError as exc:
        raise _invalid(INVALID_ENVELOPE, problems_of(exc)) from None
    waba = envelope.waba_payload
    _check_json_tree(waba, ("wabaPayload",), 1)
    kind = _message_type(waba)

    if "to" not in waba:
        _fail(INVALID_RECIPIENT, "wabaPayload.to", "is required")
    to = _normalise(waba["to"], "wabaPayload.to")
    _check_reply_fields(waba)

    problems = check_type_object(kind, waba[kind])
    if problems:
        raise _invalid(INVALID_PAYLOAD, [(("wabaPayload", kind, *loc), m) for loc, m in problems])

    meta = envelope.metadata
    return OutboundMessage(
        tenant_id=meta.tenant_id,
        phone_number_id=meta.phone_number_id,
        message_id=meta.message_id,
        to=to,
        type=kind,
        payload=_payload(waba, to, kind),
    )


def _message_type(waba: dict[str, Any]) -> str:
    """The message's type, once the payload's top-level keys are the ones Meta accepts with it
    (`messaging_product`, `recipient_type`, `type` and the one object it names)."""
    product = waba.get("messaging_product", "whatsapp")
    if product != "whatsapp":
        _fail(INVALID_PAYLOAD, "wabaPayload.messaging_product", 'must be "whatsapp"')
    if waba.get("recipient_type", "individual") != "individual":
        _fail(INVALID_PAYLOAD, "wabaPayload.recipient_type", 'must be "individual"')

    kind = waba.get("type")
    if kind is None:
        _fail(INVALID_PAYLOAD, "wabaPayload.type", "is required")
    if not isinstance(kind, str):
        _fail(INVALID_PAYLOAD, "wabaPayload.type", "must be a string")
    if kind not in MESSAGE_TYPES:
        _fail(UNKNOWN_TYPE, "wabaPayload.type", "must be one of " + ", ".join(MESSAGE_TYPES))
    for key in waba:
        if key not in TOP_LEVEL_KEYS and key not in MESSAGE_TYPES:
            _fail(INVALID_PAYLOAD, _path(("wabaPayload", key)), "is not allowed")
        if key in MESSAGE_TYPES and key != kind:
            _fail(INVALID_PAYLOAD, f"wabaPayload.{key}", f'is not allowed with type "{kind}"')
    if kind not in waba:
        _fail(INVALID_PAYLOAD, f"wabaPayload.{kind}", f'is required for type "{kind}"')
    return kind


def _check_reply_fields(waba: dict[str, Any]) -> None:
    """`context` (the message replied to) and `biz_opaque_callback_data`, when present."""
    if "context" in waba:
        try:
            _Context.model_validate(waba["context"])
        except ValidationError as exc:
            raise _invalid(INVALID_PAYLOAD, problems_of(exc, ("wabaPayload", "context"))) from None
    opaque = waba.get("biz_opaque_callback_data", "")
    if not isinstance(opaque, str) or len(opaque) > 512:
        _fail(
            INVALID_PAYLOAD,
            "wabaPayload.biz_opaque_callback_data",
            "must be a string of at most 512 characters",
        )


def _payload(waba: dict[str, Any], to: str, kind: str) -> dict[str, Any]:
    """The body to POST: the producer's objects copied, `to` normalised, Meta's fixed fields."""
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": kind,
        kind: copy.deepcopy(waba[kind]),
    }
    for key in ("context", "biz_opaque_callback_data"):
        if key in waba:
            payload[key] = copy.deepcopy(waba[key])
    return payload


class _Context(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    message_id: str = Field(min_length=1)


def normalise_recipient(to: str) -> str:
    """What the worker sends as `to` (see the module docstring for the rule)."""
    return _normalise(to, "to")


def _normalise(to: object, path: str) -> str:
    if not isinstance(to, str):
        _fail(INVALID_RECIPIENT, path, "must be a string")
    try:
        return international(to)
    except RecipientError as exc:
        _fail(INVALID_RECIPIENT, path, str(exc))


def message_key(message: OutboundMessage) -> str:
    """A stable id of the message: its messageId, or a hash of what it sends and from whom."""
    if message.message_id is not None:
        return message.message_id
    canonical = json.dumps(
        [message.tenant_id, message.phone_number_id, message.payload],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def _encodable(text: str) -> bool:
    """UTF-8 can carry it: any ASCII string (a flag CPython keeps), else one without a lone
    surrogate (this runs for every string of every message)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_json_tree(value: object, loc: Loc, depth: int) -> None:
    """A decoded JSON tree: plain JSON types, string keys, finite numbers, bounded depth."""
    if depth > MAX_DEPTH:
        _fail(INVALID_PAYLOAD, _path(loc), f"is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                _fail(INVALID_PAYLOAD, _path(loc), "has a key that is not a string")
            if not _encodable(key):
                _fail(INVALID_PAYLOAD, _path(loc), "has a key that is not valid Unicode")
            _check_json_tree(item, (*loc, key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_tree(item, (*loc, index), depth + 1)
    elif isinstance(value, str) and not _encodable(value):
        # a lone surrogate (a \udXXX escape): JSON can carry it, UTF-8 cannot, so neither
        # the message key nor the request to Meta could be made (it was requeued forever)
        _fail(INVALID_PAYLOAD, _path(loc), "is not valid Unicode (a lone surrogate)")
    elif isinstance(value, float) and not math.isfinite(value):
        _fail(INVALID_PAYLOAD, _path(loc), "must be a finite number")
    elif not isinstance(value, str | int | float | bool) and value is not None:
        _fail(INVALID_PAYLOAD, _path(loc), f"is not a JSON value ({_kind(value)})")


def _kind(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _path(loc: Loc) -> str:
    """`a.b[0].c`; a key that does not look like a field name is shown as `<key>`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        name = part if _FIELD_NAME.fullmatch(part) else "<key>"
        out += f".{name}" if out else name
    return out or "message"


def _invalid(reason: str, problems: list[Problem]) -> InvalidMessage:
    shown = [f"{_path(loc)}: {message}" for loc, message in problems[:MAX_LISTED_PROBLEMS]]
    if len(problems) > MAX_LISTED_PROBLEMS:
        shown.append(f"and {len(problems) - MAX_LISTED_PROBLEMS} more problems")
    return InvalidMessage(reason, "; ".join(shown))


def _fail(reason: str, path: str, message: str) -> NoReturn:
    raise InvalidMessage(reason, f"{path}: {message}")
