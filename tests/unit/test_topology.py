"""The names and arguments of a sender pool's RabbitMQ objects (worker/whatsapp_worker/topology.py).
The async declare functions need a broker: the integration tests cover them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from whatsapp_contract.heartbeat import EXCHANGE
from whatsapp_worker.topology import (
    DELAY_TIERS,
    HASH_EXCHANGE_TYPE,
    HEARTBEATS_EXCHANGE,
    RESULTS_EXCHANGE,
    RING_WEIGHT,
    PoolTopology,
    delay_tier,
)

BULK = PoolTopology("bulk")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(lambda t: t.exchange, "whatsapp.bulk", id="exchange"),
        pytest.param(lambda t: t.shard_queue(0), "whatsapp.bulk.shard.0", id="shard queue 0"),
        pytest.param(lambda t: t.shard_queue(7), "whatsapp.bulk.shard.7", id="shard queue 7"),
        pytest.param(
            lambda t: t.delay_queue(3, 10), "whatsapp.bulk.shard.3.delay.10s", id="delay queue"
        ),
        pytest.param(
            lambda t: t.delay_queue(0, 600), "whatsapp.bulk.shard.0.delay.600s", id="last tier"
        ),
        pytest.param(lambda t: t.dead_queue, "whatsapp.bulk.dead", id="dead letters"),
        pytest.param(lambda t: t.control_queue, "whatsapp.bulk.control", id="control queue"),
    ],
)
def test_names(name: Callable[[PoolTopology], str], expected: str) -> None:
    assert name(BULK) == expected


def test_defaults_and_constants() -> None:
    assert BULK.shards == 8
    assert DELAY_TIERS == (1, 3, 10, 30, 120, 600)
    assert list(DELAY_TIERS) == sorted(set(DELAY_TIERS))
    assert (RESULTS_EXCHANGE, HEARTBEATS_EXCHANGE) == ("whatsapp.results", "whatsapp.heartbeats")
    assert HEARTBEATS_EXCHANGE == EXCHANGE  # the contract the operator listens on
    assert (HASH_EXCHANGE_TYPE, RING_WEIGHT) == ("x-consistent-hash", "50")


def test_pools_have_distinct_names() -> None:
    a, b = PoolTopology("a"), PoolTopology("b")
    names_a = {a.exchange, a.dead_queue, a.control_queue, a.shard_queue(0), a.delay_queue(0, 1)}
    names_b = {b.exchange, b.dead_queue, b.control_queue, b.shard_queue(0), b.delay_queue(0, 1)}
    assert not names_a & names_b
    assert len(names_a) == 5


@pytest.mark.parametrize(
    ("topology", "name", "expected"),
    [
        pytest.param(BULK, "whatsapp.bulk.shard.0", 0, id="first shard"),
        pytest.param(BULK, "whatsapp.bulk.shard.7", 7, id="last shard"),
        pytest.param(BULK, "whatsapp.bulk.shard.8", None, id="beyond the shard count"),
        pytest.param(BULK, "whatsapp.bulk.shard.123", None, id="far beyond"),
        pytest.param(PoolTopology("bulk", 16), "whatsapp.bulk.shard.15", 15, id="16 shards"),
        pytest.param(BULK, "whatsapp.bulk.shard.", None, id="no number"),
        pytest.param(BULK, "whatsapp.bulk.shard.-1", None, id="negative"),
        pytest.param(BULK, "whatsapp.bulk.shard.1x", None, id="trailing junk"),
        pytest.param(BULK, "whatsapp.bulk.shard. 1", None, id="space"),
        pytest.param(BULK, "whatsapp.bulk.shard.3.delay.1s", None, id="a delay queue"),
        pytest.param(BULK, "whatsapp.bulk.dead", None, id="the dead letters"),
        pytest.param(BULK, "whatsapp.bulk.control", None, id="the control queue"),
        pytest.param(BULK, "whatsapp.bulk", None, id="the exchange name"),
        pytest.param(BULK, "whatsapp.other.shard.1", None, id="another pool"),
        pytest.param(BULK, "whatsapp.bulk-2.shard.1", None, id="a pool with a longer name"),
        pytest.param(BULK, "xwhatsapp.bulk.shard.1", None, id="prefix not at the start"),
        pytest.param(BULK, "", None, id="empty"),
        pytest.param(PoolTopology("a.b"), "whatsapp.a.b.shard.2", 2, id="pool with a dot"),
        pytest.param(PoolTopology("a"), "whatsapp.a.b.shard.2", None, id="not pool a's"),
    ],
)
def test_shard_of_queue(topology: PoolTopology, name: str, expected: int | None) -> None:
    assert topology.shard_of_queue(name) == expected


@pytest.mark.parametrize("shard", range(8))
def test_shard_of_queue_inverts_shard_queue(shard: int) -> None:
    assert BULK.shard_of_queue(BULK.shard_queue(shard)) == shard


def test_shard_of_queue_superscript_digit_is_not_a_shard() -> None:
    assert BULK.shard_of_queue("whatsapp.bulk.shard.\u00b2") is None


@pytest.mark.parametrize(
    ("seconds", "tier"),
    [
        pytest.param(-5.0, 1, id="negative"),
        pytest.param(0.0, 1, id="0"),
        pytest.param(0.1, 1, id="0.1"),
        pytest.param(1.0, 1, id="1"),
        pytest.param(1.01, 3, id="1.01"),
        pytest.param(2.9, 3, id="2.9"),
        pytest.param(3.0, 3, id="3"),
        pytest.param(4.0, 10, id="4"),
        pytest.param(10.0, 10, id="10"),
        pytest.param(10.5, 30, id="10.5"),
        pytest.param(30.0, 30, id="30"),
        pytest.param(31.0, 120, id="31"),
        pytest.param(120.0, 120, id="120"),
        pytest.param(121.0, 600, id="121"),
        pytest.param(600.0, 600, id="600"),
        pytest.param(601.0, 600, id="601: the last tier repeats"),
        pytest.param(5000.0, 600, id="5000"),
        pytest.param(3, 3, id="an int"),
    ],
)
def test_delay_tier(seconds: float, tier: int) -> None:
    assert delay_tier(seconds) == tier


@pytest.mark.parametrize(
    ("topology", "expected"),
    [
        pytest.param(
            BULK,
            {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "whatsapp.bulk.dead"},
            id="bulk",
        ),
        pytest.param(
            PoolTopology("vip", 2),
            {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "whatsapp.vip.dead"},
            id="vip",
        ),
    ],
)
def test_shard_arguments(topology: PoolTopology, expected: dict[str, Any]) -> None:
    assert topology.shard_arguments() == expected


@pytest.mark.parametrize(
    ("shard", "seconds", "expected"),
    [
        pytest.param(
            0,
            1,
            {
                "x-message-ttl": 1000,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": "whatsapp.bulk.shard.0",
            },
            id="shard 0, 1 s",
        ),
        pytest.param(
            3,
            10,
            {
                "x-message-ttl": 10_000,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": "whatsapp.bulk.shard.3",
            },
            id="shard 3, 10 s",
        ),
        pytest.param(
            7,
            600,
            {
                "x-message-ttl": 600_000,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": "whatsapp.bulk.shard.7",
            },
            id="shard 7, 600 s",
        ),
    ],
)
def test_delay_arguments(shard: int, seconds: int, expected: dict[str, Any]) -> None:
    assert BULK.delay_arguments(shard, seconds) == expected


@pytest.mark.parametrize("tier", DELAY_TIERS)
def test_every_tier_expires_back_into_its_own_shard(tier: int) -> None:
    for shard in range(BULK.shards):
        args = BULK.delay_arguments(shard, tier)
        assert args["x-message-ttl"] == tier * 1000
        assert isinstance(args["x-message-ttl"], int)
        assert BULK.shard_of_queue(args["x-dead-letter-routing-key"]) == shard
