"""The worker heartbeat contract (contract/whatsapp_contract/heartbeat.py)."""

from __future__ import annotations

import json

import pytest

from whatsapp_contract.heartbeat import EXCHANGE, Heartbeat, dump_heartbeat, parse_heartbeat

MINIMAL = Heartbeat(worker="w1", pool="bulk", at=1700000000.5, interval=2.0)
FULL = Heartbeat(
    worker="worker-bulk-0",
    pool="bulk",
    at=1700000000.123456,
    interval=5.0,
    shards=(0, 3, 5),
    config_hash="sha256:" + "ab" * 32,
    tenants=12,
)
BYE = Heartbeat(worker="w1", pool="bulk", at=10.0, interval=2.0, shards=(1,), bye=True)


def test_exchange() -> None:
    assert EXCHANGE == "whatsapp.heartbeats"


@pytest.mark.parametrize(
    "beat",
    [
        pytest.param(MINIMAL, id="minimal"),
        pytest.param(FULL, id="full"),
        pytest.param(BYE, id="bye"),
        pytest.param(
            Heartbeat(worker="wé", pool="p-1", at=0.0, interval=0.5, tenants=0), id="unicode"
        ),
    ],
)
def test_round_trip(beat: Heartbeat) -> None:
    assert parse_heartbeat(dump_heartbeat(beat)) == beat


@pytest.mark.parametrize(
    ("beat", "expected"),
    [
        pytest.param(
            MINIMAL,
            b'{"worker":"w1","pool":"bulk","at":1700000000.5,"interval":2.0,"shards":[],'
            b'"configHash":null,"tenants":0}',
            id="minimal: no bye key",
        ),
        pytest.param(
            BYE,
            b'{"worker":"w1","pool":"bulk","at":10.0,"interval":2.0,"shards":[1],'
            b'"configHash":null,"tenants":0,"bye":true}',
            id="bye flag",
        ),
        pytest.param(
            Heartbeat("w", "p", 1.0, 2.0, (2, 0), "sha256:x", 3),
            b'{"worker":"w","pool":"p","at":1.0,"interval":2.0,"shards":[2,0],'
            b'"configHash":"sha256:x","tenants":3}',
            id="hash and shards as given",
        ),
    ],
)
def test_dump(beat: Heartbeat, expected: bytes) -> None:
    assert dump_heartbeat(beat) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            b'{"worker":"w","pool":"p","at":1,"interval":2}',
            Heartbeat("w", "p", 1.0, 2.0),
            id="only the required keys: defaults",
        ),
        pytest.param(
            b'{"worker":"w","pool":"p","at":1,"interval":2,"bye":false,"configHash":null}',
            Heartbeat("w", "p", 1.0, 2.0),
            id="explicit defaults",
        ),
        pytest.param(
            b'{"worker":"w","pool":"p","at":"1.5","interval":"2","shards":["3"],"tenants":"4"}',
            None,
            id="numbers as strings are not numbers",
        ),
        pytest.param(
            b'{"worker":"w","pool":"p","at":1,"interval":2,"extra":{"x":1},"bye":true}',
            Heartbeat("w", "p", 1.0, 2.0, bye=True),
            id="unknown keys ignored",
        ),
    ],
)
def test_parse(data: bytes, expected: Heartbeat) -> None:
    assert parse_heartbeat(data) == expected


REQUIRED = {"worker": "w", "pool": "p", "at": 1.0, "interval": 2.0}


def without(key: str) -> bytes:
    return json.dumps({k: v for k, v in REQUIRED.items() if k != key}).encode()


def but(**changes: object) -> bytes:
    return json.dumps({**REQUIRED, **changes}).encode()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not json", id="not JSON"),
        pytest.param(b"\xff\xfe\x00", id="not text"),
        pytest.param(b'{"worker":"w"', id="truncated"),
        pytest.param(b"[]", id="empty JSON list"),
        pytest.param(json.dumps(list(REQUIRED.values())).encode(), id="a JSON list"),
        pytest.param(b'"heartbeat"', id="a JSON string"),
        pytest.param(b"42", id="a JSON number"),
        pytest.param(b"null", id="JSON null"),
        pytest.param(b"{}", id="empty object"),
        pytest.param(without("worker"), id="no worker"),
        pytest.param(without("pool"), id="no pool"),
        pytest.param(without("at"), id="no at"),
        pytest.param(without("interval"), id="no interval"),
        pytest.param(but(at="soon"), id="at not a number"),
        pytest.param(but(at=None), id="at null"),
        pytest.param(but(interval={"s": 2}), id="interval an object"),
        pytest.param(but(interval=[2]), id="interval a list"),
        pytest.param(but(shards=5), id="shards a number"),
        pytest.param(but(shards=["a"]), id="shards of letters"),
        pytest.param(but(shards=[None]), id="shards of nulls"),
        pytest.param(but(shards=[{}]), id="shards of objects"),
        pytest.param(but(tenants="many"), id="tenants not a number"),
        pytest.param(but(tenants=None), id="tenants null"),
    ],
)
def test_parse_garbage_is_none(data: bytes) -> None:
    assert parse_heartbeat(data) is None


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(but(worker=None), id="worker null"),
        pytest.param(but(pool=None), id="pool null"),
        pytest.param(but(bye="false"), id="bye the string false"),
        pytest.param(but(shards="12"), id="shards a string"),
    ],
)
def test_parse_wrong_types_are_none(data: bytes) -> None:
    assert parse_heartbeat(data) is None


@pytest.mark.parametrize(
    ("beat", "now", "misses", "expected"),
    [
        pytest.param(MINIMAL, MINIMAL.at, 3.0, True, id="just sent"),
        pytest.param(MINIMAL, MINIMAL.at - 100.0, 3.0, True, id="from the future (clock skew)"),
        pytest.param(MINIMAL, MINIMAL.at + 6.0, 3.0, True, id="exactly 3 intervals"),
        pytest.param(MINIMAL, MINIMAL.at + 6.001, 3.0, False, id="just past 3 intervals"),
        pytest.param(MINIMAL, MINIMAL.at + 20.0, 10.0, True, id="exactly 10 intervals"),
        pytest.param(MINIMAL, MINIMAL.at + 20.001, 10.0, False, id="just past 10 intervals"),
        pytest.param(FULL, FULL.at + 15.0, 3.0, True, id="its own interval (5 s)"),
        pytest.param(BYE, BYE.at, 3.0, False, id="bye is never alive"),
        pytest.param(BYE, BYE.at, 10.0, False, id="bye, any misses"),
    ],
)
def test_alive(beat: Heartbeat, now: float, misses: float, expected: bool) -> None:
    assert beat.alive(now, misses=misses) is expected


def test_alive_default_misses_is_3() -> None:
    assert MINIMAL.alive(MINIMAL.at + 6.0) is True
    assert MINIMAL.alive(MINIMAL.at + 6.001) is False
