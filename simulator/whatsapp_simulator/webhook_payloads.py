"""Webhook bodies as Meta documents them, their bytes and their signature. Pure functions.

Sources (docs/simulator.md, "Webhooks", has the confirmed/UNCONFIRMED row for each):
- envelope and `messages` value: https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/overview
- statuses: https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status
- inbound text: https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/text
- account-level fields: .../webhooks/reference/<field> (account_update,
  phone_number_quality_update, phone_number_name_update, business_capability_update,
  message_template_status_update)
- signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body, key the app secret>`,
  https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/create-webhook-endpoint
  and https://developers.facebook.com/docs/graph-api/webhooks/getting-started
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from typing import Any

from whatsapp_simulator.codes import lookup

OBJECT = "whatsapp_business_account"
SIGNATURE_HEADER = "X-Hub-Signature-256"
# The status page's failed example (2026) links the error codes page by this path; older
# revisions had "/docs/whatsapp/cloud-api/support/error-codes/"
ERROR_HREF = "/documentation/business-messaging/whatsapp/support/error-codes"
# `error_data.details` in status webhooks where it differs from the API error table: the
# status page's failed example (131049)
WEBHOOK_DETAILS = {
    131049: "In order to maintain a healthy ecosystem engagement, the message failed to be "
    "delivered.",
}
_CODE_PREFIX = re.compile(r"^\(#\d+\) ")


def digits(number: str) -> str:
    """Meta's `display_phone_number` and `wa_id` in webhooks are digits only (`15550783881`)."""
    return "".join(c for c in number if c.isdigit())


def encode(payload: dict[str, Any]) -> bytes:
    """The POST body: compact JSON with non-ASCII escaped as \\uXXXX (lowercase hex).

    Graph's getting-started page says Meta signs "an escaped unicode version of the
    payload"; receivers must hash the raw bytes they got, never a re-encoding.
    """
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def signature(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value: `sha256=` + hex HMAC-SHA256(app secret, raw body)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def new_wamid() -> str:
    """A WhatsApp message id in Meta's form (`wamid.` + base64 of a protobuf; opaque)."""
    return "wamid.HBgL" + secrets.token_urlsafe(30).replace("-", "A").replace("_", "B") + "="


def messages_payload(
    waba_id: str, display_phone_number: str, phone_number_id: str, value: dict[str, Any]
) -> dict[str, Any]:
    """A `messages` field webhook: `value` holds `statuses`, or `contacts` + `messages`."""
    body = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": digits(display_phone_number),
            "phone_number_id": phone_number_id,
        },
        **value,
    }
    change = {"value": body, "field": "messages"}
    return {"object": OBJECT, "entry": [{"id": waba_id, "changes": [change]}]}


def notice_payload(waba_id: str, field: str, value: dict[str, Any], time: int) -> dict[str, Any]:
    """An account-level field (account_update, phone_number_quality_update, ...): the
    entry carries `time` (integer epoch seconds) and no metadata."""
    change = {"value": value, "field": field}
    return {"entry": [{"id": waba_id, "time": time, "changes": [change]}], "object": OBJECT}


def status_error(code: int) -> dict[str, Any]:
    """A status's `errors[]` item: code, title, message (= title), error_data.details, href."""
    meta = lookup(code)
    title = _CODE_PREFIX.sub("", meta.message)
    details = WEBHOOK_DETAILS.get(code) or meta.details or title
    return {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": details},
        "href": ERROR_HREF,
    }


def pricing(category: str) -> dict[str, Any]:
    """Per-message pricing (PMP, since 1 July 2025): `service` sends inside the customer
    service window are free (`free_customer_service`), templates are `regular`."""
    free = category == "service"
    return {
        "billable": not free,
        "pricing_model": "PMP",
        "type": "free_customer_service" if free else "regular",
        "category": category,
    }


def conversation(conversation_id: str, category: str, expires: int | None) -> dict[str, Any]:
    """v23.0 and older: `conversation` {id, expiration_timestamp (sent only), origin.type}."""
    out: dict[str, Any] = {"id": conversation_id}
    if expires is not None:
        out["expiration_timestamp"] = str(expires)
    out["origin"] = {"type": category}
    return out


def status_item(
    *,
    wamid: str,
    status: str,
    timestamp: int,
    recipient_id: str,
    opaque: str | None = None,
    conversation_obj: dict[str, Any] | None = None,
    pricing_obj: dict[str, Any] | None = None,
    error_code: int | None = None,
) -> dict[str, Any]:
    """One `statuses[]` item in the order of Meta's syntax block; `timestamp` is a string."""
    item: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(timestamp),
        "recipient_id": recipient_id,
    }
    if opaque is not None:
        item["biz_opaque_callback_data"] = opaque
    if conversation_obj is not None:
        item["conversation"] = conversation_obj
    if pricing_obj is not None:
        item["pricing"] = pricing_obj
    if error_code is not None:
        item["errors"] = [status_error(error_code)]
    return item


def inbound_value(*, wa_id: str, name: str, message: dict[str, Any]) -> dict[str, Any]:
    """`contacts` + `messages` of a customer's message (`message` already has from, id,
    timestamp, type and the type's object)."""
    return {
        "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
        "messages": [message],
    }


def inbound_message(
    *, wa_id: str, wamid: str, timestamp: int, kind: str, content: Any, context: Any = None
) -> dict[str, Any]:
    """A `messages[]` item: `from` is the customer's WhatsApp id (digits), `timestamp` a string."""
    message: dict[str, Any] = {}
    if context is not None:
        message["context"] = context
    message.update({"from": wa_id, "id": wamid, "timestamp": str(timestamp), "type": kind})
    message[kind] = content
    return message
