"""Which live workers of each pool run the config the operator published.

Workers send heartbeats (`whatsapp_contract.heartbeat`) with the hash of the config they loaded;
the publisher knows the hash of what it wrote. `summarise` (pure) compares them; the listener
(an aio-pika consumer, only when `--amqp-url` is given) keeps the latest beat per worker,
exports `whatsapp_operator_pool_workers{pool,config}` and wakes the pool's tenants when the
summary changes, so their `status.published.workers` says e.g. "2/2 current".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from whatsapp_contract.heartbeat import EXCHANGE, Heartbeat, parse_heartbeat
from whatsapp_operator.runtime import metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolConvergence:
    live: int
    current: int

    def describe(self) -> str:
        return f"{self.current}/{self.live} current"


def summarise(
    beats: Iterable[Heartbeat], pool_hashes: Mapping[str, str], now: float
) -> dict[str, PoolConvergence]:
    """Per pool: live workers, and how many of them run the published config."""
    live: dict[str, int] = {}
    current: dict[str, int] = {}
    for beat in beats:
        if not beat.alive(now):
            continue
        live[beat.pool] = live.get(beat.pool, 0) + 1
        if beat.config_hash is not None and beat.config_hash == pool_hashes.get(beat.pool):
            current[beat.pool] = current.get(beat.pool, 0) + 1
    return {p: PoolConvergence(n, current.get(p, 0)) for p, n in live.items()}


class HeartbeatListener:
    def __init__(
        self,
        amqp_url: str,
        pool_hashes: Callable[[], Mapping[str, str]],
        on_change: Callable[[str], object],
        *,
        interval: float = 2.0,
    ) -> None:
        self.amqp_url = amqp_url
        self.pool_hashes = pool_hashes
        self.on_change = on_change
        self.interval = interval
        self.beats: dict[str, Heartbeat] = {}
        self.summary: dict[str, PoolConvergence] = {}
        self.connected = False  # consuming heartbeats from RabbitMQ now (runtime/probes.py)

    def observe(self, beat: Heartbeat) -> None:
        if beat.bye:
            self.beats.pop(beat.worker, None)
        else:
            self.beats[beat.worker] = beat

    def evaluate(self, now: float) -> None:
        for worker in [w for w, b in self.beats.items() if not b.alive(now, misses=10)]:
            del self.beats[worker]
        summary = summarise(self.beats.values(), self.pool_hashes(), now)
        for pool in set(summary) | set(self.summary):
            new = summary.get(pool, PoolConvergence(0, 0))
            metrics.set_pool_workers(pool, current=new.current, stale=new.live - new.current)
            if self.summary.get(pool) != new:
                log.info("pool %s: %s", pool, new.describe())
                self.on_change(pool)
        self.summary = summary

    def of(self, pool: str) -> PoolConvergence:
        return self.summary.get(pool, PoolConvergence(0, 0))

    async def run(self) -> None:
        import aio_pika  # only operators given an AMQP URL need the client

        while True:
            try:
                connection = await aio_pika.connect(self.amqp_url)
                async with connection:
                    channel = await connection.channel()
                    exchange = await channel.declare_exchange(
                        EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
                    )
                    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
                    await queue.bind(exchange, routing_key="#")

                    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                        beat = parse_heartbeat(message.body)
                        if beat is not None:
                            self.observe(beat)

                    await queue.consume(on_message, no_ack=True)
                    self.connected = True
                    while not connection.is_closed:
                        self.evaluate(time.time())
                        await asyncio.sleep(self.interval)
                    self.connected = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected = False
                log.warning("worker heartbeats unavailable: %s", type(exc).__name__)
                with contextlib.suppress(Exception):
                    self.evaluate(time.time())
                await asyncio.sleep(5.0)
