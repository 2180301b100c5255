"""The RabbitMQ objects of a sender pool: their names and how they are declared.

    producers --(routing key = phoneNumberId)--> exchange `whatsapp.<pool>` (x-consistent-hash)
        --> shard queues `whatsapp.<pool>.shard.<k>`  (k = 0 .. shards-1, durable)
              each consumed by exactly one worker process at a time (an exclusive consumer)
        --> delay queues `whatsapp.<pool>.shard.<k>.delay.<seconds>s` (TTL, dead-lettered back
              into shard k: retries, throttles and held messages wait there, not in memory)
        --> dead letters `whatsapp.<pool>.dead` (the original body, the reason in headers)
    results: exchange `whatsapp.results` (topic), routing key `<pool>.<accepted|failed>`
    heartbeats: exchange `whatsapp.heartbeats` (topic), routing key `<pool>`
    signals: exchange `whatsapp.signals` (topic), routing key `<pool>` (worker -> operator)

Why queue shards: Meta limits each phone number (80/1,000/20 msg/s) and each business-number ->
recipient pair. The consistent-hash exchange sends every message of one number to one shard,
and a shard has one consumer at a time, so a local limiter in that consumer is exact across
all replicas of the pool, with no shared state to call per message. Replicas split the shards
between them (see `ownership.py`).

The shard count is fixed for a pool (changing it re-routes numbers while old shards may still
hold messages for them: drain the pool first). Producers never need to know it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, ExchangeType

from whatsapp_contract import signals

RESULTS_EXCHANGE = "whatsapp.results"
HEARTBEATS_EXCHANGE = "whatsapp.heartbeats"
SIGNALS_EXCHANGE = signals.EXCHANGE
HASH_EXCHANGE_TYPE = "x-consistent-hash"
# Seconds a message waits in a delay queue. A wait is rounded up to the next tier; the last
# one repeats (a message held for 15 minutes goes round it a few times).
DELAY_TIERS: tuple[int, ...] = (1, 3, 10, 30, 120, 600)
# Points on the hash ring per shard: one point each would split numbers very unevenly.
RING_WEIGHT = "50"


@dataclass(frozen=True)
class PoolTopology:
    pool: str
    shards: int = 8

    @property
    def exchange(self) -> str:
        """Where producers publish, with the phone number id as routing key."""
        return f"whatsapp.{self.pool}"

    def shard_queue(self, shard: int) -> str:
        return f"whatsapp.{self.pool}.shard.{shard}"

    def delay_queue(self, shard: int, seconds: int) -> str:
        return f"whatsapp.{self.pool}.shard.{shard}.delay.{seconds}s"

    @property
    def dead_queue(self) -> str:
        return f"whatsapp.{self.pool}.dead"

    @property
    def control_queue(self) -> str:
        """Celery's own consumer listens here (admin tasks); messages never go here."""
        return f"whatsapp.{self.pool}.control"

    def shard_arguments(self) -> dict[str, Any]:
        # Anything rejected without our own dead-lettering (never by us) is kept, too.
        return {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": self.dead_queue}

    def delay_arguments(self, shard: int, seconds: int) -> dict[str, Any]:
        return {
            "x-message-ttl": seconds * 1000,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.shard_queue(shard),
        }

    def shard_of_queue(self, name: str) -> int | None:
        prefix = f"whatsapp.{self.pool}.shard."
        rest = name[len(prefix) :] if name.startswith(prefix) else ""
        if not (rest.isascii() and rest.isdigit()) or rest != str(int(rest)):
            return None
        return int(rest) if int(rest) < self.shards else None


def delay_tier(seconds: float) -> int:
    """The delay queue a wait of `seconds` goes to: the smallest tier that is not shorter."""
    for tier in DELAY_TIERS:
        if seconds <= tier:
            return tier
    return DELAY_TIERS[-1]


async def declare_exchanges(channel: AbstractChannel) -> tuple[AbstractExchange, AbstractExchange]:
    """The shared results and heartbeats exchanges (both topic, durable), and the signals
    exchange (topic, durable, like the heartbeats': its messages are never persistent)."""
    results = await channel.declare_exchange(RESULTS_EXCHANGE, ExchangeType.TOPIC, durable=True)
    beats = await channel.declare_exchange(HEARTBEATS_EXCHANGE, ExchangeType.TOPIC, durable=True)
    await channel.declare_exchange(SIGNALS_EXCHANGE, ExchangeType.TOPIC, durable=True)
    return results, beats


async def declare_pool(channel: AbstractChannel, topology: PoolTopology) -> AbstractExchange:
    """Declare (idempotently) every object of the pool; returns the pool's exchange.

    Workers do it on start, and so do producers (`producer.declare_pool`) that may publish
    before any worker ever ran: a message published to an exchange with no queue bound yet is
    dropped by RabbitMQ. Producers also publish `mandatory`, so that can never pass silently.

    Fails with a clear message when the broker lacks the consistent-hash exchange plugin.
    """
    try:
        exchange = await channel.declare_exchange(
            topology.exchange, HASH_EXCHANGE_TYPE, durable=True
        )
    except aio_pika.exceptions.ChannelClosed as exc:
        raise RuntimeError(
            f"cannot declare exchange {topology.exchange!r} of type {HASH_EXCHANGE_TYPE}: "
            "enable the plugin with `rabbitmq-plugins enable rabbitmq_consistent_hash_exchange` "
            f"({exc})"
        ) from None
    await channel.declare_queue(topology.dead_queue, durable=True)
    for shard in range(topology.shards):
        name = topology.shard_queue(shard)
        queue = await channel.declare_queue(
            name, durable=True, arguments=topology.shard_arguments()
        )
        await queue.bind(exchange, routing_key=RING_WEIGHT)
        for tier in DELAY_TIERS:
            await channel.declare_queue(
                topology.delay_queue(shard, tier),
                durable=True,
                arguments=topology.delay_arguments(shard, tier),
            )
    return exchange
