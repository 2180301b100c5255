"""What a change becomes (whatsapp_webhook/events.py): table-driven plans, the events' shapes,
and the status log read back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from whatsapp_contract.webhook import (
    INBOUND_EXCHANGE,
    NOTICES_EXCHANGE,
    RESULTS_EXCHANGE,
    WINDOWS_EXCHANGE,
    NumberEntry,
    encode_callback,
    parse_window_record,
)
from whatsapp_webhook.change import Change
from whatsapp_webhook.events import log_records, memory_keys, plan
from whatsapp_webhook.status_memory import SEEN, inbound_key

ROUTE = NumberEntry(
    phone_number_id="106540352242922",
    waba_id="102290129340398",
    display_phone_number="15550783881",
    tenant_id="acme",
    namespace="shop",
    name="acme-main",
    pool="eu",
    app_id="424242",
)
OTHER = ROUTE.model_copy(update={"tenant_id": "beta", "namespace": "beta-ns", "name": "b"})
AT = 1_700_000_000.5


def status(wamid: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": wamid,
        "status": name,
        "timestamp": "1749416383",
        "recipient_id": "16505551234",
        **extra,
    }


def change(field: str, value: dict[str, Any], routes: tuple[NumberEntry, ...] = (ROUTE,)) -> Change:
    if field == "messages":
        value = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": "15550783881",
                "phone_number_id": ROUTE.phone_number_id,
            },
            **value,
        }
    return Change("424242", ROUTE.waba_id, field, value, routes, received_at=AT - 1)


def statuses(*items: dict[str, Any]) -> Change:
    return change("messages", {"statuses": list(items)})


def inbound(*ids: str) -> Change:
    messages = [
        {"from": "16505551234", "id": i, "timestamp": "1749416383", "type": "text",
         "text": {"body": "Does it come in another color?"}}
        for i in ids
    ]  # fmt: skip
    value = {"contacts": [{"profile": {"name": "Sheena"}, "wa_id": "16505551234"}]}
    return change("messages", {**value, "messages": messages})


def summary(c: Change, known: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    decided = plan(c, (known or {}).get, at=AT)
    return [(o.exchange, o.routing_key, o.kind) for o in decided.publish]


@pytest.mark.parametrize(
    ("c", "known", "expected", "duplicates", "dropped"),
    [
        pytest.param(
            statuses(status("w1", "sent")), {}, [(RESULTS_EXCHANGE, "eu.sent", "status")], {}, {},
            id="a new status: one result event to <pool>.<status>",
        ),
        pytest.param(
            statuses(status("w1", "sent")), {"w1": "sent"}, [], {"status": 1}, {},
            id="a status already published: a duplicate",
        ),
        pytest.param(
            statuses(status("w1", "sent")), {"w1": "delivered"}, [], {"status": 1}, {},
            id="a status behind the published one: dropped as out of order",
        ),
        pytest.param(
            statuses(status("w1", "read")), {"w1": "sent"},
            [(RESULTS_EXCHANGE, "eu.read", "status")], {}, {},
            id="a status ahead of the published one: published",
        ),
        pytest.param(
            statuses(status("w1", "delivered"), status("w1", "sent"), status("w1", "delivered")),
            {}, [(RESULTS_EXCHANGE, "eu.delivered", "status")], {"status": 2}, {},
            id="one change with a reordered and a repeated status: forward only within it",
        ),
        pytest.param(
            statuses(status("w1", "sent"), status("w2", "failed")), {},
            [(RESULTS_EXCHANGE, "eu.sent", "status"), (RESULTS_EXCHANGE, "eu.failed", "status")],
            {}, {}, id="two messages' statuses: both",
        ),
        pytest.param(
            statuses(status("w1", "deleted"), {"status": "sent"}), {}, [], {},
            {"unknown_status": 2}, id="a status name or id that is not ours: dropped",
        ),
        pytest.param(
            inbound("wamid.in1"), {},
            [(INBOUND_EXCHANGE, "acme", "message"), (WINDOWS_EXCHANGE, "eu", "window")], {}, {},
            id="an inbound message: the envelope to the tenant, a window record to the pool",
        ),
        pytest.param(
            inbound("wamid.in1"), {inbound_key("wamid.in1"): SEEN},
            [(WINDOWS_EXCHANGE, "eu", "window")], {"message": 1}, {},
            id="an inbound message already handed on: its window record only (idempotent)",
        ),
        pytest.param(
            inbound("wamid.in1", "wamid.in2"), {inbound_key("wamid.in1"): SEEN},
            [(INBOUND_EXCHANGE, "acme", "message"), (WINDOWS_EXCHANGE, "eu", "window"),
             (WINDOWS_EXCHANGE, "eu", "window")], {}, {},
            id="a change with one new inbound message: published",
        ),
        pytest.param(
            change("account_update", {"event": "ACCOUNT_RESTRICTED"}, (ROUTE, OTHER)), {},
            [(NOTICES_EXCHANGE, "shop", "notice"), (NOTICES_EXCHANGE, "beta-ns", "notice")],
            {}, {}, id="a notice field: one notice per route, to its namespace",
        ),
        pytest.param(
            change("message_echoes", {"x": 1}), {}, [], {}, {"unrouted_field": 1},
            id="a field the receiver does not hand on: dropped",
        ),
        pytest.param(
            change("messages", {"errors": [{"code": 131000}]}), {}, [], {},
            {"unrouted_field": 1}, id="a messages change without statuses or messages: dropped",
        ),
        pytest.param(
            change("messages", {"statuses": [status("w1", "sent")]}, ()), {}, [], {},
            {"no_route": 1}, id="a change without a route: dropped",
        ),
    ],
)  # fmt: skip
def test_plan(
    c: Change,
    known: dict[str, str],
    expected: list[tuple[str, str, str]],
    duplicates: dict[str, int],
    dropped: dict[str, int],
) -> None:
    decided = plan(c, known.get, at=AT)
    assert [(o.exchange, o.routing_key, o.kind) for o in decided.publish] == expected
    assert dict(decided.duplicates) == duplicates
    assert dict(decided.dropped) == dropped


def test_a_status_event_joins_the_producers_message() -> None:
    errors = [{"code": 131049, "title": "Not delivered", "message": "Not delivered",
               "error_data": {"details": "healthy ecosystem"}}]  # fmt: skip
    c = statuses(
        status(
            "wamid.F", "failed", errors=errors,
            biz_opaque_callback_data=encode_callback("m-7", "p"),
            pricing={"billable": True, "category": "marketing"}, conversation={"id": "c1"},
        )
    )  # fmt: skip
    (out,) = plan(c, {}.get, at=AT).publish
    event = json.loads(out.body)
    assert event == {
        "schemaVersion": 1, "source": "webhook", "pool": "eu", "tenantId": "acme",
        "phoneNumberId": ROUTE.phone_number_id, "messageId": "m-7", "status": "failed",
        "wamid": "wamid.F", "recipient": "16505551234", "timestamp": 1749416383, "at": AT,
        "callbackData": "p", "conversation": {"id": "c1"},
        "pricing": {"billable": True, "category": "marketing"},
        "error": {"code": 131049, "title": "Not delivered", "message": "Not delivered",
                  "details": "healthy ecosystem"},
        "errors": errors,
    }  # fmt: skip
    assert out.learns == (("wamid.F", "failed"),)
    assert out.message_id == "wamid.F:failed"
    assert out.status == "failed"


@pytest.mark.parametrize(
    ("opaque", "message_id", "callback"),
    [
        pytest.param(None, None, None, id="no callback data: no message id"),
        pytest.param("their-own", None, "their-own", id="a producer's data only"),
        pytest.param(encode_callback("m-1"), "m-1", None, id="the worker's message id only"),
    ],
)
def test_callback_data(opaque: str | None, message_id: str | None, callback: str | None) -> None:
    extra = {} if opaque is None else {"biz_opaque_callback_data": opaque}
    (out,) = plan(statuses(status("w", "sent", **extra)), {}.get, at=AT).publish
    event = json.loads(out.body)
    assert event["messageId"] == message_id
    assert event.get("callbackData") == callback


def test_the_inbound_envelope_and_its_window() -> None:
    c = inbound("wamid.in1")
    envelope, window = plan(c, {}.get, at=AT).publish
    assert json.loads(envelope.body) == {
        "metadata": {
            "tenantId": "acme", "namespace": "shop", "name": "acme-main", "pool": "eu",
            "phoneNumberId": ROUTE.phone_number_id, "displayPhoneNumber": "15550783881",
            "wabaId": ROUTE.waba_id, "receivedAt": AT - 1,
        },
        "value": c.value,
    }  # fmt: skip
    assert envelope.learns == ((inbound_key("wamid.in1"), SEEN),)
    assert envelope.message_id == "wamid.in1"
    assert parse_window_record(window.body) == (ROUTE.phone_number_id, "16505551234", 1749416383)


def test_a_notice_carries_the_tenant_and_value() -> None:
    c = change("phone_number_quality_update", {"event": "FLAGGED", "current_limit": "TIER_1K"})
    (out,) = plan(c, {}.get, at=AT).publish
    assert json.loads(out.body) == {
        "schemaVersion": 1, "kind": "phone_number_quality_update", "namespace": "shop",
        "name": "acme-main", "tenantId": "acme", "wabaId": ROUTE.waba_id,
        "value": {"event": "FLAGGED", "current_limit": "TIER_1K"}, "at": AT,
    }  # fmt: skip


def test_memory_keys_name_what_the_plan_consults() -> None:
    assert memory_keys(statuses(status("w1", "sent"), status("w2", "read"))) == ["w1", "w2"]
    assert memory_keys(inbound("a", "b")) == [inbound_key("a"), inbound_key("b")]
    assert memory_keys(change("account_update", {})) == []


@pytest.mark.parametrize(
    ("body", "records"),
    [
        pytest.param(
            plan(statuses(status("w1", "read")), {}.get, at=AT).publish[0].body, [("w1", "read")],
            id="the receiver's result event",
        ),
        pytest.param(
            plan(inbound("i1", "i2"), {}.get, at=AT).publish[0].body,
            [(inbound_key("i1"), SEEN), (inbound_key("i2"), SEEN)], id="an inbound envelope",
        ),
        pytest.param(
            json.dumps({"status": "failed", "wamid": None, "messageId": "m"}).encode(), [],
            id="a worker's failed event (no source): not the receiver's",
        ),
        pytest.param(
            json.dumps({"source": "webhook", "status": "deleted", "wamid": "w"}).encode(), [],
            id="a status that is not ours",
        ),
        pytest.param(b'{"marker": "x"}', [], id="a marker"),
        pytest.param(b"not json", [], id="not JSON"),
        pytest.param(b"[1]", [], id="not an object"),
    ],
)  # fmt: skip
def test_log_records(body: bytes, records: list[tuple[str, str]]) -> None:
    assert log_records(body) == records
