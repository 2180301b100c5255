"""The receiver's processing side: one consumer per ingress shard queue (quorum, single active
consumer, so exactly one replica processes a shard at a time) turns each change into result
events, inbound envelopes, service-window records and notices (`events.plan`), publishes them
persistent and confirmed, and acks the change only once every publish is confirmed.

Exactly once, after de-duplication: a status is published only when it moves its message
forward (`StatusMemory`); the memory learns every replica's publishes from the status log
(`StatusLog`), and before a redelivered change (or a shard's first change after
`idle_catch_up` seconds without one) the processor reads the log up to a marker it writes, so
a status another replica published before it died is known. A change whose publishes are not
all confirmed is requeued (nack) after `retry_delay`: nothing is lost, and what was confirmed
is not published again.

Order: a shard's changes are planned one after the other in delivery order (one decider per
shard); their publishes run concurrently (up to `prefetch` unacked changes). A change that
concerns a message whose publish is still in flight waits for it before it is planned, so two
copies of one status are never both in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from whatsapp_contract.webhook import ingress_queue

from .change import Change, parse_changes
from .events import Outgoing, Plan, memory_keys, plan
from .processor_metrics import ProcessorMetrics
from .status_log import LOOKBACK, StatusLog, open_channel
from .status_memory import DEFAULT_MAX_ENTRIES, StatusMemory

log = logging.getLogger(__name__)
_T = TypeVar("_T")

IDLE_CATCH_UP = 5.0  # seconds without a delivery after which a shard's next one catches up
CATCH_UP_TIMEOUT = 30.0
RETRY_DELAY = 1.0  # seconds before a change whose publishes failed is requeued
PREFETCH = 64
STOP_TIMEOUT = 15.0


class BrokerLike(Protocol):
    """What the processor needs of `broker.Broker`."""

    @property
    def connection(self) -> AbstractConnection: ...

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> None: ...


@dataclass
class _Shard:
    index: int
    # (monotonic arrival, delivery), in delivery order
    deliveries: asyncio.Queue[tuple[float, AbstractIncomingMessage]] = field(
        default_factory=asyncio.Queue
    )
    last_arrival: float = float("-inf")  # monotonic, of the last delivery planned
    caught_up_at: float = float("-inf")  # monotonic: when the last catch-up's marker was written
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)  # publishes in flight
    consuming: bool = False  # a channel is open (else: waiting for the connection)


class Processor:
    def __init__(
        self,
        broker: BrokerLike,
        *,
        shards: int,
        worker_name: str,
        memory_entries: int = DEFAULT_MAX_ENTRIES,
        prefetch: int = PREFETCH,
        idle_catch_up: float = IDLE_CATCH_UP,
        catch_up_timeout: float = CATCH_UP_TIMEOUT,
        retry_delay: float = RETRY_DELAY,
        lookback: float = LOOKBACK,
        metrics: ProcessorMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.broker = broker
        self.shards = shards
        self.worker_name = worker_name
        self.prefetch = prefetch
        self.idle_catch_up = idle_catch_up
        self.catch_up_timeout = catch_up_timeout
        self.retry_delay = retry_delay
        self.clock = clock
        self.metrics = metrics or ProcessorMetrics()
        self.memory = StatusMemory(memory_entries)
        self.status_log = StatusLog(
            broker.connection, self.memory, metrics=self.metrics, lookback=lookback,
            clock=clock, name=worker_name,
        )  # fmt: skip
        self._inflight: dict[str, asyncio.Future[None]] = {}  # memory key -> its publish
        self._shards = [_Shard(i) for i in range(shards)]
        self._consumers: list[asyncio.Task[None]] = []
        self._deciders: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        await self.status_log.start()
        for shard in self._shards:
            self._consumers.append(
                asyncio.create_task(self._consume_forever(shard), name=f"shard-{shard.index}")
            )
            self._deciders.append(
                asyncio.create_task(self._decide_forever(shard), name=f"decide-{shard.index}")
            )

    async def stop(self, within: float = STOP_TIMEOUT) -> None:
        """Stop planning; publishes in flight finish and are acked (`within` seconds); the
        changes not planned yet go back to their queues when the channels close."""
        self._stopping.set()
        for decider in self._deciders:  # they wait for deliveries, or before planning one
            decider.cancel()
        tasks = [t for s in self._shards for t in s.tasks]
        if tasks:
            await asyncio.wait(tasks, timeout=within)
        for shard, consumer in zip(self._shards, self._consumers, strict=False):
            if not shard.consuming:  # waiting for the connection: nothing to settle
                consumer.cancel()
        if self._consumers:  # they close their channels once their publishes are settled
            _, late = await asyncio.wait(self._consumers, timeout=within)
            for consumer in late:
                consumer.cancel()
        for task in (*self._deciders, *self._consumers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._deciders.clear()
        self._consumers.clear()
        await self.status_log.stop()

    # -- consuming: one single-active consumer per shard, resumed when its channel is lost ------

    async def _consume_forever(self, shard: _Shard) -> None:
        while not self._stopping.is_set():
            try:
                await self._consume_once(shard)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("shard %d: consumer lost (%s); again", shard.index, type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.retry_delay)

    async def _consume_once(self, shard: _Shard) -> None:
        channel = await open_channel(self.broker.connection)
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_close(*_: object) -> None:
            if not lost.done():
                lost.set_result(None)

        channel.close_callbacks.add(on_close)
        shard.consuming = True
        try:
            await channel.set_qos(prefetch_count=self.prefetch)
            queue = await channel.get_queue(ingress_queue(shard.index), ensure=False)

            async def on_message(message: AbstractIncomingMessage) -> None:
                shard.deliveries.put_nowait((time.monotonic(), message))

            await queue.consume(on_message)
            stopping = asyncio.ensure_future(self._stopping.wait())
            waiters: set[asyncio.Future[Any]] = {lost, stopping}
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
        finally:
            shard.consuming = False
            channel.close_callbacks.discard(on_close)
            if self._stopping.is_set() and shard.tasks:  # let its publishes be acked
                await asyncio.wait(set(shard.tasks), timeout=STOP_TIMEOUT)
            with contextlib.suppress(Exception):
                await channel.close()

    # -- deciding: a shard's changes in delivery order ------------------------------------------

    async def _decide_forever(self, shard: _Shard) -> None:
        while not self._stopping.is_set():
            arrived, message = await shard.deliveries.get()
            if self._stopping.is_set():
                return  # left unacked: back to the queue when the channel closes
            try:
                await self._decide(shard, message, arrived)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug: the change goes back to the queue
                log.exception("shard %d: a change could not be processed", shard.index)
                await _settle(message, requeue=True)

    async def _decide(
        self, shard: _Shard, message: AbstractIncomingMessage, arrived: float | None = None
    ) -> None:
        if message.channel.is_closed:
            return  # its channel is gone: the change comes again, redelivered
        arrived = time.monotonic() if arrived is None else arrived
        catch_up = needs_catch_up(
            redelivered=bool(message.redelivered), arrived=arrived,
            last_arrival=shard.last_arrival, caught_up_at=shard.caught_up_at,
            idle=self.idle_catch_up,
        )  # fmt: skip
        shard.last_arrival = max(shard.last_arrival, arrived)
        changes, invalid = parse_changes(message.body)
        if invalid:
            self.metrics.dropped.labels("invalid_change").inc(invalid)
            self.metrics.changes.labels("rejected").inc(invalid)
            log.warning("shard %d: dropped %d entries that are not changes", shard.index, invalid)
        if not changes:
            await _settle(message, requeue=False, reject=True)
            return
        if catch_up and not await self._catch_up(shard, message):
            return
        published: list[asyncio.Task[int]] = []
        for change in changes:  # a batch's changes in order, each planned once the last
            for key in memory_keys(change):  # publish concerning its message is confirmed
                while (pending := self._inflight.get(key)) is not None:
                    await asyncio.shield(pending)
            decided = plan(change, self.memory.last, at=self.clock())
            self._count(change, decided)
            reserved: dict[str, asyncio.Future[None]] = {}
            for outgoing in decided.publish:
                for key, _ in outgoing.learns:
                    future = asyncio.get_running_loop().create_future()
                    reserved[key] = self._inflight[key] = future
            published.append(self._track(shard, self._publish(decided, reserved)))
        self._track(shard, self._settle_delivery(message, published))

    def _track(self, shard: _Shard, work: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        task = asyncio.create_task(work)
        shard.tasks.add(task)
        task.add_done_callback(shard.tasks.discard)
        return task

    async def _catch_up(self, shard: _Shard, message: AbstractIncomingMessage) -> bool:
        """Read the status log up to now; False if the change's channel closed meanwhile."""
        while not self._stopping.is_set() and not message.channel.is_closed:
            started = time.monotonic()
            try:
                await self.status_log.catch_up(within=self.catch_up_timeout)
                shard.caught_up_at = started
                return True
            except Exception as exc:
                log.warning(
                    "status log: catch-up failed (%s); the change waits", type(exc).__name__
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.retry_delay)
        return False

    def _count(self, change: Change, decided: Plan) -> None:
        for kind, count in decided.duplicates.items():
            self.metrics.duplicates.labels(kind).inc(count)
        for reason, count in decided.dropped.items():
            self.metrics.dropped.labels(reason).inc(count)
            if reason == "unrouted_field":
                log.info("dropped a change of field %r: not handed on", change.field[:64])

    # -- publishing, then settling ----------------------------------------------------------

    async def _publish(self, decided: Plan, reserved: dict[str, asyncio.Future[None]]) -> int:
        """Publish one change's plan; how many of its publishes failed."""
        try:
            outcomes = await asyncio.gather(
                *(self._publish_one(o) for o in decided.publish), return_exceptions=True
            )
        finally:
            for key, future in reserved.items():
                if self._inflight.get(key) is future:
                    del self._inflight[key]
                future.set_result(None)
            self.metrics.memory_entries.set(len(self.memory))
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            self.metrics.publish_failures.inc(len(failures))
            log.warning(
                "%d of %d publishes of a change failed (%s); it is requeued",
                len(failures), len(outcomes), type(failures[0]).__name__,
            )  # fmt: skip
        return len(failures)

    async def _settle_delivery(
        self, message: AbstractIncomingMessage, published: list[asyncio.Task[int]]
    ) -> None:
        """Ack the delivery once every publish of every change in it is confirmed; requeue
        it whole otherwise (what was confirmed is not published again: `StatusMemory`)."""
        failed = sum(await asyncio.gather(*published))
        if failed:
            await asyncio.sleep(self.retry_delay)
            self.metrics.changes.labels("requeued").inc(len(published))
            await _settle(message, requeue=True)
            return
        await self._acknowledge(message, len(published))

    async def _publish_one(self, outgoing: Outgoing) -> None:
        await self.broker.publish(
            outgoing.exchange, outgoing.routing_key, outgoing.body, message_id=outgoing.message_id
        )
        for key, value in outgoing.learns:
            self.memory.learn(key, value)
        self.metrics.published.labels(outgoing.kind).inc()
        if outgoing.status is not None:
            self.metrics.results.labels(outgoing.status).inc()

    async def _acknowledge(self, message: AbstractIncomingMessage, changes: int = 1) -> None:
        """Every publish of the delivery's changes is confirmed: ack it (a test overrides this
        to play a process killed between its publishes and its ack)."""
        self.metrics.changes.labels("acked").inc(changes)
        await _settle(message)


def needs_catch_up(
    *, redelivered: bool, arrived: float, last_arrival: float, caught_up_at: float, idle: float
) -> bool:
    """Whether a delivery that `arrived` waits for a catch-up of the status log first: when
    redelivered (another process, or this one before it lost its channel, may have published
    for it), or the first after `idle` seconds without one (another replica may have held the
    shard meanwhile); not when a catch-up begun after its arrival already covers it (one
    catch-up for the burst of redeliveries that follows a hand-over)."""
    if caught_up_at >= arrived:
        return False
    return redelivered or arrived - last_arrival > idle


async def _settle(
    message: AbstractIncomingMessage, *, requeue: bool = False, reject: bool = False
) -> None:
    """Ack (default), nack with requeue, or reject; a closed channel already gave it back."""
    with contextlib.suppress(Exception):
        if reject:
            await message.reject(requeue=requeue)
        elif requeue:
            await message.nack(requeue=True)
        else:
            await message.ack()
