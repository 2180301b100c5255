"""Meta's documented webhook payloads (what Meta POSTs to a callback URL), as data.

Each example is the page's own JSON (ids, names, times as on the page), with its page
(`source`) and where its text was read (`seen_via`: the pages were read through the scrape
of github.com/yvfl/api-whatsapp-docs, Jan 2026, pt_BR; the JSON is language-neutral). Where
an example had to be repaired or assembled, `derived` says how. The simulator's payloads
are compared with these in test_simulator_webhooks_contract.py: same keys and value types
everywhere, and the same values where the simulator was given the page's inputs.

Not part of `corpus.all_fixtures()`: those are request/answer pairs of our Graph client;
these are requests Meta makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .corpus import PHONE_NUMBER_ID, WABA_ID, YVFL, SourceKind

REFERENCE = "https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/"
BUSINESS_DISPLAY_NUMBER = "15550783881"  # the pages' display number for PHONE_NUMBER_ID
CUSTOMER = "16505551234"
WAMID_SENT = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="
WAMID_FAILED = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA"
WAMID_INBOUND = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="


@dataclass(frozen=True)
class WebhookExample:
    name: str
    field: str
    payload: dict[str, Any]
    source: str
    source_kind: SourceKind
    seen_via: str = ""
    derived: str = ""
    notes: str = ""

    @property
    def value(self) -> dict[str, Any]:
        value: dict[str, Any] = self.payload["entry"][0]["changes"][0]["value"]
        return value

    @property
    def time(self) -> int | None:
        time: int | None = self.payload["entry"][0].get("time")
        return time


def seen(path: str, day: str) -> str:
    return f"{YVFL} docs/webhooks/{path} ({day})"


def messages_webhook(value: dict[str, Any], waba_id: str = WABA_ID) -> dict[str, Any]:
    metadata = {"display_phone_number": BUSINESS_DISPLAY_NUMBER, "phone_number_id": PHONE_NUMBER_ID}
    body = {"messaging_product": "whatsapp", "metadata": metadata, **value}
    change = {"value": body, "field": "messages"}
    return {"object": "whatsapp_business_account", "entry": [{"id": waba_id, "changes": [change]}]}


def notice_webhook(
    waba_id: str, time: int, field: str, value: dict[str, Any], *, object_first: bool = False
) -> dict[str, Any]:
    entry = [{"id": waba_id, "time": time, "changes": [{"value": value, "field": field}]}]
    if object_first:
        return {"object": "whatsapp_business_account", "entry": entry}
    return {"entry": entry, "object": "whatsapp_business_account"}


STATUS_PAGE = REFERENCE + "reference/messages/status"
STATUS_SEEN = seen("referencia/messages/status.md", "scraped 2026-01-24; page of 2025-11-20")
SENT_STATUS: dict[str, Any] = {
    "id": WAMID_SENT,
    "status": "sent",
    "timestamp": "1750030073",
    "recipient_id": CUSTOMER,
}

EXAMPLES: list[WebhookExample] = [
    # Source: .../webhooks/reference/messages/status (example 1: a marketing message sent)
    WebhookExample(
        name="status_sent_with_conversation_and_pricing",
        field="messages",
        payload=messages_webhook(
            {
                "statuses": [
                    {
                        **SENT_STATUS,
                        "conversation": {
                            "id": "72b14d6bd5407799e66f64d1b338e567",
                            "expiration_timestamp": "1750116480",
                            "origin": {"type": "marketing"},
                        },
                        "pricing": {
                            "billable": True,
                            "pricing_model": "PMP",
                            "type": "regular",
                            "category": "marketing",
                        },
                    }
                ]
            }
        ),
        source=STATUS_PAGE,
        source_kind="meta-doc",
        seen_via=STATUS_SEEN,
        notes="`conversation` is a v23.0-and-older field (v24.0+ omits it but for free "
        "entry points): the simulator's include_conversation knob",
    ),
    # Source: .../webhooks/reference/messages/status (example 2: v24.0, "read")
    WebhookExample(
        name="status_v24_without_conversation_or_pricing",
        field="messages",
        payload=messages_webhook({"statuses": [dict(SENT_STATUS)]}),
        source=STATUS_PAGE,
        source_kind="meta-doc",
        seen_via=STATUS_SEEN,
        notes="the page describes this example as a read status but its JSON says "
        '"status": "sent"; pricing rode on the delivered webhook',
    ),
    # Source: .../webhooks/reference/messages/status (example 3: a message that failed)
    WebhookExample(
        name="status_failed_131049",
        field="messages",
        payload=messages_webhook(
            {
                "statuses": [
                    {
                        "id": WAMID_FAILED,
                        "status": "failed",
                        "timestamp": "1751142888",
                        "recipient_id": CUSTOMER,
                        "errors": [
                            {
                                "code": 131049,
                                "title": "This message was not delivered to maintain healthy "
                                "ecosystem engagement.",
                                "message": "This message was not delivered to maintain healthy "
                                "ecosystem engagement.",
                                "error_data": {
                                    "details": "In order to maintain a healthy ecosystem "
                                    "engagement, the message failed to be delivered."
                                },
                                "href": "/documentation/business-messaging/whatsapp/support/"
                                "error-codes",
                            }
                        ],
                    }
                ]
            }
        ),
        source=STATUS_PAGE,
        source_kind="meta-doc",
        seen_via=STATUS_SEEN,
    ),
    # Source: .../webhooks/reference/messages/status (syntax block + parameter examples)
    WebhookExample(
        name="status_with_biz_opaque_callback_data",
        field="messages",
        payload=messages_webhook(
            {"statuses": [{**SENT_STATUS, "biz_opaque_callback_data": "1744434060"}]}
        ),
        source=STATUS_PAGE,
        source_kind="meta-doc",
        seen_via=STATUS_SEEN,
        derived="the page has no example with biz_opaque_callback_data: example 2 with the "
        "syntax block's `biz_opaque_callback_data` (String, only when the send set it) at its "
        "documented place, holding the parameter table's example value",
    ),
    # Source: .../webhooks/reference/messages/text (example 1) and .../webhooks/overview
    WebhookExample(
        name="inbound_text",
        field="messages",
        payload=messages_webhook(
            {
                "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": CUSTOMER}],
                "messages": [
                    {
                        "from": CUSTOMER,
                        "id": WAMID_INBOUND,
                        "timestamp": "1749416383",
                        "type": "text",
                        "text": {"body": "Does it come in another color?"},
                    }
                ],
            }
        ),
        source=REFERENCE + "reference/messages/text",
        source_kind="meta-doc",
        seen_via=seen("referencia/messages/text.md", "scraped 2025-12-20")
        + "; the same example on "
        + REFERENCE
        + "overview",
        derived='the page\'s JSON lacks the comma after "type": "text" (not valid JSON); added',
    ),
    # Source: .../webhooks/reference/account_update ("Account violation")
    WebhookExample(
        name="account_update_violation",
        field="account_update",
        payload=notice_webhook(
            WABA_ID,
            1743451903,
            "account_update",
            {"event": "ACCOUNT_VIOLATION", "violation_info": {"violation_type": "ADULT"}},
            object_first=True,
        ),
        source=REFERENCE + "reference/account_update",
        source_kind="meta-doc",
        seen_via=seen("referencia/account_update.md", "scraped 2026-01-24"),
    ),
    # Source: .../webhooks/reference/account_update ("Disabled update")
    WebhookExample(
        name="account_update_disabled",
        field="account_update",
        payload=notice_webhook(
            WABA_ID,
            1743451903,
            "account_update",
            {
                "event": "DISABLED_UPDATE",
                "ban_info": {"waba_ban_state": "REINSTATE", "waba_ban_date": "April 17, 2025"},
            },
            object_first=True,
        ),
        source=REFERENCE + "reference/account_update",
        source_kind="meta-doc",
        seen_via=seen("referencia/account_update.md", "scraped 2026-01-24"),
    ),
    # Source: .../webhooks/reference/phone_number_quality_update
    WebhookExample(
        name="phone_number_quality_update",
        field="phone_number_quality_update",
        payload=notice_webhook(
            WABA_ID,
            1748454394,
            "phone_number_quality_update",
            {
                "display_phone_number": BUSINESS_DISPLAY_NUMBER,
                "event": "THROUGHPUT_UPGRADE",
                "current_limit": "TIER_UNLIMITED",
            },
        ),
        source=REFERENCE + "reference/phone_number_quality_update",
        source_kind="meta-doc",
        seen_via=seen("referencia/outros_webhooks/phone_number_quality_update.md", "2025-12-20"),
    ),
    # Source: .../webhooks/reference/phone_number_name_update
    WebhookExample(
        name="phone_number_name_update",
        field="phone_number_name_update",
        payload=notice_webhook(
            WABA_ID,
            1739321024,
            "phone_number_name_update",
            {
                "display_phone_number": BUSINESS_DISPLAY_NUMBER,
                "decision": "APPROVED",
                "requested_verified_name": "Lucky Shrub",
                "rejection_reason": None,
            },
        ),
        source=REFERENCE + "reference/phone_number_name_update",
        source_kind="meta-doc",
        seen_via=seen("referencia/outros_webhooks/phone_number_name_update.md", "2025-12-20"),
    ),
    # Source: .../webhooks/reference/business_capability_update
    WebhookExample(
        name="business_capability_update",
        field="business_capability_update",
        payload=notice_webhook(
            "524126980791429",
            1739321024,
            "business_capability_update",
            {"max_daily_conversations_per_business": 2000, "max_phone_numbers_per_waba": 25},
        ),
        source=REFERENCE + "reference/business_capability_update",
        source_kind="meta-doc",
        seen_via=seen("referencia/business_capability_update.md", "scraped 2025-12-20"),
        notes="the parameter table says max_daily_conversations_per_business is TIER_250 .. "
        "TIER_UNLIMITED while the example (and the table's type, Integer) has 2000",
    ),
    # Source: .../webhooks/reference/message_template_status_update (approved)
    WebhookExample(
        name="message_template_status_update_approved",
        field="message_template_status_update",
        payload=notice_webhook(
            WABA_ID,
            1751247548,
            "message_template_status_update",
            {
                "event": "APPROVED",
                "message_template_id": 1689556908129832,
                "message_template_name": "order_confirmation",
                "message_template_language": "en-US",
                "reason": "NONE",
                "message_template_category": "UTILITY",
            },
        ),
        source=REFERENCE + "reference/message_template_status_update",
        source_kind="meta-doc",
        seen_via=seen("referencia/message_template_status_update.md", "scraped 2025-12-20"),
    ),
]

BY_NAME = {example.name: example for example in EXAMPLES}
