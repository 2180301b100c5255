"""Validation of `POST /{v}/{phone-number-id}/messages` bodies, as Meta validates them.

Objects, fields and limits: Cloud API messages reference,
https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages (and Meta's
OpenAPI spec, facebook/openapi business-messaging-api_v23.0.yaml, whose message schemas
say `additionalProperties: false`). Error texts are the ones users saw where any were found;
docs/simulator.md marks each rule confirmed or UNCONFIRMED:
- missing: `(#100) The parameter text['body'] is required.` (code 100, HTTP 400)
- unknown key: `(#100) Unexpected key "caption" on param "audio".`
- bad enum: `(#100) Param type must be one of {AUDIO, ...} - got "jpeg".`
- interactive limits: `(#131009) Parameter value is not valid` with details like
  `Button title length invalid. Min length: 1, Max length: 20`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from whatsapp_simulator.faults import GraphError
from whatsapp_simulator.interactive import check_interactive
from whatsapp_simulator.params import (
    items,
    not_valid,
    obj,
    one_of,
    required,
    sub,
    text,
    too_long,
    unexpected,
)

# `type` values Meta names in its error (users saw GIF, LINK_PREVIEW and PIN listed too);
# omitted, `type` is "text" (messages reference: "type ... Optional ... default text")
TYPES = frozenset(
    {"audio", "contacts", "document", "gif", "image", "interactive", "link_preview"}
    | {"location", "pin", "reaction", "sticker", "template", "text", "video"}
)
TOP_LEVEL = frozenset(
    {"messaging_product", "recipient_type", "to", "type", "context", "biz_opaque_callback_data"}
    | {"access_token", "appsecret_proof"}  # Graph parameters may ride in the body
)
MEDIA_KEYS = {
    "image": {"id", "link", "caption"},
    "video": {"id", "link", "caption"},
    "document": {"id", "link", "caption", "filename"},
    "audio": {"id", "link", "voice"},
    "sticker": {"id", "link"},
}
TEXT_LIMIT, CAPTION_LIMIT, OPAQUE_LIMIT, TEMPLATE_NAME_LIMIT = 4096, 1024, 512, 512


@dataclass(frozen=True)
class Send:
    to: str
    kind: str


# --- per type -----------------------------------------------------------------------------


def _text(value: object, path: str) -> None:
    content = obj(value, path, {"body", "preview_url"})
    if len(text(content, "body", path, need=True)) > TEXT_LIMIT:
        raise too_long(sub(path, "body"), TEXT_LIMIT)
    if "preview_url" in content and not isinstance(content["preview_url"], bool):
        raise GraphError(100, message=f"(#100) Param {sub(path, 'preview_url')} must be a boolean.")


def _media(kind: str) -> Callable[[object, str], None]:
    def check(value: object, path: str) -> None:
        content = obj(value, path, MEDIA_KEYS[kind])
        if not (text(content, "id", path, need=False) or text(content, "link", path, need=False)):
            raise GraphError(
                100, message=f"(#100) The parameter {path}['id'] or {path}['link'] is required."
            )
        if len(text(content, "caption", path, need=False)) > CAPTION_LIMIT:
            raise too_long(sub(path, "caption"), CAPTION_LIMIT)

    return check


def _number(content: Mapping[str, Any], key: str, path: str, bound: float) -> None:
    value = content.get(key)
    if value is None or value == "":
        raise required(sub(path, key))
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise not_valid(f"Invalid {key}: {value}") from None
    if not -bound <= number <= bound:
        raise not_valid(f"Invalid {key}: {value}")


def _location(value: object, path: str) -> None:
    content = obj(value, path, {"latitude", "longitude", "name", "address"})
    _number(content, "latitude", path, 90.0)
    _number(content, "longitude", path, 180.0)
    text(content, "name", path, need=False)
    text(content, "address", path, need=False)


CONTACT_PARTS: dict[str, set[str]] = {
    "addresses": {"street", "city", "state", "zip", "country", "country_code", "type"},
    "emails": {"email", "type"},
    "phones": {"phone", "type", "wa_id"},
    "urls": {"url", "type"},
}
NAME_KEYS = {"formatted_name", "first_name", "last_name", "middle_name", "suffix", "prefix"}


def _contacts(value: object, path: str) -> None:
    found = items(value, path)
    if not found:
        raise required(path)
    for i, contact in enumerate(found):
        where = sub(path, i)
        card = obj(contact, where, {"name", "org", "birthday", *CONTACT_PARTS})
        if "name" not in card:
            raise required(sub(where, "name"))
        text(
            obj(card["name"], sub(where, "name"), NAME_KEYS),
            "formatted_name",
            sub(where, "name"),
            need=True,
        )
        if "org" in card:
            obj(card["org"], sub(where, "org"), {"company", "department", "title"})
        for part, keys in CONTACT_PARTS.items():
            for j, entry in enumerate(items(card.get(part, []), sub(where, part))):
                obj(entry, sub(sub(where, part), j), keys)


def _reaction(value: object, path: str) -> None:
    content = obj(value, path, {"message_id", "emoji"})
    text(content, "message_id", path, need=True)
    text(content, "emoji", path, need=True, empty=True)  # "" removes a reaction


def _template(value: object, path: str) -> None:
    content = obj(value, path, {"name", "language", "components", "namespace"})
    if len(text(content, "name", path, need=True)) > TEMPLATE_NAME_LIMIT:
        raise too_long(sub(path, "name"), TEMPLATE_NAME_LIMIT)
    if "language" not in content:
        raise required(sub(path, "language"))
    language = obj(content["language"], sub(path, "language"), {"code", "policy"})
    text(language, "code", sub(path, "language"), need=True)
    if language.get("policy", "deterministic") != "deterministic":
        raise one_of(
            sub(sub(path, "language"), "policy"), frozenset({"deterministic"}), language["policy"]
        )
    for i, component in enumerate(items(content.get("components", []), sub(path, "components"))):
        where = sub(sub(path, "components"), i)
        part = obj(component, where, {"type", "sub_type", "index", "parameters", "cards"})
        text(part, "type", where, need=True)
        for j, parameter in enumerate(items(part.get("parameters", []), sub(where, "parameters"))):
            if not isinstance(parameter, dict) or "type" not in parameter:
                raise required(sub(sub(sub(where, "parameters"), j), "type"))
            if parameter["type"] == "text" and not parameter.get("text"):
                raise GraphError(
                    100, details="Parameter 'text' is mandatory for component parameter type 'text'"
                )


def _free(value: object, path: str) -> None:
    if not isinstance(value, dict):
        raise GraphError(100, message=f"(#100) Param {path} must be an object.")


VALIDATORS: dict[str, Callable[[object, str], None]] = {
    "text": _text,
    "location": _location,
    "contacts": _contacts,
    "reaction": _reaction,
    "template": _template,
    "interactive": check_interactive,
    **{kind: _media(kind) for kind in MEDIA_KEYS},
}


def check_send(body: Mapping[str, Any], *, strict_keys: bool) -> Send:
    """Meta's checks on a send; the `to` and `type` of a valid one."""
    product = body.get("messaging_product")
    if product is None:
        raise required("messaging_product")
    if product != "whatsapp":
        raise one_of("messaging_product", frozenset({"whatsapp"}), product)
    recipient_type = body.get("recipient_type", "individual")
    if recipient_type not in ("individual", "group"):
        raise one_of("recipient_type", frozenset({"individual", "group"}), recipient_type)
    if recipient_type == "group":
        raise not_valid("recipient_type group: the simulator does not model WhatsApp groups")
    to = text(body, "to", "", need=True).strip()
    if not any(c.isdigit() for c in to):
        raise not_valid(f"Invalid phone number: {to}")
    kind = body.get("type", "text")
    if not isinstance(kind, str) or kind not in TYPES:
        raise one_of("type", TYPES, kind)
    if strict_keys:
        for key in body:
            if key not in TOP_LEVEL and key != kind:
                raise unexpected(str(key), "message")
    if "context" in body:
        text(obj(body["context"], "context", {"message_id"}), "message_id", "context", need=True)
    opaque = body.get("biz_opaque_callback_data")
    if opaque is not None and (not isinstance(opaque, str) or len(opaque) > OPAQUE_LIMIT):
        raise too_long("biz_opaque_callback_data", OPAQUE_LIMIT)
    if kind not in body:
        raise required(kind)
    VALIDATORS.get(kind, _free)(body[kind], kind)
    return Send(to=to, kind=kind)


READ_KEYS = frozenset({"messaging_product", "status", "message_id", "typing_indicator"})


def check_read(body: Mapping[str, Any]) -> None:
    """Mark a message read (same endpoint): `{"status": "read", "message_id": ...}`.
    https://developers.facebook.com/docs/whatsapp/cloud-api/guides/mark-message-as-read"""
    if body.get("messaging_product") != "whatsapp":
        raise (
            required("messaging_product")
            if "messaging_product" not in body
            else one_of("messaging_product", frozenset({"whatsapp"}), body["messaging_product"])
        )
    for key in body:
        if key not in READ_KEYS | {"access_token", "appsecret_proof"}:
            raise unexpected(str(key), "message")
    if body["status"] != "read":
        raise one_of("status", frozenset({"read"}), body["status"])
    text(body, "message_id", "", need=True)
    if "typing_indicator" in body:
        indicator = obj(body["typing_indicator"], "typing_indicator", {"type"})
        if indicator.get("type") != "text":
            raise one_of(
                sub("typing_indicator", "type"), frozenset({"text"}), indicator.get("type")
            )
