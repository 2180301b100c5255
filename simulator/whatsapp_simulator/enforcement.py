"""Meta enforcement states: while one is set on a number (or its WABA), sends fail with its
code, and the number's `health_status` says so.

Codes and texts: Cloud API error codes,
https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes
Health status shape (`can_send_message` AVAILABLE | LIMITED | BLOCKED per entity, BLOCKED
entities carry `errors[{error_code, error_description, possible_solution}]`, LIMITED ones
`additional_info[]`, the overall value is the worst entity's):
https://developers.facebook.com/docs/whatsapp/cloud-api/health-status
Meta's health `error_code`s are their own (e.g. 141006 payment, 141014 WABA banned, in
Meta's OpenAPI example); the simulator reports the send error code instead (UNCONFIRMED
mapping, docs/simulator.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from whatsapp_simulator.codes import lookup
from whatsapp_simulator.faults import GraphError
from whatsapp_simulator.numbers import country_calling_code
from whatsapp_simulator.state import Enforcement, Phone, Waba

PHONE_NUMBER, WABA = "PHONE_NUMBER", "WABA"
AVAILABLE, LIMITED, BLOCKED = "AVAILABLE", "LIMITED", "BLOCKED"
_RANK = {AVAILABLE: 0, LIMITED: 1, BLOCKED: 2}


@dataclass(frozen=True)
class Kind:
    """Where an enforcement shows in health_status, and what Meta suggests doing."""

    entity: str
    health: str
    solution: str


KINDS: dict[int, Kind] = {
    368: Kind(
        WABA,
        BLOCKED,
        "See the Policy Enforcement document to learn about policy "
        "violations and how to resolve them.",
    ),
    130497: Kind(
        WABA,
        LIMITED,
        "See the WhatsApp Business Messaging Policy for details on "
        "allowed countries for messaging in your business category.",
    ),
    131031: Kind(
        WABA,
        BLOCKED,
        "Check Business Support Home for violations; verify the two-step verification PIN.",
    ),
    131042: Kind(WABA, BLOCKED, "Add or fix the payment method of the WhatsApp Business Account."),
    131048: Kind(
        PHONE_NUMBER,
        BLOCKED,
        "Check the quality status in WhatsApp Manager and "
        "see the Quality-based rate limits documentation.",
    ),
    131037: Kind(
        PHONE_NUMBER, BLOCKED, "Have the display name of the business phone number approved."
    ),
    131045: Kind(PHONE_NUMBER, BLOCKED, "Register the business phone number."),
    133010: Kind(PHONE_NUMBER, BLOCKED, "Register the business phone number."),
}


def parse(data: Mapping[str, Any] | None) -> Enforcement | None:
    """An enforcement from admin JSON (`null` clears); ValueError names what is wrong."""
    if data is None:
        return None
    code = int(data["code"])
    if code not in KINDS:
        raise ValueError(f"code must be one of {sorted(KINDS)}")
    countries = [str(c).lstrip("+") for c in data.get("countries") or []]
    return Enforcement(code=code, details=str(data.get("details") or ""), countries=countries)


def _applies(enforcement: Enforcement, wa_id: str) -> bool:
    if enforcement.code != 130497 or not enforcement.countries:
        return True
    return country_calling_code(wa_id) in enforcement.countries


def send_block(phone: Phone, waba: Waba | None, wa_id: str) -> GraphError | None:
    """The error a send from `phone` to `wa_id` fails with while an enforcement is set."""
    for enforcement in (phone.enforcement, waba.enforcement if waba else None):
        if enforcement is not None and _applies(enforcement, wa_id):
            return GraphError(enforcement.code, details=enforcement.details or None)
    return None


def _entity(kind: str, node_id: str, enforcement: Enforcement | None) -> dict[str, Any]:
    entity: dict[str, Any] = {"entity_type": kind, "id": node_id, "can_send_message": AVAILABLE}
    if enforcement is None:
        return entity
    meta, info = lookup(enforcement.code), KINDS[enforcement.code]
    description = enforcement.details or meta.details or meta.message
    entity["can_send_message"] = info.health
    if info.health == LIMITED:
        entity["additional_info"] = [description]
    else:
        entity["errors"] = [
            {
                "error_code": enforcement.code,
                "error_description": description,
                "possible_solution": info.solution,
            }
        ]
    return entity


def health_status(phone: Phone, waba: Waba | None, app_id: str) -> dict[str, Any]:
    """`health_status` of a business phone number: its own entity, then WABA, BUSINESS, APP."""
    waba_id = waba.id if waba else phone.waba_id
    phone_level = phone.enforcement
    waba_level = waba.enforcement if waba else None
    # an enforcement is shown on the entity Meta attaches it to, wherever it was set
    on_phone = next(
        (e for e in (phone_level, waba_level) if e and KINDS[e.code].entity == PHONE_NUMBER), None
    )
    on_waba = next(
        (e for e in (waba_level, phone_level) if e and KINDS[e.code].entity == WABA), None
    )
    entities = [
        _entity(PHONE_NUMBER, phone.id, on_phone),
        _entity(WABA, waba_id, on_waba),
        _entity("BUSINESS", (waba.business_id if waba else "") or waba_id, None),
        _entity("APP", app_id, None),
    ]
    worst = max((e["can_send_message"] for e in entities), key=_RANK.__getitem__)
    return {"can_send_message": worst, "entities": entities}
