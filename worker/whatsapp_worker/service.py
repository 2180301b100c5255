"""The sender service of one worker process: connect, declare, hold queue shards, send, reload.

It runs in its own thread with its own asyncio loop inside the Celery worker (see
`celery_app.py`), so all sending is async: one process keeps hundreds of Graph requests in
flight over one pooled httpx client. A lost broker connection ends the session: unacked
deliveries go back to their queues and the service connects again with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aio_pika
import httpx
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from whatsapp_graph.client import GraphClient
from whatsapp_graph.http import new_http_client

from .config import ConfigStore, Snapshot
from .holds import Holds
from .journal import Outcomes
from .journal_stream import JournalStream
from .limits import Limiter
from .metrics import WorkerMetrics
from .policy import RetryPolicy
from .queue_shards import QueueShardHolder
from .sender import Sender
from .settings import WorkerSettings
from .topology import SIGNALS_EXCHANGE, PoolTopology, declare_exchanges, declare_pool
from .webhooks import Webhooks

log = logging.getLogger(__name__)

RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)


class SenderService:
    def __init__(self, settings: WorkerSettings, metrics: WorkerMetrics | None = None) -> None:
        self.settings = settings
        self.topology = PoolTopology(settings.pool, settings.shards)
        self.metrics = metrics or WorkerMetrics()
        self.store = ConfigStore(settings.config_dir, pool=settings.pool)
        self.store.add_listener(self._on_config)
        self.limiter = Limiter(
            headroom=settings.headroom,
            pair_burst=settings.pair_burst,
            # the same headroom as for the number's rate: requests reach Meta a few ms apart
            # from when they left, and a bucket refilled exactly on time would sometimes be short
            pair_refill_seconds=settings.pair_refill_seconds / settings.headroom,
        )
        self.policy = RetryPolicy(
            max_attempts=settings.max_attempts,
            base_delay=settings.retry_base_delay,
            max_delay=settings.retry_max_delay,
            hold_window=settings.hold_window,
            hold_recheck=settings.hold_recheck,
            blocked_hold_window=settings.blocked_hold_window,
        )
        self.stop = asyncio.Event()
        self.ready = asyncio.Event()  # set once shards can be claimed (tests, probes)
        self.holder: QueueShardHolder | None = None
        # outcomes of sends this process could not settle, kept across broker sessions
        self.outcomes = Outcomes()
        # numbers Meta blocked, and the signals to the operator: across sessions too
        self.holds = Holds(
            pool=settings.pool,
            worker=settings.worker_id,
            metrics=self.metrics,
            probe_interval=settings.block_probe_interval,
        )
        # what the webhook receiver tells of the pool (statuses, service windows): read from
        # the pool's streams each session, remembered across sessions
        self.webhooks = Webhooks(
            pool=settings.pool,
            metrics=self.metrics,
            status_wait=settings.status_wait,
            status_lookback=settings.status_lookback,
            window_check=settings.service_window_check,
        )
        self._loop: asyncio.AbstractEventLoop | None = None

    def _on_config(self, snapshot: Snapshot) -> None:
        if self._loop is not None and _served(snapshot):  # (called in a reload thread)
            self._loop.call_soon_threadsafe(self.webhooks.ensure)
        self.metrics.config_tenants.labels(self.topology.pool).set(len(snapshot.tenants))
        self.metrics.config_errors.labels(self.topology.pool).set(len(snapshot.errors))
        log.info(
            "resolved config loaded: %d tenants, %s%s",
            len(snapshot.tenants),
            snapshot.content_hash,
            f", {len(snapshot.errors)} problems" if snapshot.errors else "",
        )

    def _on_queue_shards(self, held: int, members: int) -> None:
        self.metrics.queue_shards_held.labels(self.topology.pool).set(held)
        self.metrics.live_workers.labels(self.topology.pool).set(members)

    async def run(self) -> None:
        """Until `stop` is set: sessions, reconnecting after broker failures."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.store.reload)
        watcher = asyncio.create_task(
            self.store.watch(self.settings.reload_interval, self.stop), name="config-watch"
        )
        try:
            async with contextlib.AsyncExitStack() as stack:
                graphs = [
                    GraphClient(
                        await stack.enter_async_context(self._http_client()),
                        base_url=self.settings.graph_base_url,
                        max_in_flight=self.settings.connections_per_client,
                        observer=self.metrics.graph_observer,
                    )
                    for _ in range(self._clients())
                ]
                failures = 0
                while not self.stop.is_set():
                    started = time.monotonic()
                    try:
                        await self._session(graphs)
                    except (aio_pika.exceptions.AMQPError, OSError, ConnectionError) as exc:
                        log.warning("broker session ended: %s", type(exc).__name__)
                    if self.stop.is_set():
                        break
                    failures = 0 if time.monotonic() - started > 30 else failures + 1
                    delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stop.wait(), delay)
        finally:
            self.stop.set()
            await watcher

    def _clients(self) -> int:
        return -(-self.settings.concurrency // self.settings.connections_per_client)

    def _http_client(self) -> httpx.AsyncClient:
        """One of the process's pooled clients. Several small pools instead of one large one:
        with the `httpcore` backend a pool costs more per request the more connections it
        holds (measured with 20 ms latency: one client with 64 connections ~150 req/s, 8
        clients with 8 each ~730 req/s); with `aiohttp` (the default) one pool of 64 or 16
        measured within noise of 8 x 8. A number always uses the same client, so its
        connections stay warm."""
        return new_http_client(
            max_connections=self.settings.connections_per_client,
            timeout=httpx.Timeout(self.settings.graph_timeout, connect=5.0, pool=30.0),
            backend=self.settings.http_backend,
        )

    async def _session(self, graphs: list[GraphClient]) -> None:
        url = self.settings.amqp_url.get_secret_value()
        connection = await aio_pika.connect(
            url, client_properties={"connection_name": self.settings.worker_id}
        )
        try:
            publishing, results = await self._channels(connection)
            journal = await self._journal(connection)
            self.webhooks.attach(connection)
            if _served(self.store.snapshot):
                self.webhooks.ensure()  # read the streams before a send may need them
            sender = self._sender(graphs, publishing.default_exchange, results, journal)
            holder = QueueShardHolder(
                connection,
                self.settings,
                self.topology,
                sender.handle,
                config_hash=lambda: self.store.content_hash,
                tenants=lambda: self.store.tenants_count,
                on_change=self._on_queue_shards,
                on_claim=journal.claimed if journal is not None else lambda shard: None,
            )
            self.holder = holder
            await holder.start()
            self.ready.set()
            await self._serve(connection, holder)
        finally:
            self.ready.clear()
            self.holder = None
            await self.webhooks.detach()
            self.holds.signaller.exchange = None
            with contextlib.suppress(Exception):
                await connection.close()

    async def _channels(
        self, connection: AbstractConnection
    ) -> tuple[AbstractChannel, AbstractExchange]:
        """Declare the pool's objects; open the channel messages are published on (with
        confirms), and the one of result events and tenant signals (without): its results
        exchange is returned, the signals exchange given to the signaller."""
        declare = await connection.channel()
        await declare_pool(declare, self.topology)
        results, _ = await declare_exchanges(declare)
        await declare.close()
        publishing = await connection.channel(publisher_confirms=True)
        # Result events go out on a channel without confirms: a publish returns once its
        # frames are written to the connection, before the delivery's ack is written to
        # the same connection. If the broker saw the ack, it saw the result too.
        events = await connection.channel(publisher_confirms=False)
        results = await events.get_exchange(results.name, ensure=False)
        # tenant signals to the operator: like heartbeats, on a channel without confirms
        self.holds.signaller.exchange = await events.get_exchange(SIGNALS_EXCHANGE, ensure=False)
        return publishing, results

    async def _journal(self, connection: AbstractConnection) -> JournalStream | None:
        """The send journal, started; None when it is off or the broker has no streams."""
        if self.settings.journal_lookback <= 0:
            return None
        journal = JournalStream(
            connection,
            self.topology,
            self.settings.worker_id,
            lookback=self.settings.journal_lookback,
        )
        try:
            await journal.start()
        except aio_pika.exceptions.ChannelClosed as exc:  # no streams (RabbitMQ < 3.9)
            log.warning(
                "the send journal is off (%s): messages a killed worker had sent may be sent again",
                exc,
            )
            return None
        return journal

    def _sender(
        self,
        graphs: list[GraphClient],
        publisher: AbstractExchange,
        results: AbstractExchange,
        journal: JournalStream | None,
    ) -> Sender:
        return Sender(
            topology=self.topology,
            store=self.store,
            graphs=graphs,
            limiter=self.limiter,
            policy=self.policy,
            publisher=publisher,
            results=results,
            metrics=self.metrics,
            concurrency=self.settings.concurrency,
            inline_wait=self.settings.inline_wait,
            arrival_spread=self.settings.arrival_spread,
            journal=journal,
            uncertain_sends=self.settings.uncertain_sends,
            outcomes=self.outcomes,
            holds=self.holds,
            webhooks=self.webhooks,
        )

    async def _serve(self, connection: AbstractConnection, holder: QueueShardHolder) -> None:
        """Hold queue shards until `stop` (then drain them) or until the connection is lost."""
        lost = asyncio.create_task(_closed(connection))
        balancing = asyncio.create_task(holder.run(self.stop))
        done, _ = await asyncio.wait({lost, balancing}, return_when=asyncio.FIRST_COMPLETED)
        if lost in done:
            balancing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await balancing
            raise ConnectionError("the broker connection was lost")
        lost.cancel()
        balancing.result()
        await holder.close()  # drain: started sends finish and are acked


def _served(snapshot: Snapshot) -> bool:
    """Whether the webhook receiver serves a tenant of this config (`webhooks.py`)."""
    return any(t.webhook_app_id for t in snapshot.tenants.values())


async def _closed(connection: AbstractConnection) -> None:
    """Returns when the connection closes for any reason."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def done(*_: object) -> None:
        if not future.done():
            future.set_result(None)

    connection.close_callbacks.add(done)
    if connection.is_closed:
        done()
    await future
