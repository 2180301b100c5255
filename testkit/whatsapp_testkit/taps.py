"""Counting at the broker: a tap is a durable quorum queue of a test's own, bound to an exchange
with a routing key, that keeps a copy of everything published there (it survives a broker
restart) until the test drains it. The independent count of what the webhook receiver
published: per (wamid, status) for result events, per envelope for inbound messages.

    tap = Tap(url, "whatsapp.results", "mypool.*")
    await tap.declare()           # before the load
    ...                           # load and faults
    bodies = await tap.drain()    # every message, in queue order; the queue is deleted
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from typing import Any

import aio_pika

from whatsapp_testkit.amqp import SEEN


class Tap:
    def __init__(self, url: str, exchange: str, routing_key: str) -> None:
        self.url = url
        self.exchange = exchange
        self.routing_key = routing_key
        self.queue = f"test.tap.{uuid.uuid4().hex[:10]}"

    async def declare(self) -> Tap:
        connection = await aio_pika.connect(self.url)
        try:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(
                self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(
                self.queue, durable=True, arguments={"x-queue-type": "quorum"}
            )
            await queue.bind(exchange, routing_key=self.routing_key)
        finally:
            await connection.close()
        return self

    async def depth(self) -> int:
        connection = await aio_pika.connect(self.url)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(self.queue, passive=True)
            return queue.declaration_result.message_count or 0
        finally:
            await connection.close()

    async def wait_depth(self, count: int, within: float, *, settle: float = 0.0) -> int:
        """Wait until `count` messages are queued (or `within` passed); then `settle` more
        seconds, so that extra copies would show. Returns the depth seen last."""
        deadline = time.monotonic() + within
        depth = await self.depth()
        while depth < count and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            depth = await self.depth()
        if settle:
            await asyncio.sleep(settle)
            depth = await self.depth()
        return depth

    async def drain(self, *, delete: bool = True) -> list[dict[str, Any]]:
        """Every message queued (JSON bodies), taken off the queue in order."""
        connection = await aio_pika.connect(self.url)
        found: list[dict[str, Any]] = []
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(self.queue, passive=True)
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                SEEN.append(message.body.decode(errors="replace"))
                found.append(json.loads(message.body))
            if delete:
                await queue.delete(if_unused=False, if_empty=False)
        finally:
            await connection.close()
        return found


def per_status(events: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """(wamid, status) -> how many result events the receiver published for it."""
    return Counter((e["wamid"], e["status"]) for e in events if e.get("source") == "webhook")
