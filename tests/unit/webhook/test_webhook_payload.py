"""Meta's payload split into changes and routed to tenants (payload.route_payload): by
`metadata.phone_number_id` for `messages`, by the WABA (`entry[].id`) for account-level
fields, only to numbers of the app that signed. Table-driven; the world is conftest.py's."""

from __future__ import annotations

from typing import Any

import pytest

from whatsapp_testkit.webhook import envelope, message_value, status_value
from whatsapp_webhook.change import Change, dump_change, parse_change
from whatsapp_webhook.config import Index
from whatsapp_webhook.payload import BadShape, Drop, route_payload

A, B = "1001", "1002"
NOW = 1_750_000_000.5


def two_entries() -> dict[str, Any]:
    first = envelope("3001", ("messages", status_value("2001", "wamid.1")))
    second = envelope("3001", ("messages", message_value("2002", "wamid.2")))
    first["entry"] += second["entry"]
    return first


ROUTED = [
    pytest.param(envelope("3001", ("messages", status_value("2001", "wamid.1"))), A,
                 [("messages", "3001", ["2001"])], [], id="a status of a number of the app"),
    pytest.param(envelope("3001", ("messages", message_value("2002", "wamid.2"))), A,
                 [("messages", "3001", ["2002"])], [], id="an inbound message"),
    pytest.param(envelope("3001", ("messages", status_value("2001", "w.1")),
                          ("messages", status_value("2002", "w.2"))), A,
                 [("messages", "3001", ["2001"]), ("messages", "3001", ["2002"])], [],
                 id="two changes in one entry"),
    pytest.param(two_entries(), A,
                 [("messages", "3001", ["2001"]), ("messages", "3001", ["2002"])], [],
                 id="two entries"),
    pytest.param(envelope("3002", ("messages", status_value("2003", "w"))), A,
                 [], [Drop("app_mismatch", "messages", "2003")],
                 id="app A speaking for app B's number: dropped"),
    pytest.param(envelope("3001", ("messages", status_value("2999", "w"))), A,
                 [], [Drop("unknown_number", "messages", "2999")], id="an unknown number"),
    pytest.param(envelope("3001", ("messages", status_value("2001", "w.1")),
                          ("messages", status_value("2999", "w.2"))), A,
                 [("messages", "3001", ["2001"])], [Drop("unknown_number", "messages", "2999")],
                 id="one change routed, one dropped"),
    pytest.param(envelope("3001", ("account_update", {"event": "VERIFIED_ACCOUNT"})), A,
                 [("account_update", "3001", ["2001", "2002"])], [],
                 id="account_update: every number of the WABA"),
    pytest.param(envelope("3001", ("message_template_status_update",
                                   {"event": "APPROVED", "message_template_id": 1})), A,
                 [("message_template_status_update", "3001", ["2001", "2002"])], [],
                 id="template status"),
    pytest.param(envelope("3001", ("business_capability_update",
                                   {"max_daily_conversation_per_phone": 1000})), A,
                 [("business_capability_update", "3001", ["2001", "2002"])], [],
                 id="business capability"),
    pytest.param(envelope("3001", ("phone_number_quality_update",
                                   {"display_phone_number": "15550101", "event": "FLAGGED"})), A,
                 [("phone_number_quality_update", "3001", ["2002"])], [],
                 id="quality update: narrowed to the number it names"),
    pytest.param(envelope("3001", ("phone_number_name_update",
                                   {"display_phone_number": "+1 (555) 0100",
                                    "decision": "APPROVED"})), A,
                 [("phone_number_name_update", "3001", ["2001"])], [],
                 id="name update: the display number in any punctuation"),
    pytest.param(envelope("3001", ("phone_number_quality_update",
                                   {"display_phone_number": "15559999", "event": "FLAGGED"})), A,
                 [], [Drop("unknown_number", "phone_number_quality_update", "3001")],
                 id="quality update of a number no tenant holds"),
    pytest.param(envelope("3003", ("phone_number_quality_update",
                                   {"display_phone_number": "15550300", "event": "FLAGGED"})), A,
                 [], [Drop("unknown_number", "phone_number_quality_update", "3003")],
                 id="quality update, the display number not known: not guessed"),
    pytest.param(envelope("3001", ("phone_number_quality_update", {"event": "FLAGGED"})), A,
                 [("phone_number_quality_update", "3001", ["2001", "2002"])], [],
                 id="quality update naming no number: the WABA's"),
    pytest.param(envelope("3002", ("account_update", {"event": "ACCOUNT_VIOLATION"})), A,
                 [], [Drop("app_mismatch", "account_update", "3002")],
                 id="app A speaking for app B's WABA: dropped"),
    pytest.param(envelope("3002", ("account_update", {"event": "ACCOUNT_VIOLATION"})), B,
                 [("account_update", "3002", ["2003"])], [], id="app B for its own WABA"),
    pytest.param(envelope("3999", ("account_update", {"event": "X"})), A,
                 [], [Drop("unknown_number", "account_update", "3999")], id="an unknown WABA"),
    pytest.param(envelope("3001", ("security", {"event": "PIN_CHANGED"})), A,
                 [], [Drop("unrouted_field", "security", "3001")], id="a field not routed"),
    pytest.param({"object": "page", "entry": [{"id": "1", "messaging": []}]}, A,
                 [], [Drop("unrouted_field", "object:page", "")], id="another product's webhook"),
    pytest.param({"object": "whatsapp_business_account", "entry": []}, A, [], [],
                 id="no entries"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "app", "changes", "drops"), ROUTED)
