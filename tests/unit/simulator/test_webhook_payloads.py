"""Webhook bodies, bytes and signatures as the simulator builds them (pure functions)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from whatsapp_simulator.webhook_notices import notice_status, notice_value
from whatsapp_simulator.webhook_payloads import (
    encode,
    messages_payload,
    notice_payload,
    pricing,
    signature,
    status_error,
    status_item,
)


def test_signature_is_hmac_sha256_of_the_raw_body_with_the_app_secret() -> None:
    body = b'{"object":"whatsapp_business_account"}'
    want = hmac.new(b"app-secret", body, hashlib.sha256).hexdigest()
    assert signature("app-secret", body) == f"sha256={want}"


def test_encoding_is_compact_and_escapes_non_ascii() -> None:
    body = encode({"text": {"body": "äöå 👍"}, "n": 1})
    assert body == b'{"text":{"body":"\\u00e4\\u00f6\\u00e5 \\ud83d\\udc4d"},"n":1}'
    assert json.loads(body) == {"text": {"body": "äöå 👍"}, "n": 1}


def test_messages_payload_envelope() -> None:
    payload = messages_payload("102290129340398", "+1 555-078-3881", "106540352242922", {"x": 1})
    assert payload == {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": "106540352242922",
                            },
                            "x": 1,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def test_notice_payload_has_time_and_no_metadata() -> None:
    payload = notice_payload("1", "account_update", {"event": "ACCOUNT_DELETED"}, 1743451903)
    assert payload["entry"] == [
        {
            "id": "1",
            "time": 1743451903,
            "changes": [{"value": {"event": "ACCOUNT_DELETED"}, "field": "account_update"}],
        }
    ]


ERRORS = [
    (131026, "Message Undeliverable", "Unable to deliver message."),
    (131047, "Re-engagement message",
     "More than 24 hours have passed since the recipient last replied to the sender number."),
    (131049, "This message was not delivered to maintain healthy ecosystem engagement.",
     "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."),
]  # fmt: skip


@pytest.mark.parametrize(("code", "title", "details"), ERRORS)
def test_status_errors_carry_meta_titles(code: int, title: str, details: str) -> None:
    assert status_error(code) == {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": details},
        "href": "/documentation/business-messaging/whatsapp/support/error-codes",
    }


def test_status_item_order_and_types() -> None:
    item = status_item(
        wamid="wamid.X",
        status="sent",
        timestamp=1750030073,
        recipient_id="16505551234",
        opaque="wo1:m-1|",
        pricing_obj=pricing("marketing"),
    )
    assert list(item) == [
        "id", "status", "timestamp", "recipient_id", "biz_opaque_callback_data", "pricing",
    ]  # fmt: skip
    assert item["timestamp"] == "1750030073"
    assert item["pricing"] == {
        "billable": True,
        "pricing_model": "PMP",
        "type": "regular",
        "category": "marketing",
    }
    assert pricing("service")["type"] == "free_customer_service"


NOTICES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("phone_number_quality_update",
     {"event": "THROUGHPUT_UPGRADE", "current_limit": "TIER_UNLIMITED"},
     {"display_phone_number": "15550783881", "event": "THROUGHPUT_UPGRADE",
      "current_limit": "TIER_UNLIMITED"}),
    ("phone_number_quality_update",
     {"event": "DOWNGRADE", "old_limit": "TIER_10K", "current_limit": "TIER_2K"},
     {"display_phone_number": "15550783881", "event": "DOWNGRADE", "old_limit": "TIER_10K",
      "current_limit": "TIER_2K"}),
    ("phone_number_name_update", {"decision": "APPROVED"},
     {"display_phone_number": "15550783881", "decision": "APPROVED",
      "requested_verified_name": "Lucky Shrub", "rejection_reason": None}),
    ("account_update",
     {"event": "ACCOUNT_VIOLATION", "violation_info": {"violation_type": "ADULT"}},
     {"event": "ACCOUNT_VIOLATION", "violation_info": {"violation_type": "ADULT"}}),
    ("business_capability_update",
     {"max_daily_conversations_per_business": 2000, "max_phone_numbers_per_waba": 25},
     {"max_daily_conversations_per_business": 2000, "max_phone_numbers_per_waba": 25}),
    ("message_template_status_update",
     {"event": "APPROVED", "message_template_id": 1689556908129832,
      "message_template_name": "order_confirmation", "message_template_language": "en-US",
      "message_template_category": "UTILITY"},
     {"event": "APPROVED", "message_template_id": 1689556908129832,
      "message_template_name": "order_confirmation", "message_template_language": "en-US",
      "reason": "NONE", "message_template_category": "UTILITY"}),
    ("anything_else", {"value": {"k": "v"}}, {"k": "v"}),
]  # fmt: skip


@pytest.mark.parametrize(("field", "given", "want"), NOTICES)
def test_notice_values(field: str, given: dict[str, Any], want: dict[str, Any]) -> None:
    body = {"field": field, "phone_number_id": "106540352242922", **given}
    value = notice_value(
        field, body, display_phone_number="+1 555-078-3881", verified_name="Lucky Shrub"
    )
    assert value == want


@pytest.mark.parametrize(
    ("field", "given", "error"),
    [("phone_number_quality_update", {"current_limit": "TIER_2K"}, "event"),
     ("phone_number_name_update", {}, "decision"),
     ("account_update", {}, "event"),
     ("business_capability_update", {}, "limits"),
     ("message_template_status_update", {"event": "APPROVED"}, "message_template_name"),
     ("security", {}, "whole 'value'")],
)  # fmt: skip
def test_notice_values_need_their_keys(field: str, given: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        notice_value(field, {"field": field, **given})


def test_notice_status() -> None:
    assert notice_status({"event": "FLAGGED"}) == "FLAGGED"
    assert notice_status({"decision": "REJECTED"}) == "REJECTED"
    assert notice_status({"max_phone_numbers_per_waba": 25}) == ""
