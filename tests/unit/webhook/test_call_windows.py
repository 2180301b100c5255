"""A customer's call opens the 24-hour customer-service window (whatsapp_webhook/events.py,
payload.py): Meta, Calling API pricing, "How calling changes the 24 hour customer service
window" (https://developers.facebook.com/docs/whatsapp/cloud-api/calling/pricing): "the
customer service window now also starts or refreshes for calls: when a WhatsApp user calls
you, regardless of if you accept the call or not; when a WhatsApp user accepts your call."
A `calls` change is routed by its number like `messages`; a user's `connect` and a business
call the user ACCEPTED each give a window record; the business's own calls, other call events
and the business ringing give none."""

from __future__ import annotations

from typing import Any

import pytest

from whatsapp_contract.webhook import WINDOWS_EXCHANGE, NumberEntry, parse_window_record
from whatsapp_testkit.webhook import envelope
from whatsapp_webhook.change import Change
from whatsapp_webhook.config import Index
from whatsapp_webhook.events import plan
from whatsapp_webhook.payload import route_payload

BUSINESS = "15550100"  # number 2001's display number (conftest), as Meta writes it
USER = "16315553601"
TS = 1_750_000_100
OURS = {"from": BUSINESS, "to": USER}  # a call the business places
ROUTE = NumberEntry(
    phone_number_id="2001", waba_id="3001", display_phone_number=BUSINESS, tenant_id="acme",
    namespace="shop", name="acme", pool="p1", app_id="1001",
)  # fmt: skip


def calls_value(
    *calls: dict[str, Any], statuses: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": BUSINESS, "phone_number_id": "2001"},
        "calls": list(calls),
    }
    if statuses is not None:
        value["statuses"] = statuses
    return value


def call(event: str = "connect", **fields: Any) -> dict[str, Any]:
    base = {"id": "wacid.HBgLMTY1MDM4Nzk0MzkVAgARGBI", "from": USER, "to": BUSINESS,
            "event": event, "timestamp": str(TS), "direction": "USER_INITIATED",
            "session": {"sdp_type": "offer", "sdp": "v=0"}}  # fmt: skip
    return {k: v for k, v in {**base, **fields}.items() if v is not None}  # None: left out


def call_status(status: str) -> dict[str, Any]:
    return {"id": "wacid.X", "type": "call", "status": status, "timestamp": str(TS),
            "recipient_id": USER}  # fmt: skip


def nothing_known(key: str) -> str | None:
    """The receiver's memory: calls consult none of it."""
    return None


def test_a_calls_change_is_routed_by_its_number(index: Index) -> None:
    routing = route_payload(envelope("3001", ("calls", calls_value(call()))), "1001", index, 1.0)
    assert routing.drops == ()
    ((changed),) = routing.changes
    assert (changed.field, [r.phone_number_id for r in changed.routes]) == ("calls", ["2001"])


@pytest.mark.parametrize(
    ("value", "windows"),
    [
        pytest.param(calls_value(call()), [USER], id="a user's call opens the window"),
        pytest.param(calls_value(call(direction="user_initiated")), [USER],
                     id="the direction in lower case"),
        pytest.param(calls_value(call(direction=None, call_direction="user_initiated")), [USER],
                     id="the direction as Messenger's calling webhooks name it"),
        pytest.param(calls_value(call(direction=None, call_direction="business_initiated")), [],
                     id="call_direction: the business's call"),
        pytest.param(calls_value(call(direction=None)), [USER],
                     id="no direction (older payloads): a call from another number to ours"),
        pytest.param(calls_value(call(direction="BUSINESS_INITIATED", **OURS)), [],
                     id="the business's own call: no window"),
        pytest.param(calls_value(call(direction=None, **OURS)), [],
                     id="no direction, from the business: no window"),
        pytest.param(calls_value(call("terminate", status="COMPLETED")), [],
                     id="the end of a call: nothing new"),
        pytest.param(calls_value(call(timestamp="soon")), [], id="no timestamp: no window"),
        pytest.param(calls_value(statuses=[call_status("ACCEPTED")]), [USER],
                     id="the user accepts the business's call: the window opens"),
        pytest.param(calls_value(statuses=[call_status("RINGING"), call_status("REJECTED")]), [],
                     id="ringing, rejected: no window"),
        pytest.param(calls_value(call(), call(**{"from": "447700900123"})), [USER, "447700900123"],
                     id="one window per user's call"),
    ],
)  # fmt: skip
def test_call_windows(value: dict[str, Any], windows: list[str]) -> None:
    result = plan(Change("1001", "3001", "calls", value, (ROUTE,), 1.0), nothing_known, at=2.0)
    assert [(o.exchange, o.routing_key, o.kind) for o in result.publish] == [
        (WINDOWS_EXCHANGE, "p1", "window")
    ] * len(windows)
    assert [parse_window_record(o.body) for o in result.publish] == [
        ("2001", w, TS) for w in windows
    ]
    assert result.dropped == ({} if windows else {"unrouted_field": 1})
