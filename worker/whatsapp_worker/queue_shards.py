"""Holding queue shards: claim (an exclusive consumer), drain, release. The I/O half of
`ownership.py`, driven by heartbeats.

A queue shard is one of the pool's message queues `whatsapp.<pool>.shard.<k>` (`topology.py`),
not a config shard (a Secret-sized document of the resolved config: `config.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)

from whatsapp_contract.heartbeat import Heartbeat, dump_heartbeat, parse_heartbeat

from .ownership import Membership, plan
from .settings import WorkerSettings
from .topology import HEARTBEATS_EXCHANGE, PoolTopology

log = logging.getLogger(__name__)

Handler = Callable[[AbstractIncomingMessage, int], Coroutine[Any, Any, None]]
HANDOVER_QUIET = 1.0  # seconds a newly held shard waits before its first send (Meta's window)


@dataclass
class HeldQueueShard:
    shard: int
    channel: AbstractChannel
    queue: AbstractQueue
    tag: str
    inflight: set[asyncio.Task[None]] = field(default_factory=set)
    draining: bool = False
    quiet_until: float = 0.0  # the previous owner's last second of sends must be over


class QueueShardHolder:
    """The queue shards this process consumes, kept in line with the pool's membership."""

    def __init__(
        self,
        connection: AbstractConnection,
        settings: WorkerSettings,
        topology: PoolTopology,
        handler: Handler,
        *,
        config_hash: Callable[[], str | None],
        tenants: Callable[[], int],
        on_change: Callable[[int, int], None] = lambda held, members: None,
        on_claim: Callable[[int], None] = lambda shard: None,
    ) -> None:
        self.connection = connection
        self.settings = settings
        self.topology = topology
        self.handler = handler
        self.config_hash = config_hash
        self.tenants = tenants
        self.on_change = on_change
        self.on_claim = on_claim  # before the first delivery of a newly held shard
        self.me = settings.worker_id
        self.membership = Membership(topology.pool)
        self.held: dict[int, HeldQueueShard] = {}
        self.unheld_since: dict[int, float] = {}
        self._control: AbstractChannel | None = None
        self._beats: AbstractExchange | None = None

    # --- membership ------------------------------------------------------------------

    async def start(self) -> None:
        self._control = await self.connection.channel(publisher_confirms=False)
        self._beats = await self._control.declare_exchange(
            HEARTBEATS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        inbox = await self._control.declare_queue(exclusive=True, auto_delete=True)
        await inbox.bind(self._beats, routing_key=self.topology.pool)
        await inbox.consume(self._on_heartbeat, no_ack=True)
        await self.beat()

    async def _on_heartbeat(self, message: AbstractIncomingMessage) -> None:
        beat = parse_heartbeat(message.body)
        if beat is None:
            log.warning("ignored an unreadable heartbeat")
            return
        self.membership.observe(beat)

    def heartbeat(self, *, bye: bool = False) -> Heartbeat:
        return Heartbeat(
            worker=self.me,
            pool=self.topology.pool,
            at=time.time(),
            interval=self.settings.heartbeat_interval,
            shards=tuple(sorted(self.held)),
            config_hash=self.config_hash(),
            tenants=self.tenants(),
            bye=bye,
        )

    async def beat(self, *, bye: bool = False) -> None:
        assert self._beats is not None
        beat = self.heartbeat(bye=bye)
        await self._beats.publish(
            aio_pika.Message(dump_heartbeat(beat), content_type="application/json"),
            routing_key=self.topology.pool,
        )
        if not bye:
            self.membership.observe(beat)

    # --- the control loop ------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Heartbeats and rebalancing until `stop`; then every shard is drained."""
        next_beat = 0.0
        while not stop.is_set():
            now = time.time()
            if now >= next_beat:
                await self.beat()
                next_beat = now + self.settings.heartbeat_interval
            await self.rebalance(now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    async def rebalance(self, now: float) -> None:
        await self._observe_unheld(now)
        live = self.membership.live(now)
        decided = plan(
            me=self.me,
            shards=self.topology.shards,
            live=live,
            held=self.held,
            unheld_since=self.unheld_since,
            now=now,
            orphan_after=self.settings.heartbeat_interval * 3,
        )
        for shard in decided.release:
            await self.release(shard)
        for shard in decided.claim:
            await self.claim(shard)
        self.on_change(len(self.held), len(live))

    async def _observe_unheld(self, now: float) -> None:
        assert self._control is not None
        for shard in range(self.topology.shards):
            if shard in self.held:
                self.unheld_since.pop(shard, None)
                continue
            queue = await self._control.declare_queue(
                self.topology.shard_queue(shard), passive=True
            )
            consumers = queue.declaration_result.consumer_count
            if consumers:
                self.unheld_since.pop(shard, None)
            else:
                self.unheld_since.setdefault(shard, now)

    async def claim(self, shard: int) -> bool:
        """Become the shard's one consumer; False if another process still holds it."""
        channel = await self.connection.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=self.settings.prefetch)
            queue = await channel.declare_queue(self.topology.shard_queue(shard), passive=True)
            # Meta counts a number's sends over any 1-s window, and the previous holder of this
            # shard may have sent for its numbers until a moment ago: wait that second out.
            held = HeldQueueShard(
                shard, channel, queue, "", quiet_until=time.monotonic() + HANDOVER_QUIET
            )

            async def handle(message: AbstractIncomingMessage) -> None:
                wait = held.quiet_until - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self.handler(message, shard)

            async def on_message(message: AbstractIncomingMessage) -> None:
                if held.draining:
                    return  # left unacked: back to the queue when the channel closes
                task = asyncio.create_task(handle(message))
                held.inflight.add(task)
                task.add_done_callback(held.inflight.discard)

            self.on_claim(shard)
            held.tag = await queue.consume(on_message, exclusive=True)
        except (aiormq.exceptions.ChannelAccessRefused, aio_pika.exceptions.ChannelClosed):
            with contextlib.suppress(Exception):
                await channel.close()
            return False
        self.held[shard] = held
        self.unheld_since.pop(shard, None)
        log.info("shard %s: consuming (%d held)", shard, len(self.held), extra={"shard": shard})
        return True

    async def release(self, shard: int) -> None:
        """Finish what was started, then let another process have the shard.

        The exclusive consumer stays registered until the sends already started are done, so
        the next owner cannot begin while this one still sends for the same numbers (the
        numbers' limits hold through a hand-over). Deliveries that arrive meanwhile are not
        started; closing the channel returns them, unacked, to the queue.
        """
        held = self.held.pop(shard, None)
        if held is None:
            return
        held.draining = True
        if held.inflight:
            _, pending = await asyncio.wait(set(held.inflight), timeout=self.settings.drain_timeout)
            if pending:
                log.warning("shard %s: %d messages not finished; requeued", shard, len(pending))
                for task in pending:
                    task.cancel()
        with contextlib.suppress(Exception):
            await held.channel.close()  # whatever is still unacked goes back to the queue
        log.info("shard %s: released", shard, extra={"shard": shard})

    async def close(self) -> None:
        await asyncio.gather(*(self.release(s) for s in list(self.held)))
        with contextlib.suppress(Exception):
            await self.beat(bye=True)
        if self._control is not None:
            with contextlib.suppress(Exception):
                await self._control.close()
