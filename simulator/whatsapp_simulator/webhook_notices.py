"""The `value` of account-level webhooks, built from an admin request as Meta shapes it.
Pure functions.

A request gives the `field`, the WABA (or a number, whose WABA it is) and either the whole
`value` (sent as given) or the value's keys; then the documented keys are filled in:

- phone_number_quality_update: display_phone_number (the number's, digits), event,
  old_limit?, current_limit, max_daily_conversations_per_business?
- phone_number_name_update: display_phone_number, decision, requested_verified_name (the
  number's verified name), rejection_reason (null)
- account_update: event, and the event's object (violation_info, ban_info, waba_info,
  country, ...)
- business_capability_update: max_daily_conversations_per_business,
  max_phone_numbers_per_waba or max_phone_numbers_per_business
- message_template_status_update: event, message_template_id (an integer),
  message_template_name, message_template_language ("en_US"), reason ("NONE"),
  message_template_category?

Pages: https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/<field>
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from whatsapp_simulator.webhook_payloads import digits

QUALITY = "phone_number_quality_update"
NAME = "phone_number_name_update"
ACCOUNT = "account_update"
CAPABILITY = "business_capability_update"
TEMPLATE = "message_template_status_update"
FIELDS = frozenset({QUALITY, NAME, ACCOUNT, CAPABILITY, TEMPLATE})
NUMBER_FIELDS = frozenset({QUALITY, NAME})  # their value names the number
ROUTING_KEYS = frozenset({"field", "waba_id", "phone_number_id", "value", "delay_ms"})


def _require(data: Mapping[str, Any], key: str, field: str) -> Any:
    if data.get(key) in (None, ""):
        raise ValueError(f"{field} needs {key!r} (or a whole 'value')")
    return data[key]


def _rest(data: Mapping[str, Any], *taken: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in ROUTING_KEYS and k not in taken}


def quality_value(data: Mapping[str, Any], display_phone_number: str) -> dict[str, Any]:
    value: dict[str, Any] = {"display_phone_number": digits(display_phone_number)}
    value["event"] = _require(data, "event", QUALITY)
    if "old_limit" in data:
        value["old_limit"] = data["old_limit"]
    value["current_limit"] = _require(data, "current_limit", QUALITY)
    return {**value, **_rest(data, "event", "old_limit", "current_limit")}


def name_value(
    data: Mapping[str, Any], display_phone_number: str, verified_name: str
) -> dict[str, Any]:
    return {
        "display_phone_number": digits(display_phone_number),
        "decision": _require(data, "decision", NAME),
        "requested_verified_name": data.get("requested_verified_name", verified_name),
        "rejection_reason": data.get("rejection_reason"),
        **_rest(data, "decision", "requested_verified_name", "rejection_reason"),
    }


def account_value(data: Mapping[str, Any]) -> dict[str, Any]:
    return {"event": _require(data, "event", ACCOUNT), **_rest(data, "event")}


def capability_value(data: Mapping[str, Any]) -> dict[str, Any]:
    value = _rest(data)
    if not value:
        raise ValueError(f"{CAPABILITY} needs its limits (or a whole 'value')")
    return value


def template_value(data: Mapping[str, Any]) -> dict[str, Any]:
    template_id = data.get("message_template_id") or int(secrets.randbelow(10**15) + 10**15)
    value: dict[str, Any] = {
        "event": _require(data, "event", TEMPLATE),
        "message_template_id": int(template_id),
        "message_template_name": _require(data, "message_template_name", TEMPLATE),
        "message_template_language": data.get("message_template_language", "en_US"),
        "reason": data.get("reason", "NONE"),
    }
    taken = tuple(value)
    return {**value, **_rest(data, *taken)}


def notice_value(
    field: str, data: Mapping[str, Any], *, display_phone_number: str = "", verified_name: str = ""
) -> dict[str, Any]:
    """The `value` for `field` from an admin request body (see the module's table)."""
    given = data.get("value")
    if given is not None:
        if not isinstance(given, Mapping):
            raise ValueError("value must be an object")
        return dict(given)
    if field == QUALITY:
        return quality_value(data, display_phone_number)
    if field == NAME:
        return name_value(data, display_phone_number, verified_name)
    if field == ACCOUNT:
        return account_value(data)
    if field == CAPABILITY:
        return capability_value(data)
    if field == TEMPLATE:
        return template_value(data)
    raise ValueError(f"field {field!r} needs a whole 'value' (known fields: {sorted(FIELDS)})")


def notice_status(value: Mapping[str, Any]) -> str:
    """What the delivery log shows as the notice's status: its event or decision."""
    for key in ("event", "decision"):
        if isinstance(value.get(key), str):
            return str(value[key])
    return ""
