"""Test-side AMQP helpers: publish like a non-Python producer, collect result events and dead
letters. Async (aio-pika), for pytest-asyncio tests, benchmarks and the demo."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractQueue

from whatsapp_worker.topology import RESULTS_EXCHANGE, PoolTopology, declare_pool

# Every result event and dead letter a test read (body and headers), for the leak scan that
# ends the run (tests/integration/test_zz_final.py).
SEEN: list[str] = []


def seed_message(
    tenant_id: str, phone_number_id: str, to: str, payload: Mapping[str, Any] | None = None,
    *, message_id: str | None = None, text: str = "hello",
) -> dict[str, Any]:  # fmt: skip
    """The seed's queue message."""
    metadata: dict[str, Any] = {"tenantId": tenant_id, "phoneNumberId": phone_number_id}
    if message_id is not None:
        metadata["messageId"] = message_id
    waba = dict(payload) if payload is not None else {"type": "text", "text": {"body": text}}
    waba.setdefault("to", to)
    return {"metadata": metadata, "wabaPayload": waba}


class Broker:
    """One connection for a test: publish raw messages, read results and dead letters."""

    def __init__(self, url: str, pool: str) -> None:
        self.url = url
        self.topology = PoolTopology(pool)
        self.connection: AbstractConnection | None = None
        self.channel: AbstractChannel | None = None
        self.results: AbstractQueue | None = None
        # AMQP headers for each message `publish` sends (the sending benchmark's traceparent)
        self.headers: Callable[[], dict[str, Any]] | None = None

    async def __aenter__(self) -> Broker:
        self.connection = await aio_pika.connect(self.url)
        self.channel = await self.connection.channel(publisher_confirms=True)
        exchange = await self.channel.declare_exchange(
            RESULTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self.results = await self.channel.declare_queue(exclusive=True)
        await self.results.bind(exchange, routing_key=f"{self.topology.pool}.#")
        await declare_pool(self.channel, self.topology)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.connection is not None:
            await self.connection.close()

    async def publish(
        self, messages: Iterable[Mapping[str, Any] | bytes], *, routing_key: str | None = None
    ) -> int:
        """Publish to the pool's exchange like any AMQP producer (persistent, confirmed)."""
        assert self.channel is not None
        exchange = await self.channel.get_exchange(self.topology.exchange, ensure=False)
        sent = []
        total = 0
        for message in messages:
            total += 1
            if isinstance(message, bytes):
                body, key = message, routing_key or "-"
            else:
                body = json.dumps(message).encode()
                metadata = message.get("metadata")
                phone = metadata.get("phoneNumberId") if isinstance(metadata, Mapping) else None
                key = routing_key or str(phone or "-")
            sent.append(
                exchange.publish(
                    aio_pika.Message(
                        body,
                        headers=self.headers() if self.headers is not None else None,
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        timestamp=time.time(),
                    ),
                    routing_key=key,
                    mandatory=True,  # unroutable: an error here, never a silent loss
                )
            )
            if len(sent) >= 200:
                await asyncio.gather(*sent)
                sent = []
        await asyncio.gather(*sent)
        return total

    async def collect(
        self, count: int, within: float, *, distinct: bool = False
    ) -> list[dict[str, Any]]:
        """Result events until `count` arrived (of distinct message ids, with `distinct`; a
        redelivered message has two) or `within` seconds passed."""
        assert self.results is not None
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + within
        ids: set[Any] = set()
        async with self.results.iterator() as stream:
            while (len(ids) if distinct else len(events)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    message = await asyncio.wait_for(stream.__anext__(), left)
                except TimeoutError:
                    break
                await message.ack()
                SEEN.append(message.body.decode(errors="replace"))
                events.append(json.loads(message.body))
                ids.add(events[-1].get("messageId"))
        return events

    async def wait_results(self, count: int, within: float, *, poll: float = 0.25) -> int:
        """Wait until `count` result events are queued (or `within` seconds passed) without
        consuming them: the queue's depth, polled. For a benchmark that needs only the count,
        so that this process does not take CPU per message from the processes it measures
        (consuming and acking each event cost about a quarter of a worker's CPU per message).
        Returns the depth seen last; the events stay queued until this connection closes."""
        assert self.results is not None
        assert self.channel is not None
        deadline = time.monotonic() + within
        while True:
            queue = await self.channel.declare_queue(self.results.name, passive=True)
            depth = queue.declaration_result.message_count or 0
            if depth >= count or time.monotonic() >= deadline:
                return depth
            await asyncio.sleep(poll)

    async def dead_letters(self, expect: int = 0, within: float = 10.0) -> list[Any]:
        """Every message in the pool's dead-letter queue (taken off it): (headers, body)."""
        assert self.channel is not None
        queue = await self.channel.declare_queue(self.topology.dead_queue, durable=True)
        found: list[Any] = []
        deadline = time.monotonic() + within
        while True:
            message = await queue.get(no_ack=True, fail=False)
            if message is not None:
                found.append((dict(message.headers or {}), message.body))
                SEEN.append(f"{message.headers!r} {message.body.decode(errors='replace')}")
                continue
            if len(found) >= expect or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.2)
