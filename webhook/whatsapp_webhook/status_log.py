"""The status log: the stream `whatsapp.webhooks.statuses` (contract STATUS_LOG) that remembers
what every replica of the receiver published, so that one taking a shard over publishes
nothing twice.

The stream is bound to `whatsapp.results` with `*.sent`, `*.delivered`, `*.read`, `*.failed`
(the workers' own `<pool>.failed` events land there too; `events.log_records` keeps only the
receiver's, `source: webhook`) and to `whatsapp.inbound` with `#`: a confirmed publish of a
result event or an inbound envelope is in the log by the time it is confirmed, atomically.

Each process tails the log continuously from `lookback` ago (Meta retries a webhook for up to
7 days: STATUS_LOG_AGE) into its `StatusMemory`, resuming after the last offset it read when
its channel is lost. `catch_up()` is the barrier: it writes a marker into the stream (default
exchange, routing key the stream) and returns once the tail has read it back, so everything
published before the call is known. A stream is read over AMQP with a prefetch, manual acks
and the `x-stream-offset` consumer argument (https://www.rabbitmq.com/docs/streams), as the
worker's send journal does (worker/whatsapp_worker/journal_stream.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from pamqp.common import FieldTable

from whatsapp_contract.webhook import (
    INBOUND_EXCHANGE,
    RESULTS_EXCHANGE,
    STATUS_LOG,
    STATUS_LOG_AGE,
    STATUSES,
)

from .events import log_records
from .processor_metrics import ProcessorMetrics
from .status_memory import StatusMemory

log = logging.getLogger(__name__)

LOOKBACK = 7 * 24 * 3600.0  # seconds of the log read at start (the stream keeps STATUS_LOG_AGE)
PREFETCH = 1000
ACK_EVERY = 250
RETRY_DELAY = 1.0  # seconds between two attempts to tail the log again after losing it
MARKER_HEADER = "x-whatsapp-marker"
# Fixed: every replica declares the stream alike (RabbitMQ refuses other arguments).
STREAM_ARGUMENTS: FieldTable = {
    "x-queue-type": "stream",
    "x-max-age": STATUS_LOG_AGE,
    "x-stream-max-segment-size-bytes": 50_000_000,  # retention drops whole segments
}
RESULT_KEYS = tuple(f"*.{status}" for status in sorted(STATUSES))
INBOUND_KEY = "#"


async def open_channel(
    connection: AbstractConnection, *, publisher_confirms: bool = False
) -> AbstractChannel:
    """A plain channel once the connection is up. Not a robust one (the receiver's connection
    is robust, so its channels would be): aio-pika would reopen it and its consumer with the
    arguments of the first consume; the callers resume themselves, from where they were."""
    await connection.ready()
    channel = aio_pika.Channel(connection, publisher_confirms=publisher_confirms)
    await channel.initialize()
    return channel


async def declare_status_log(channel: AbstractChannel) -> None:
    """The stream and its bindings (and the two exchanges, as the Broker declares them)."""
    results = await channel.declare_exchange(
        RESULTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )
    inbound = await channel.declare_exchange(
        INBOUND_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(STATUS_LOG, durable=True, arguments=STREAM_ARGUMENTS)
    for key in RESULT_KEYS:
        await queue.bind(results, routing_key=key)
    await queue.bind(inbound, routing_key=INBOUND_KEY)


class StatusLog:
    """Tails the status log into `memory`; `catch_up()` waits until it has read the present."""

    def __init__(
        self,
        connection: AbstractConnection,
        memory: StatusMemory,
        *,
        metrics: ProcessorMetrics | None = None,
        lookback: float = LOOKBACK,
        clock: Callable[[], float] = time.time,
        name: str = "",
    ) -> None:
        self.connection = connection
        self.memory = memory
        self.metrics = metrics or ProcessorMetrics()
        self.lookback = lookback
        self.clock = clock
        self.name = name
        self.records = 0  # messages read from the log
        self._next_offset: int | None = None  # where a resumed tail starts
        self._markers: dict[str, asyncio.Future[None]] = {}
        self._writer: AbstractChannel | None = None
        self._tail: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._tailing = asyncio.Event()

    async def start(self) -> None:
        channel = await open_channel(self.connection)
        try:
            await declare_status_log(channel)
        finally:
            with contextlib.suppress(Exception):
                await channel.close()
        self._tail = asyncio.create_task(self._tail_forever(), name="status-log-tail")

    async def stop(self) -> None:
        self._stopping.set()
        if self._tail is not None:
            self._tail.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._tail
        for future in self._markers.values():
            if not future.done():
                future.cancel()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer.close()

    @property
    def tailing(self) -> bool:
        return self._tailing.is_set()

    # -- the barrier ------------------------------------------------------------------------

    async def catch_up(self, *, within: float) -> None:
        """Returns once the tail has read everything written to the log before this call
        (raises TimeoutError, or the publish's error when the marker cannot be written)."""
        marker = uuid.uuid4().hex
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._markers[marker] = future
        started = time.perf_counter()
        try:
            async with asyncio.timeout(within):
                await self._write_marker(marker)
                await future
        except TimeoutError:
            self.metrics.catch_ups.labels("timeout").inc()
            raise
        except Exception:
            self.metrics.catch_ups.labels("error").inc()
            raise
        finally:
            self._markers.pop(marker, None)
        self.metrics.catch_ups.labels("ok").inc()
        self.metrics.catch_up_seconds.observe(time.perf_counter() - started)

    async def _write_marker(self, marker: str) -> None:
        if self._writer is None or self._writer.is_closed:
            self._writer = await open_channel(self.connection, publisher_confirms=True)
        body = json.dumps({"marker": marker, "by": self.name}).encode()
        message = aio_pika.Message(body, headers={MARKER_HEADER: marker})
        try:
            await self._writer.default_exchange.publish(message, STATUS_LOG)
        except Exception:
            writer, self._writer = self._writer, None
            with contextlib.suppress(Exception):
                await writer.close()
            raise

    # -- the tail ---------------------------------------------------------------------------

    async def _tail_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._tail_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("status log: tail interrupted (%s); resuming", type(exc).__name__)
            self._tailing.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), RETRY_DELAY)

    async def _tail_once(self) -> None:
        """One consumer of the log, until its channel closes."""
        channel = await open_channel(self.connection)
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_close(*_: object) -> None:
            if not lost.done():
                lost.set_result(None)

        channel.close_callbacks.add(on_close)
        try:
            await channel.set_qos(prefetch_count=PREFETCH)
            queue = await channel.get_queue(STATUS_LOG, ensure=False)
            offset: Any = self._next_offset
            if offset is None:
                offset = dt.datetime.fromtimestamp(self.clock() - self.lookback, tz=dt.UTC)
            await queue.consume(self._on_record, arguments={"x-stream-offset": offset})
            self._tailing.set()
            log.info("status log: tailing %s from %s", STATUS_LOG, offset)
            await lost
        finally:
            channel.close_callbacks.discard(on_close)
            with contextlib.suppress(Exception):
                await channel.close()

    async def _on_record(self, message: AbstractIncomingMessage) -> None:
        offset = (message.headers or {}).get("x-stream-offset")
        if isinstance(offset, int):
            self._next_offset = offset + 1
        self.records += 1
        self.metrics.log_records.inc()
        marker = (message.headers or {}).get(MARKER_HEADER)
        reached = False
        if isinstance(marker, str | bytes):
            future = self._markers.get(marker.decode() if isinstance(marker, bytes) else marker)
            if future is not None and not future.done():
                future.set_result(None)
                reached = True
        else:
            for key, value in log_records(message.body):
                self.memory.learn(key, value)
        if reached or self.records % ACK_EVERY == 0:
            await message.ack(multiple=True)
