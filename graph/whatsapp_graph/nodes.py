"""What the client asks Graph API nodes for, and how it walks their lists. Pure.

- The phone number node (WhatsAppBusinessPhoneNumber): only documented fields, chosen per
  Graph API version (`phone_fields`). The node has no `whatsapp_business_account` field
  (asking for it is a `(#100) Tried accessing nonexisting field` error): which WABA owns a
  number is proven by finding it in the WABA's `phone_numbers` list.
- Lists (`/{waba-id}/phone_numbers`) come in pages: `next_cursor` says where the next one
  starts, or that there is none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from whatsapp_graph.versions import major_version

DEFAULT_VERSION = "v25.0"
# What the operator reads about a number: documented fields of the WhatsAppBusinessPhoneNumber
# node only (the node has no `whatsapp_business_account`: asking for it is a (#100) error).
# Which WABA owns the number is proven by the WABA's paged `phone_numbers` list instead.
PHONE_FIELDS_COMMON = (
    "id",
    "display_phone_number",
    "verified_name",
    "quality_rating",
    "code_verification_status",
    "name_status",
    "throughput",
    "platform_type",
    "status",
    "health_status",  # can_send_message AVAILABLE | LIMITED | BLOCKED, per entity
)
# v24.0 replaced the per-number tier with the business portfolio's limit.
MESSAGING_LIMIT_FIELD_SINCE = 24
PAGE_LIMIT = 100  # numbers per page of a WABA's phone_numbers
MAX_PAGES = 20  # pages read at most per listing (2,000 numbers at PAGE_LIMIT)


def phone_fields(version: str) -> tuple[str, ...]:
    """The fields to ask a phone number for on `version` (a version we cannot parse is
    taken as current)."""
    major = major_version(version)
    old = major is not None and major < MESSAGING_LIMIT_FIELD_SINCE
    limit = "messaging_limit_tier" if old else "whatsapp_business_manager_messaging_limit"
    return (*PHONE_FIELDS_COMMON, limit)


PHONE_FIELDS = phone_fields(DEFAULT_VERSION)


@dataclass(frozen=True)
class Page:
    """One page of a Graph API list: its items and the cursor of the next (None: last)."""

    items: tuple[dict[str, Any], ...]
    after: str | None


def next_cursor(body: Mapping[str, Any]) -> str | None:
    """The `after` cursor of the next page, None on the last page. Meta sends `paging.next`
    only when another page exists (the cursors come with every page, the last one too); the
    cursor is `paging.cursors.after`, else the `after` parameter of the `next` URL."""
    paging = body.get("paging")
    if not isinstance(paging, Mapping) or not paging.get("next"):
        return None
    cursors = paging.get("cursors")
    after = cursors.get("after") if isinstance(cursors, Mapping) else None
    if isinstance(after, str) and after:
        return after
    from_url = parse_qs(urlsplit(str(paging["next"])).query).get("after") or [""]
    return from_url[0] or None
