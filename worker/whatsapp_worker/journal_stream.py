"""The send journal's I/O (see `journal.py` for what it is for): entries are batched (a group
commit: while one batch waits for its confirm the next one gathers, at most one every
`FLUSH_INTERVAL`), and a redelivered delivery's owner reads the stream once per hand-over.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from pamqp.common import FieldTable

from .journal import Entry, Recollection, Verdict, decode_batch, encode_batch
from .topology import PoolTopology

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.005  # seconds between two batches under load (none when idle)
READ_TIMEOUT = 30.0  # a journal read that takes longer is given up (verdicts: unknown)
ACK_EVERY = 200
# Fixed, so that every worker of a pool declares the stream alike (RabbitMQ refuses a queue
# declared again with other arguments); `journal_lookback` stays below its age (MAX_LOOKBACK).
STREAM_ARGUMENTS: FieldTable = {
    "x-queue-type": "stream",
    "x-max-age": "15m",
    "x-stream-max-segment-size-bytes": 4_000_000,  # retention drops whole segments
}


def journal_queue(topology: PoolTopology) -> str:
    return f"whatsapp.{topology.pool}.journal"


class JournalStream:
    def __init__(
        self,
        connection: AbstractConnection,
        topology: PoolTopology,
        worker: str,
        *,
        lookback: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.connection = connection
        self.queue = journal_queue(topology)
        self.worker = worker
        self.lookback = lookback
        self.clock = clock
        self._channel: AbstractChannel | None = None
        self._pending: list[tuple[Entry, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._claimed_at: dict[int, float] = {}
        self._recall: asyncio.Task[Recollection] | None = None
        self._recall_started = 0.0

    async def start(self) -> None:
        self._channel = await self.connection.channel(publisher_confirms=True)
        await self._channel.declare_queue(self.queue, durable=True, arguments=STREAM_ARGUMENTS)

    # -- writing ---------------------------------------------------------------------------

    async def record(self, shard: int, key: str, kind: str) -> None:
        """Returns once the entry is confirmed by the broker (raises if it cannot be)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(((shard, key, kind), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._append(encode_batch(self.worker, (entry for entry, _ in batch)))
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
            if self._pending:
                await asyncio.sleep(FLUSH_INTERVAL)

    async def _append(self, body: bytes) -> None:
        if self._channel is None:
            raise RuntimeError("the send journal is not started")
        await self._channel.default_exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), self.queue
        )

    # -- reading ---------------------------------------------------------------------------

    def claimed(self, shard: int) -> None:
        """The shard was just claimed: its redeliveries need a journal read from now on."""
        self._claimed_at[shard] = time.monotonic()

    async def verdict(self, shard: int, key: str) -> Verdict:
        """What the journal says of a redelivered delivery (one read per hand-over)."""
        claimed = self._claimed_at.get(shard, 0.0)
        if self._recall is None or self._recall_started < claimed:
            self._recall_started = time.monotonic()
            self._recall = asyncio.create_task(self._read())
        recollection = await asyncio.shield(self._recall)
        return recollection.verdict(shard, key)

    async def _read(self) -> Recollection:
        """Every entry of the last `lookback` seconds, up to a marker written just before: all
        that a process gone before this read began could have written."""
        recollection = Recollection()
        started = time.perf_counter()
        read = 0
        marker = uuid.uuid4().hex
        channel: AbstractChannel | None = None
        try:
            await self._append(encode_batch(self.worker, (), marker=marker))
            channel = await self.connection.channel(publisher_confirms=False)
            await channel.set_qos(prefetch_count=ACK_EVERY * 2)
            queue = await channel.get_queue(self.queue, ensure=False)
            reached = asyncio.Event()
            since = dt.datetime.fromtimestamp(self.clock() - self.lookback, tz=dt.UTC)

            async def on_entry(message: AbstractIncomingMessage) -> None:
                nonlocal read
                if reached.is_set():
                    # never ack once the marker is in: the channel closes now, and an ack the
                    # broker gets after the close costs the whole connection (504 CHANNEL_ERROR
                    # "expected 'channel.open'"; seen under load, right after a hand-over)
                    return
                read += 1
                batch = decode_batch(message.body)
                if batch is not None:
                    recollection.apply(batch.entries)
                    if batch.marker == marker:
                        reached.set()
                        return
                if read % ACK_EVERY == 0:  # credit for the stream consumer (prefetch 2x)
                    await message.ack(multiple=True)

            await queue.consume(on_entry, arguments={"x-stream-offset": since})
            await asyncio.wait_for(reached.wait(), READ_TIMEOUT)
        except Exception as exc:
            log.warning(
                "the send journal could not be read (%s): redelivered messages are sent again",
                type(exc).__name__,
            )
            return Recollection()
        finally:
            if channel is not None:
                with contextlib.suppress(Exception):
                    await channel.close()
        log.info(
            "send journal: %d batches of the last %.0f s read in %.2f s",
            read,
            self.lookback,
            time.perf_counter() - started,
        )
        return recollection
