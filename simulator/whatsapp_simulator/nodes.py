"""The fields of a WhatsApp Business Phone Number node, as Meta documents them, and paging.

Field list: Graph API reference, WhatsApp Business Account To Number Current Status (the
phone number node), https://developers.facebook.com/docs/graph-api/reference/whats-app-business-account-to-number-current-status/
(its fields, as also mapped by restfb's WhatsAppBusinessPhoneNumber and pywa's
BusinessPhoneNumber), plus `whatsapp_business_manager_messaging_limit`
(https://developers.facebook.com/documentation/business-messaging/whatsapp/messaging-limits)
and `health_status` (https://developers.facebook.com/docs/whatsapp/cloud-api/health-status).
Not `whatsapp_business_account`: asking for a field the node does not have is Meta's
`(#100) Tried accessing nonexisting field (NAME) on node type (WhatsAppBusinessPhoneNumber)`,
code 100, HTTP 400 (the message users saw, e.g. PipedreamHQ/pipedream#9004 for node type
Business). Graph leaves out fields that have no value.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from whatsapp_simulator import enforcement
from whatsapp_simulator.faults import GraphError
from whatsapp_simulator.numbers import country_calling_code, region_of
from whatsapp_simulator.state import Phone, Waba
from whatsapp_simulator.versions import GraphVersion, at_least

NODE_TYPE = "WhatsAppBusinessPhoneNumber"


class _Omit:
    """A field with no value: Graph leaves it out of the answer."""


OMIT = _Omit()


@dataclass(frozen=True)
class FieldContext:
    version: GraphVersion
    app_id: str
    waba: Waba | None


Getter = Callable[[Phone, FieldContext], Any]


def _or_omit(value: str) -> Any:
    return value or OMIT


PHONE_FIELDS: dict[str, Getter] = {
    "id": lambda p, c: p.id,
    "account_mode": lambda p, c: p.account_mode,
    "certificate": lambda p, c: _or_omit(p.certificate),
    "code_verification_status": lambda p, c: p.code_verification_status,
    # edge fields of Meta's OpenAPI spec (GET /{WABA-ID}/phone_numbers)
    "country_code": lambda p, c: _or_omit(region_of(p.display_phone_number)),
    "country_dial_code": lambda p, c: _or_omit(country_calling_code(p.display_phone_number)),
    "conversational_automation": lambda p, c: OMIT,
    "display_phone_number": lambda p, c: p.display_phone_number,
    "eligibility_for_api_business_global_search": (
        lambda p, c: p.eligibility_for_api_business_global_search
    ),
    "health_status": lambda p, c: enforcement.health_status(p, c.waba, c.app_id),
    "is_official_business_account": lambda p, c: p.is_official_business_account,
    "is_on_biz_app": lambda p, c: p.is_on_biz_app,
    "is_pin_enabled": lambda p, c: p.is_pin_enabled,
    "is_preverified_number": lambda p, c: p.is_preverified_number,
    "last_onboarded_time": lambda p, c: _or_omit(p.last_onboarded_time),
    # deprecated: users have seen it come back empty (david-lev/pywa#221)
    "messaging_limit_tier": lambda p, c: p.messaging_limit_tier or OMIT,
    "name_status": lambda p, c: p.name_status,
    "new_certificate": lambda p, c: _or_omit(p.new_certificate),
    "new_display_name": lambda p, c: _or_omit(p.new_display_name),
    "new_name_status": lambda p, c: p.new_name_status,
    "platform_type": lambda p, c: p.platform_type,
    "quality_rating": lambda p, c: p.quality_rating,
    "quality_score": lambda p, c: {"score": p.quality_rating},
    "search_visibility": lambda p, c: p.search_visibility,
    "status": lambda p, c: p.status or ("CONNECTED" if p.registered else "PENDING"),
    "throughput": lambda p, c: {"level": p.throughput_level},
    "verified_name": lambda p, c: p.verified_name,
    "webhook_configuration": lambda p, c: {"application": p.webhook_url} if p.webhook_url else OMIT,
    "username": lambda p, c: _or_omit(p.username),
    "whatsapp_business_manager_messaging_limit": lambda p, c: p.messaging_limit,
}
# (first version with the field, last version with it); None = open
VERSIONED: dict[str, tuple[str | None, str | None]] = {
    "messaging_limit_tier": (None, "v23.0"),
    "whatsapp_business_manager_messaging_limit": ("v24.0", None),
}
# No `fields=`: `id, display_phone_number, verified_name, quality_rating`, for the node and
# for the edge's items: Meta's phone number reference ("default_response") and OpenAPI spec
# ("only default fields (id, display_phone_number, verified_name, quality_rating)"), and the
# phone_numbers examples of
# https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/phone-numbers
# and .../solution-providers/manage-phone-numbers. (Older pages also showed
# code_verification_status, platform_type, throughput, last_onboarded_time: UNCONFIRMED.)
DEFAULT_PHONE_FIELDS = ("id", "display_phone_number", "verified_name", "quality_rating")
DEFAULT_LIST_FIELDS = ("verified_name", "display_phone_number", "id", "quality_rating")


def has_field(name: str, version: GraphVersion) -> bool:
    if name not in PHONE_FIELDS:
        return False
    first, last = VERSIONED.get(name, (None, None))
    if first is not None and not at_least(version, first):
        return False
    return last is None or not at_least(version, _next_major(last))


def _next_major(name: str) -> str:
    return f"v{int(name[1:].split('.')[0]) + 1}.0"


def split_fields(raw: str) -> list[str]:
    """Top-level names of a `fields` value; `throughput{level}` counts as `throughput`."""
    names, depth, current = [], 0, ""
    for char in raw:
        if char == "{":
            depth += 1
        elif char == "}":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            names.append(current)
            current = ""
            continue
        if depth == 0 and char != "}":
            current += char
    names.append(current)
    return [n.split(".")[0].strip() for n in names if n.strip()]


def wanted_fields(query: Mapping[str, str], default: tuple[str, ...], v: GraphVersion) -> list[str]:
    fields = split_fields(query.get("fields", "")) or list(default)
    for name in fields:
        if not has_field(name, v):
            raise GraphError(
                100,
                message=f"(#100) Tried accessing nonexisting field ({name}) on node type "
                f"({NODE_TYPE})",
            )
    return list(dict.fromkeys(fields))


def phone_view(phone: Phone, fields: list[str], context: FieldContext) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in fields:
        value = PHONE_FIELDS[name](phone, context)
        if value is not OMIT:
            out[name] = value
    if "id" not in out:
        out["id"] = phone.id  # Graph always answers a node's id
    return out


# --- cursor paging (https://developers.facebook.com/docs/graph-api/results) ---------------

# the edge's `limit`: default 25, at most 100 (Meta's OpenAPI spec; above 100 is capped here)
DEFAULT_LIMIT, MAX_LIMIT = 25, 100


def cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def uncursor(value: str) -> str:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise GraphError(100, details=f"Invalid cursor: {value}") from None


def _limit(query: Mapping[str, str]) -> int:
    raw = query.get("limit", "")
    if not raw:
        return DEFAULT_LIMIT
    if not raw.isdigit():
        raise GraphError(100, message="(#100) Param limit must be a non-negative integer")
    return min(int(raw) or DEFAULT_LIMIT, MAX_LIMIT)


def page(
    ids: list[str], query: Mapping[str, str], url: Callable[[dict[str, str]], str]
) -> tuple[list[str], dict[str, Any]]:
    """One page of `ids` by `limit`/`after`/`before`, and Graph's `paging` object; `url`
    builds a link from a changed query (`next` only when more remain, like Graph)."""
    limit = _limit(query)
    start, end = 0, len(ids)
    if query.get("after"):
        anchor = uncursor(query["after"])
        start = ids.index(anchor) + 1 if anchor in ids else len(ids)
        end = min(len(ids), start + limit)
    elif query.get("before"):
        anchor = uncursor(query["before"])
        end = ids.index(anchor) if anchor in ids else 0
        start = max(0, end - limit)
    else:
        end = min(len(ids), limit)
    chosen = ids[start:end]
    if not chosen:
        return [], {}
    paging: dict[str, Any] = {"cursors": {"before": cursor(chosen[0]), "after": cursor(chosen[-1])}}
    rest = {k: v for k, v in query.items() if k not in ("after", "before")}
    if start > 0:
        paging["previous"] = url({**rest, "limit": str(limit), "before": cursor(chosen[0])})
    if end < len(ids):
        paging["next"] = url({**rest, "limit": str(limit), "after": cursor(chosen[-1])})
    return chosen, paging


# --- filtering and sorting the edge (Meta's OpenAPI spec, GET /{WABA-ID}/phone_numbers:
# `filtering` = JSON [{field, operator, value}] on account_mode, messaging_limit_tier,
# is_official_business_account; `sort` = creation_time|last_onboarded_time .asc|.desc) ----

FILTERABLE: dict[str, Callable[[Phone], Any]] = {
    "account_mode": lambda p: p.account_mode,
    "messaging_limit_tier": lambda p: p.messaging_limit_tier,
    "is_official_business_account": lambda p: p.is_official_business_account,
}
SORTS = ("creation_time", "last_onboarded_time")


def _condition(raw: Any) -> Callable[[Phone], bool]:
    if not isinstance(raw, dict) or raw.get("field") not in FILTERABLE:
        raise GraphError(100, details=f"Unsupported filter: {raw}")
    get, operator, value = FILTERABLE[raw["field"]], raw.get("operator"), raw.get("value")
    if operator == "EQUAL":
        return lambda p: str(get(p)).lower() == str(value).lower()
    if operator == "NOT_EQUAL":
        return lambda p: str(get(p)).lower() != str(value).lower()
    raise GraphError(100, details=f"Unsupported filter operator: {operator}")


def select(phones: list[Phone], query: Mapping[str, str]) -> list[Phone]:
    """The WABA's numbers after `filtering` and `sort` (creation order by default)."""
    chosen = list(phones)
    if query.get("filtering"):
        try:
            conditions = json.loads(query["filtering"])
        except ValueError:
            raise GraphError(100, details="filtering must be a JSON array") from None
        for check in map(_condition, conditions if isinstance(conditions, list) else [None]):
            chosen = [p for p in chosen if check(p)]
    if query.get("sort"):
        name, _, direction = query["sort"].partition(".")
        if name not in SORTS or direction not in ("asc", "desc"):
            raise GraphError(100, details=f"Unsupported sort: {query['sort']}")
        if name == "last_onboarded_time":
            chosen.sort(key=lambda p: p.last_onboarded_time)
        if direction == "desc":
            chosen.reverse()
    return chosen