def test_routing(
    index: Index, body: dict[str, Any], app: str,
    changes: list[tuple[str, str, list[str]]], drops: list[Drop],
) -> None:  # fmt: skip
    routing = route_payload(body, app, index, NOW)
    got = [(c.field, c.waba_id, [r.phone_number_id for r in c.routes]) for c in routing.changes]
    assert got == changes
    assert list(routing.drops) == drops
    assert all(c.app_id == app and c.received_at == NOW for c in routing.changes)


def test_a_change_keeps_metas_value_and_its_shard_key(index: Index) -> None:
    value = status_value("2001", "wamid.1", callback="wo1:m-1|x")
    (change,) = route_payload(envelope("3001", ("messages", value)), A, index, NOW).changes
    assert change.value == value
    assert change.shard_key == "2001"  # the number: all statuses of a message in one shard
    account = route_payload(envelope("3001", ("account_update", {"e": 1})), A, index, NOW)
    assert account.changes[0].shard_key == "3001"  # no number: the WABA


def test_a_change_survives_the_broker_round_trip(index: Index) -> None:
    (change,) = route_payload(
        envelope("3001", ("messages", status_value("2001", "wamid.1"))), A, index, NOW
    ).changes
    back = parse_change(dump_change(change))
    assert back == change
    assert isinstance(back, Change)
    assert back.change_id == change.change_id


def test_a_retried_webhook_has_the_same_change_ids(index: Index) -> None:
    body = envelope("3001", ("messages", status_value("2001", "wamid.1")))
    first = route_payload(body, A, index, NOW).changes[0]
    again = route_payload(body, A, index, NOW + 3600).changes[0]
    assert first.change_id == again.change_id


def entry(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "3001", "changes": [
        {"field": "messages", "value": status_value("2001", "w")}]}  # fmt: skip
    base.update(over)
    return {"object": "whatsapp_business_account", "entry": [base]}


def change(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"field": "messages", "value": status_value("2001", "w")}
    base.update(over)
    return entry(changes=[base])


BAD = [
    pytest.param([], id="a list"),
    pytest.param("text", id="a string"),
    pytest.param({"entry": []}, id="no object"),
    pytest.param({"object": 5, "entry": []}, id="object not a string"),
    pytest.param({"object": "whatsapp_business_account"}, id="no entry"),
    pytest.param({"object": "whatsapp_business_account", "entry": {}}, id="entry not a list"),
    pytest.param({"object": "whatsapp_business_account", "entry": ["x"]},
                 id="entry item not an object"),
    pytest.param(entry(id=None), id="entry without id"),
    pytest.param(entry(id=3001), id="entry id a number"),
    pytest.param(entry(id=""), id="entry id empty"),
    pytest.param(entry(changes=None), id="entry without changes"),
    pytest.param(entry(changes=["x"]), id="change not an object"),
    pytest.param(change(field=None), id="change without field"),
    pytest.param(change(value=[]), id="value not an object"),
    pytest.param(change(value={"statuses": []}), id="messages change without metadata"),
    pytest.param(change(value={"metadata": {"display_phone_number": "1"}}),
                 id="metadata without phone_number_id"),
    pytest.param(change(value={"metadata": {"phone_number_id": 2001}}),
                 id="phone_number_id a number"),
]  # fmt: skip


@pytest.mark.parametrize("body", BAD)
def test_not_metas_shape_is_refused_whole(index: Index, body: object) -> None:
    with pytest.raises(BadShape) as err:
        route_payload(body, A, index, NOW)
    assert "secret" not in str(err.value)
