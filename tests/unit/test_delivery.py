"""One queued message as the worker sees it (worker/whatsapp_worker/delivery.py)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from whatsapp_worker.delivery import (
    H_ATTEMPTS,
    H_CLASS,
    H_CODE,
    H_DEAD_AT,
    H_DETAIL,
    H_HELD_SINCE,
    H_PAIR_THROTTLES,
    H_POSSIBLE_DUPLICATE,
    H_REASON,
    H_SHARD,
    H_TENANT,
    H_THROTTLES,
    TASK_NAME,
    Failure,
    SendAnswer,
    answer_of,
    attempt_headers,
    dead_letter_headers,
    decode,
    is_task,
    read_attempt,
    result_event,
    wamid_of,
)
from whatsapp_worker.messages import (
    INVALID_ENVELOPE,
    MAX_BODY_BYTES,
    NOT_JSON,
    TOO_LARGE,
    InvalidMessage,
    OutboundMessage,
)
from whatsapp_worker.policy import Action, Attempt, Decision

MESSAGE: dict[str, Any] = {
    "metadata": {"tenantId": "t_1", "phoneNumberId": "123456"},
    "wabaPayload": {"to": "34600000001", "type": "text", "text": {"body": "hi"}},
}
OTHER: dict[str, Any] = {
    "metadata": {"tenantId": "t_2", "phoneNumberId": "654321", "messageId": "m-2"},
    "wabaPayload": {"to": "+44 7700 900123", "type": "text", "text": {"body": "yo"}},
}
EXPECTED = OutboundMessage(
    tenant_id="t_1",
    phone_number_id="123456",
    message_id=None,
    to="+34600000001",
    type="text",
    payload={
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+34600000001",
        "type": "text",
        "text": {"body": "hi"},
    },
)
EXPECTED_OTHER = OutboundMessage(
    tenant_id="t_2",
    phone_number_id="654321",
    message_id="m-2",
    to="+447700900123",
    type="text",
    payload={
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+447700900123",
        "type": "text",
        "text": {"body": "yo"},
    },
)
TASK = {"task": TASK_NAME, "id": "6f0c1c1e-0000-4000-8000-000000000001", "lang": "py"}
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def plain(message: Any) -> bytes:
    return json.dumps(message).encode()


def task_body(args: Any, kwargs: Any, embed: Any = None) -> bytes:
    return json.dumps([args, kwargs, EMBED if embed is None else embed]).encode()


def padded(body: bytes, size: int) -> bytes:
    """`body` with trailing JSON whitespace up to `size` bytes."""
    return body + b" " * (size - len(body))


# --- is_task / decode ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({}, False, id="no headers"),
        pytest.param({"x-producer": "a"}, False, id="producer headers only"),
        pytest.param({"task": TASK_NAME}, False, id="task without id"),
        pytest.param({"id": "1"}, False, id="id without task"),
        pytest.param({"task": TASK_NAME, "id": "1"}, True, id="task and id"),
        pytest.param({"task": "other", "id": "1"}, True, id="another task is still a task"),
    ],
)
def test_is_task(headers: dict[str, Any], expected: bool) -> None:
    assert is_task(headers) is expected


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        pytest.param(plain(MESSAGE), {}, EXPECTED, id="plain JSON"),
        pytest.param(plain(OTHER), {"x-trace": "abc"}, EXPECTED_OTHER, id="plain with headers"),
        pytest.param(
            plain(MESSAGE), {"task": TASK_NAME}, EXPECTED, id="plain: task header without id"
        ),
        pytest.param(
            padded(plain(MESSAGE), MAX_BODY_BYTES), {}, EXPECTED, id="plain: exactly the limit"
        ),
        pytest.param(task_body([MESSAGE], {}), TASK, EXPECTED, id="task: message as args[0]"),
        pytest.param(
            task_body([], {"message": MESSAGE}), TASK, EXPECTED, id="task: kwargs message"
        ),
        pytest.param(task_body([MESSAGE], {"message": OTHER}), TASK, EXPECTED, id="task: args win"),
        pytest.param(
            task_body([OTHER, MESSAGE], {}), TASK, EXPECTED_OTHER, id="task: only args[0]"
        ),
        pytest.param(
            task_body({"not": "a list"}, {"message": MESSAGE}),
            TASK,
            EXPECTED,
            id="task: args not a list, kwargs used",
        ),
        pytest.param(
            task_body([MESSAGE], {}, {}), TASK, EXPECTED, id="task: embed contents ignored"
        ),
        pytest.param(
            padded(task_body([MESSAGE], {}), MAX_BODY_BYTES),
            TASK,
            EXPECTED,
            id="task: exactly the limit",
        ),
    ],
)
def test_decode(body: bytes, headers: dict[str, Any], expected: OutboundMessage) -> None:
    assert decode(body, headers) == expected


@pytest.mark.parametrize(
    ("body", "headers", "reason", "detail"),
    [
        pytest.param(
            task_body([MESSAGE], {}),
            {**TASK, "task": "celery.ping"},
            INVALID_ENVELOPE,
            "unknown task celery.ping",
            id="unknown task name",
        ),
        pytest.param(
            task_body([MESSAGE], {}),
            {**TASK, "task": "x" * 300},
            INVALID_ENVELOPE,
            "unknown task " + "x" * 100,
            id="unknown task name is cut at 100 characters",
        ),
        pytest.param(
            task_body([MESSAGE], {}),
            {**TASK, "task": None},
            INVALID_ENVELOPE,
            "unknown task None",
            id="task name null",
        ),
        pytest.param(
            padded(task_body([MESSAGE], {}), MAX_BODY_BYTES + 1),
            TASK,
            TOO_LARGE,
            f"the task body is over {MAX_BODY_BYTES} bytes",
            id="oversized task body",
        ),
        pytest.param(
            b"not json", TASK, NOT_JSON, "the task body is not JSON", id="task body not JSON"
        ),
        pytest.param(b"", TASK, NOT_JSON, "the task body is not JSON", id="empty task body"),
        pytest.param(
            b'[[{"a": "\xff"}], {}, {}]',
            TASK,
            NOT_JSON,
            "the task body is not JSON",
            id="task body not UTF-8",
        ),
        pytest.param(
            plain({"a": 1}),
            TASK,
            INVALID_ENVELOPE,
            "the task body is not [args, kwargs, embed]",
            id="task body is an object",
        ),
        pytest.param(
            json.dumps([[MESSAGE], {}]).encode(),
            TASK,
            INVALID_ENVELOPE,
            "the task body is not [args, kwargs, embed]",
            id="task body of 2 items",
        ),
        pytest.param(
            json.dumps([[MESSAGE], {}, {}, {}]).encode(),
            TASK,
            INVALID_ENVELOPE,
            "the task body is not [args, kwargs, embed]",
            id="task body of 4 items",
        ),
        pytest.param(
            b'"[args, kwargs, embed]"',
            TASK,
            INVALID_ENVELOPE,
            "the task body is not [args, kwargs, embed]",
            id="task body is a string",
        ),
        pytest.param(
            task_body([], {}),
            TASK,
            INVALID_ENVELOPE,
            "send_message needs the message as its argument",
            id="no args, no kwargs",
        ),
        pytest.param(
            task_body([], {"msg": MESSAGE}),
            TASK,
            INVALID_ENVELOPE,
            "send_message needs the message as its argument",
            id="kwargs under another name",
        ),
        pytest.param(
            task_body(None, None),
            TASK,
            INVALID_ENVELOPE,
            "send_message needs the message as its argument",
            id="args and kwargs null",
        ),
        pytest.param(
            task_body([], [MESSAGE]),
            TASK,
            INVALID_ENVELOPE,
            "send_message needs the message as its argument",
            id="kwargs is a list",
        ),
        pytest.param(
            task_body(["a string"], {}),
            TASK,
            NOT_JSON,
            "message: must be a JSON object, not a string",
            id="args[0] is not an object",
        ),
        pytest.param(
            task_body([], {"message": [MESSAGE]}),
            TASK,
            NOT_JSON,
            "message: must be a JSON object, not an array",
            id="kwargs message is not an object",
        ),
        pytest.param(
            b"not json",
            {},
            NOT_JSON,
            "body: not valid JSON (Expecting value at line 1 column 1)",
            id="plain body not JSON",
        ),
        pytest.param(
            padded(plain(MESSAGE), MAX_BODY_BYTES + 1),
            {},
            TOO_LARGE,
            f"body: {MAX_BODY_BYTES + 1} bytes is over the limit of {MAX_BODY_BYTES} bytes",
            id="plain body too large",
        ),
    ],
)
def test_decode_refuses(body: bytes, headers: dict[str, Any], reason: str, detail: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        decode(body, headers)
    assert (info.value.reason, info.value.detail) == (reason, detail)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(task_body([{"wabaPayload": MESSAGE["wabaPayload"]}], {}), id="no metadata"),
        pytest.param(
            task_body([{**MESSAGE, "metadata": {"tenantId": "t_1", "phoneNumberId": 123456}}], {}),
            id="phoneNumberId as a number",
        ),
    ],
)
def test_decode_task_checks_the_envelope(body: bytes) -> None:
    with pytest.raises(InvalidMessage) as info:
        decode(body, TASK)
    assert info.value.reason == INVALID_ENVELOPE


NESTED = b"[" * 100_000  # 100 kB: under the size limit, deeper than any recursion limit


def test_deeply_nested_plain_body_is_not_json() -> None:
    with pytest.raises(InvalidMessage) as info:
        decode(NESTED, {})
    assert (info.value.reason, info.value.detail) == (
        NOT_JSON,
        "body: not valid JSON (nested too deeply)",
    )


def test_deeply_nested_task_body_is_not_json() -> None:
    with pytest.raises(InvalidMessage) as info:
        decode(NESTED, TASK)
    assert (info.value.reason, info.value.detail) == (NOT_JSON, "the task body is not JSON")


# --- read_attempt / attempt_headers ----------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({}, Attempt(), id="no headers"),
        pytest.param({"x-producer": "p"}, Attempt(), id="only producer headers"),
        pytest.param(
            {H_ATTEMPTS: 2, H_THROTTLES: 3, H_PAIR_THROTTLES: 1, H_HELD_SINCE: "1700000000.5"},
            Attempt(attempts=2, throttles=3, pair_throttles=1, held_since=1700000000.5),
            id="ints and a repr'd float",
        ),
        pytest.param(
            {H_ATTEMPTS: "2", H_THROTTLES: "3", H_PAIR_THROTTLES: "4", H_HELD_SINCE: "12"},
            Attempt(attempts=2, throttles=3, pair_throttles=4, held_since=12.0),
            id="strings",
        ),
        pytest.param(
            {H_ATTEMPTS: b"5", H_THROTTLES: b"0", H_PAIR_THROTTLES: b"2", H_HELD_SINCE: b"7.25"},
            Attempt(attempts=5, throttles=0, pair_throttles=2, held_since=7.25),
            id="bytes",
        ),
        pytest.param(
            {H_ATTEMPTS: 2.0, H_THROTTLES: 3.9, H_PAIR_THROTTLES: 1.0, H_HELD_SINCE: 12},
            Attempt(attempts=2, throttles=3, pair_throttles=1, held_since=12.0),
            id="floats truncate to ints, an int time becomes a float",
        ),
        pytest.param(
            {H_ATTEMPTS: -3, H_THROTTLES: "-1", H_PAIR_THROTTLES: -7, H_HELD_SINCE: "-5"},
            Attempt(attempts=0, throttles=0, pair_throttles=0, held_since=-5.0),
            id="negative counts are 0",
        ),
        pytest.param(
            {H_ATTEMPTS: True, H_THROTTLES: False, H_PAIR_THROTTLES: True, H_HELD_SINCE: True},
            Attempt(),
            id="booleans are unreadable",
        ),
        pytest.param(
            {H_ATTEMPTS: "two", H_THROTTLES: "1.5", H_PAIR_THROTTLES: "", H_HELD_SINCE: "noon"},
            Attempt(),
            id="unreadable strings",
        ),
        pytest.param(
            {H_ATTEMPTS: b"\xff", H_THROTTLES: b"x", H_PAIR_THROTTLES: b"", H_HELD_SINCE: b"x"},
            Attempt(),
            id="unreadable bytes",
        ),
        pytest.param(
            {H_ATTEMPTS: None, H_THROTTLES: [1], H_PAIR_THROTTLES: {"n": 1}, H_HELD_SINCE: None},
            Attempt(),
            id="null, list, table",
        ),
        pytest.param(
            {H_ATTEMPTS: Decimal("2"), H_HELD_SINCE: Decimal("1.5")},
            Attempt(),
            id="AMQP decimals are not read",
        ),
    ],
)
def test_read_attempt(headers: dict[str, Any], expected: Attempt) -> None:
    assert read_attempt(headers) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(float("nan"), id="nan"),
        pytest.param(float("inf"), id="inf"),
        pytest.param(float("-inf"), id="-inf"),
    ],
)
def test_read_attempt_non_finite_count_is_unreadable(value: float) -> None:
    headers = {H_ATTEMPTS: value, H_THROTTLES: value, H_PAIR_THROTTLES: value}
    assert read_attempt(headers) == Attempt()


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("nan", id="'nan'"),
        pytest.param("inf", id="'inf'"),
        pytest.param(b"Infinity", id="b'Infinity'"),
        pytest.param(float("nan"), id="float nan"),
    ],
)
def test_read_attempt_non_finite_held_since_is_unreadable(value: Any) -> None:
    assert read_attempt({H_HELD_SINCE: value}).held_since is None


DEATH = [{"count": 1, "queue": "whatsapp.bulk.shard.0.delay.1s", "reason": "expired"}]


@pytest.mark.parametrize(
    ("headers", "attempt", "expected"),
    [
        pytest.param(
            {},
            Attempt(),
            {H_ATTEMPTS: 0, H_THROTTLES: 0, H_PAIR_THROTTLES: 0},
            id="first attempt, no headers",
        ),
        pytest.param(
            {"x-trace": "t1", "content-kind": "x", "x-death": DEATH},
            Attempt(attempts=1, throttles=2, pair_throttles=3),
            {"x-trace": "t1", "content-kind": "x", H_ATTEMPTS: 1, H_THROTTLES: 2,
             H_PAIR_THROTTLES: 3},
            id="producer headers kept, x-death removed",
        ),
        pytest.param(
            {H_ATTEMPTS: 9, H_THROTTLES: 9, H_PAIR_THROTTLES: 9, H_HELD_SINCE: "5.0"},
            Attempt(attempts=1),
            {H_ATTEMPTS: 1, H_THROTTLES: 0, H_PAIR_THROTTLES: 0},
            id="ours replaced; held_since None drops the old one",
        ),
        pytest.param(
            {**TASK},
            Attempt(throttles=1, held_since=1700000000.123456, pair_throttles=2),
            {**TASK, H_ATTEMPTS: 0, H_THROTTLES: 1, H_PAIR_THROTTLES: 2,
             H_HELD_SINCE: "1700000000.123456"},
            id="celery task headers kept, held_since as repr",
        ),
    ],
)  # fmt: skip
def test_attempt_headers(
    headers: dict[str, Any], attempt: Attempt, expected: dict[str, Any]
) -> None:
    before = dict(headers)
    assert attempt_headers(headers, attempt) == expected
    assert headers == before  # not mutated


@pytest.mark.parametrize(
    "attempt",
    [
        pytest.param(Attempt(), id="nothing yet"),
        pytest.param(Attempt(attempts=3), id="attempts"),
        pytest.param(Attempt(throttles=4, pair_throttles=2), id="throttles and pair throttles"),
        pytest.param(Attempt(held_since=0.1), id="held since 0.1"),
        pytest.param(Attempt(held_since=1700000000.123456), id="held since a real time"),
        pytest.param(Attempt(7, 5, 1699999999.999, 3), id="everything"),
    ],
)
def test_attempt_round_trip(attempt: Attempt) -> None:
    headers = attempt_headers({"x-producer": "p", "x-death": DEATH}, attempt)
    assert read_attempt(headers) == attempt
    # a second round through a delay queue changes nothing
    assert attempt_headers(headers, attempt) == headers


# --- dead letters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "tenant_id", "extra"),
    [
        pytest.param(
            Failure(reason="not_json", detail="body: not valid JSON"),
            None,
            {H_REASON: "not_json", H_DETAIL: "body: not valid JSON"},
            id="invalid message: no code, no class, no tenant",
        ),
        pytest.param(
            Failure(
                reason="permanent_error",
                detail="(#131026) Message undeliverable",
                code=131026,
                error_class="permanent",
                possible_duplicate=True,
            ),
            "t_1",
            {
                H_REASON: "permanent_error",
                H_DETAIL: "(#131026) Message undeliverable",
                H_CODE: 131026,
                H_CLASS: "permanent",
                H_TENANT: "t_1",
                H_POSSIBLE_DUPLICATE: True,
            },
            id="everything",
        ),
        pytest.param(
            Failure(reason="retries_exhausted", detail="d" * 1500, code=0, error_class=""),
            "",
            {H_REASON: "retries_exhausted", H_DETAIL: "d" * 1000, H_CODE: 0},
            id="detail cut at 1000, code 0 kept, empty class and tenant left out",
        ),
    ],
)
def test_dead_letter_headers(
    failure: Failure, tenant_id: str | None, extra: dict[str, Any]
) -> None:
    attempt = Attempt(attempts=2, throttles=1)
    headers = {"x-trace": "t1", "x-death": DEATH, H_HELD_SINCE: "3.0"}
    out = dead_letter_headers(
        headers, failure, attempt=attempt, tenant_id=tenant_id, shard=5, now=1700000001.5
    )
    assert out == {
        "x-trace": "t1",
        H_ATTEMPTS: 2,
        H_THROTTLES: 1,
        H_PAIR_THROTTLES: 0,
        H_SHARD: 5,
        H_DEAD_AT: "1700000001.5",
        **extra,
    }


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        pytest.param(
            Decision(Action.DEAD_LETTER, reason="permanent_error", code=100, error_class="perm"),
            Failure("permanent_error", "why", 100, "perm", False),
            id="permanent",
        ),
        pytest.param(
            Decision(Action.DEAD_LETTER, reason="retries_exhausted", possible_duplicate=True),
            Failure("retries_exhausted", "why", None, None, True),
            id="possible duplicate",
        ),
    ],
)
def test_failure_from_decision(decision: Decision, expected: Failure) -> None:
    assert Failure.from_decision(decision, "why") == expected


# --- result events ---------------------------------------------------------------------

BASE = {"schemaVersion": 1, "pool": "bulk", "messageId": "m-1", "attempts": 2, "at": 50.5}
ABOUT = {"tenantId": "t_1", "phoneNumberId": "123456", "to": "+34600000001"}


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param(
            {"message": EXPECTED, "wamid": "wamid.A"},
            {**BASE, "status": "accepted", **ABOUT, "wamid": "wamid.A"},
            id="accepted",
        ),
        pytest.param(
            {"message": EXPECTED, "wamid": "wamid.A", "possible_duplicate": True},
            {**BASE, "status": "accepted", **ABOUT, "wamid": "wamid.A", "possibleDuplicate": True},
            id="accepted, possible duplicate",
        ),
        pytest.param(
            {"message": None},
            {**BASE, "status": "accepted"},
            id="accepted without message or wamid",
        ),
        pytest.param(
            {"message": EXPECTED, "answer": SendAnswer("wamid.A", "accepted", "34600000001")},
            {**BASE, "status": "accepted", **ABOUT, "wamid": "wamid.A",
             "messageStatus": "accepted", "waId": "34600000001"},
            id="accepted, Meta's message_status and wa_id",
        ),
        pytest.param(
            {"message": EXPECTED,
             "answer": SendAnswer("wamid.A", "held_for_quality_assessment", None)},
            {**BASE, "status": "accepted", **ABOUT, "wamid": "wamid.A",
             "messageStatus": "held_for_quality_assessment"},
            id="accepted but held for quality assessment, no wa_id",
        ),
        pytest.param(
            {"message": EXPECTED, "answer": SendAnswer("wamid.A")},
            {**BASE, "status": "accepted", **ABOUT, "wamid": "wamid.A"},
            id="accepted, an answer with only the wamid",
        ),
        pytest.param(
            {"message": EXPECTED, "failure": Failure("permanent_error", "bad", 131026, "perm")},
            {**BASE, "status": "failed", **ABOUT, "reason": "permanent_error", "detail": "bad",
             "code": 131026, "errorClass": "perm"},
            id="failed",
        ),
        pytest.param(
            {"message": None, "failure": Failure("not_json", "x" * 2000)},
            {**BASE, "status": "failed", "reason": "not_json", "detail": "x" * 1000,
             "code": None, "errorClass": None},
            id="failed, unreadable message, detail cut",
        ),
        pytest.param(
            {"message": EXPECTED, "failure": Failure("unknown_error", possible_duplicate=True)},
            {**BASE, "status": "failed", **ABOUT, "reason": "unknown_error", "detail": "",
             "code": None, "errorClass": None, "possibleDuplicate": True},
            id="failed, the failure says possible duplicate",
        ),
        pytest.param(
            {"message": EXPECTED, "failure": Failure("unknown_error"), "possible_duplicate": True},
            {**BASE, "status": "failed", **ABOUT, "reason": "unknown_error", "detail": "",
             "code": None, "errorClass": None, "possibleDuplicate": True},
            id="failed, the caller says possible duplicate",
        ),
        pytest.param(
            {"message": EXPECTED, "failure": Failure("unknown_error"),
             "possible_duplicate": False},
            {**BASE, "status": "failed", **ABOUT, "reason": "unknown_error", "detail": "",
             "code": None, "errorClass": None},
            id="failed, no duplicate: key absent",
        ),
    ],
)  # fmt: skip
def test_result_event(kwargs: dict[str, Any], expected: dict[str, Any]) -> None:
    event = result_event(pool="bulk", message_id="m-1", attempts=2, now=50.5, **kwargs)
    assert event == expected
    json.dumps(event, allow_nan=False)  # publishable as it is


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        pytest.param({"messages": [{"id": "wamid.HBg"}]}, "wamid.HBg", id="Meta's answer"),
        pytest.param(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": "34600000001", "wa_id": "34600000001"}],
                "messages": [{"id": "wamid.A", "message_status": "accepted"}, {"id": "wamid.B"}],
            },
            "wamid.A",
            id="full answer: the first message",
        ),
        pytest.param({}, None, id="no messages"),
        pytest.param({"messages": []}, None, id="empty list"),
        pytest.param({"messages": None}, None, id="null"),
        pytest.param({"messages": {"id": "wamid.A"}}, None, id="an object, not a list"),
        pytest.param({"messages": ["wamid.A"]}, None, id="a list of strings"),
        pytest.param({"messages": [{}]}, None, id="no id"),
        pytest.param({"messages": [{"id": 42}]}, None, id="id not a string"),
    ],
)
def test_wamid_of(response: dict[str, Any], expected: str | None) -> None:
    assert wamid_of(response) == expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        pytest.param(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": "+34600000001", "wa_id": "34600000001"}],
                "messages": [{"id": "wamid.A", "message_status": "accepted"}],
            },
            SendAnswer("wamid.A", "accepted", "34600000001"),
            id="full answer",
        ),
        pytest.param(
            {"messages": [{"id": "wamid.A", "message_status": "paused"}]},
            SendAnswer("wamid.A", "paused"),
            id="paused, no contacts",
        ),
        pytest.param(
            {"contacts": [{"wa_id": "5491123456789"}], "messages": [{"id": "wamid.A"}]},
            SendAnswer("wamid.A", None, "5491123456789"),
            id="no message_status (older versions)",
        ),
        pytest.param(
            {"contacts": [{"wa_id": 34600000001}], "messages": [{"id": "wamid.A",
             "message_status": 1}]},
            SendAnswer("wamid.A"),
            id="wrong types are left out",
        ),
        pytest.param(
            {"contacts": [{"wa_id": "+34 600"}], "messages": [{"message_status": "x" * 65}]},
            SendAnswer(),
            id="a wa_id of other than digits, an overlong status",
        ),
        pytest.param({"contacts": "x", "messages": [None]}, SendAnswer(), id="not object lists"),
    ],
)  # fmt: skip
def test_answer_of(response: dict[str, Any], expected: SendAnswer) -> None:
    assert answer_of(response) == expected
