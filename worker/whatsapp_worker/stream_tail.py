"""Reading one of a pool's webhook streams (`whatsapp.<pool>.statuses`, `whatsapp.<pool>.windows`)
from a point in time on, and on as it grows; knowing when the reading has caught up.

Both are RabbitMQ streams the worker declares (the same arguments in every process:
RabbitMQ refuses a queue declared again with others), bound to the exchange the receiver
publishes to. A worker reads them from `now - lookback` with its own consumer (a stream is
read, not taken: every worker of the pool sees every record). *Caught up* means a marker
this process wrote into the stream after it began reading has come back: every record
published before the marker is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Sequence

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from pamqp.common import FieldTable

from whatsapp_contract.webhook import POOL_STREAM_AGE

log = logging.getLogger(__name__)

# Fixed: every process declares the pool's streams alike
STREAM_ARGUMENTS: FieldTable = {"x-queue-type": "stream", "x-max-age": POOL_STREAM_AGE}
MARKER = "x-whatsapp-marker"  # header of a reader's marker (readers skip it)
PREFETCH = 2000
ACK_EVERY = 500
SYNC_TIMEOUT = 30.0


class StreamTail:
    """One stream, read by this process from `since()` on while its connection lasts."""

    def __init__(
        self,
        connection: AbstractConnection,
        queue: str,
        bindings: Sequence[tuple[str, str]],  # (topic exchange, routing key)
        handle: Callable[[bytes], None],
        *,
        since: Callable[[], float],
        on_change: Callable[[bool], None] = lambda caught_up: None,
    ) -> None:
        self.connection = connection
        self.queue = queue
        self.bindings = tuple(bindings)
        self.handle = handle
        self.since = since
        self.on_change = on_change
        self.caught_up = asyncio.Event()
        self.read = 0
        self._markers: dict[str, asyncio.Event] = {}
        self._channel: AbstractChannel | None = None
        self._publisher: AbstractChannel | None = None
        self._closing = False

    async def start(self) -> None:
        """Declare and bind the stream, start reading, and write the first marker."""
        started = time.perf_counter()
        self._publisher = await self.connection.channel(publisher_confirms=True)
        queue = await self._publisher.declare_queue(
            self.queue, durable=True, arguments=STREAM_ARGUMENTS
        )
        for exchange, key in self.bindings:
            await self._publisher.declare_exchange(
                exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            await queue.bind(exchange, routing_key=key)
        self._channel = await self.connection.channel(publisher_confirms=False)
        self._channel.close_callbacks.add(self._lost)  # then nothing is read any more
        await self._channel.set_qos(prefetch_count=PREFETCH)
        reading = await self._channel.get_queue(self.queue, ensure=False)
        offset = dt.datetime.fromtimestamp(self.since(), tz=dt.UTC)
        await reading.consume(self._on_message, arguments={"x-stream-offset": offset})
        while not await self.sync(SYNC_TIMEOUT):  # a long backlog: more than one marker's time
            if self.connection.is_closed or self._publisher.is_closed:
                raise ConnectionError(f"{self.queue}: the channel closed while catching up")
            await asyncio.sleep(1.0)
        self.caught_up.set()
        self.on_change(True)
        log.info(
            "%s: %d records read in %.2f s, caught up",
            self.queue,
            self.read,
            time.perf_counter() - started,
        )

    async def sync(self, within: float) -> bool:
        """Write a marker and wait until it is read back: True once every record published
        before this call has been handled."""
        if self._publisher is None:
            return False
        marker = uuid.uuid4().hex
        reached = self._markers[marker] = asyncio.Event()
        try:
            await self._publisher.default_exchange.publish(
                aio_pika.Message(b"{}", headers={MARKER: marker}), routing_key=self.queue
            )
            await asyncio.wait_for(reached.wait(), within)
        except (TimeoutError, aio_pika.exceptions.AMQPError, ConnectionError) as exc:
            log.warning("%s: not caught up (%s)", self.queue, type(exc).__name__)
            return False
        finally:
            self._markers.pop(marker, None)
        return True

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if self._closing:  # an ack after the channel's close would end the connection
            return
        self.read += 1
        marker = (message.headers or {}).get(MARKER)
        if marker is None:
            try:
                self.handle(message.body)
            except Exception:  # a bad record must not stop the reading
                log.exception("%s: a record could not be read; skipped", self.queue)
        elif isinstance(marker, str) and marker in self._markers:
            self._markers[marker].set()
        if self.read % ACK_EVERY == 0 or marker is not None:
            await message.ack(multiple=True)

    def _lost(self, *_: object) -> None:
        if self.caught_up.is_set() and not self._closing:
            log.warning("%s: no longer read (its channel closed)", self.queue)
        self.caught_up.clear()
        self.on_change(False)

    async def close(self) -> None:
        self._closing = True
        for channel in (self._channel, self._publisher):
            if channel is not None:
                with contextlib.suppress(Exception):
                    await channel.close()
        self.caught_up.clear()
