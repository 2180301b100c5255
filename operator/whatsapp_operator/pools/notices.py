"""Meta's account and number notices from the webhook receiver: the operator's consumer.

The receiver publishes each `phone_number_quality_update`, `account_update`,
`phone_number_name_update`, `business_capability_update` and `message_template_status_update`
change as a contract notice (whatsapp_contract/webhook.py): persistent, to the topic exchange
`whatsapp.notices`, routing key the tenant's namespace, bound with '#' to the quorum queue
`whatsapp.operator.notices`. With `--amqp-url`, `NoticeListener` (aio-pika) consumes that
queue, on the active replica only: a replica paused by kopf's peering cancels its consumer, so
the queue keeps the notices for the replica that runs the passes (the queue is shared, unlike
the signals' exclusive queues: a notice is handled once).

Each notice is read (model/notices.py), filed in the registry for the tenant's next pass
(`NoticeRouter`), the tenant woken, and the message acknowledged. One that cannot be read is
acknowledged too (it would never read better), counted and logged without its content. The
tenant's pass applies the notices to `status.health` (model/health.py); wakes need no window
of their own: a tenant woken many times before its pass runs makes one pass, which takes every
notice filed by then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

from prometheus_client import Counter

from whatsapp_contract.webhook import NOTICES_EXCHANGE, NOTICES_QUEUE
from whatsapp_operator.model.notices import Notice, parse_notice
from whatsapp_operator.model.recheck import backoff
from whatsapp_operator.runtime.registry import Registry

log = logging.getLogger(__name__)

RECONNECT_CAP = 30.0  # seconds: the longest wait between two connection attempts
MALFORMED_LOG_EVERY = 10.0  # seconds: one log line for a run of unreadable notices
PREFETCH = 200  # notices in flight to this replica at once
# As the receiver declares the queue (whatsapp_webhook/broker.py): the same arguments, or the
# broker refuses the second declaration.
QUEUE_ARGUMENTS: dict[str, Any] = {"x-queue-type": "quorum"}
Outcome = Literal["woken", "pending", "malformed"]

NOTICES = Counter(
    "whatsapp_operator_notices_total",
    "Meta's account and number notices from the webhook receiver, by kind and what the "
    "operator did: woken (the tenant's pass takes it), pending (the tenant is not known here "
    "yet: its first pass takes it), malformed (dropped)",
    ["kind", "outcome"],
)
NOTICES_DROPPED = Counter(
    "whatsapp_operator_notices_dropped_total",
    "Notices dropped unapplied to keep the pending store bounded (registry.MAX_NOTICES)",
)


class PauseState(Protocol):
    """kopf's `operator_paused` toggle set (runtime/toggles.paused_set)."""

    def is_on(self) -> bool: ...

    async def wait_for(self, __state: bool) -> None: ...


class NoticeRouter:
    """Notices -> the registry's store for each tenant's next pass, and a wake."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def route(self, notice: Notice) -> Outcome:
        dropped = self.registry.post_notice(notice.key, notice)
        if dropped:
            NOTICES_DROPPED.inc(dropped)
        outcome: Outcome = "woken" if self.registry.wake(notice.key, "notice") else "pending"
        NOTICES.labels(notice.kind, outcome).inc()
        log.info(
            "tenant %s/%s: %s from Meta (WABA %s): %s", notice.namespace, notice.name,
            notice.kind, notice.waba_id, outcome,
        )  # fmt: skip
        return outcome


class NoticeListener:
    """The AMQP side: consume `whatsapp.operator.notices` while not paused, reconnecting with
    backoff."""

    def __init__(
        self,
        amqp_url: str,
        on_notice: Callable[[Notice], object],
        *,
        paused: PauseState | None = None,
        clock: Callable[[], float] = time.monotonic,
        reconnect_cap: float = RECONNECT_CAP,
        prefetch: int = PREFETCH,
    ) -> None:
        self.amqp_url = amqp_url
        self.on_notice = on_notice
        self.reconnect_cap = reconnect_cap
        self.prefetch = prefetch
        self.connected = asyncio.Event()  # set while consuming (tests wait for it)
        self._paused = paused
        self._clock = clock
        self._malformed = 0  # dropped since the last log line
        self._malformed_logged = -MALFORMED_LOG_EVERY

    def receive(self, body: bytes) -> Notice | None:
        """One message from the queue: the notice handed on, or None (dropped, logged)."""
        notice = parse_notice(body)
        if notice is None:
            self._drop(len(body))
            return None
        self.on_notice(notice)
        return notice

    def _drop(self, size: int) -> None:
        NOTICES.labels("unreadable", "malformed").inc()
        self._malformed += 1
        now = self._clock()
        if now - self._malformed_logged >= MALFORMED_LOG_EVERY:
            log.warning(
                "dropped %d malformed notice(s) from %s (the last %d bytes); the webhook "
                "receiver publishes something else than whatsapp_contract.webhook.notice",
                self._malformed, NOTICES_QUEUE, size,
            )  # fmt: skip
            self._malformed, self._malformed_logged = 0, now

    def _is_paused(self) -> bool:
        return self._paused is not None and self._paused.is_on()

    async def run(self) -> None:
        """Consume for ever (cancel to stop): not while paused; a lost connection is retried
        with backoff."""
        failures = 0
        while True:
            if self._paused is not None and self._paused.is_on():
                await self._paused.wait_for(False)
            try:
                await self._consume()
                failures = 0  # it was up: the next failure starts the backoff over
                if self._is_paused():
                    continue  # not a failure: wait for the resume
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("notices unavailable: %s", type(exc).__name__)
            finally:
                self.connected.clear()
            failures += 1
            await asyncio.sleep(backoff(failures, base=1.0, cap=self.reconnect_cap))

    async def _consume(self) -> None:
        """Until the connection or the channel closes, or peering pauses this replica."""
        import aio_pika  # only operators given an AMQP URL need the client

        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            lost = asyncio.Event()
            connection.close_callbacks.add(lambda *_: lost.set())
            channel = await connection.channel()
            channel.close_callbacks.add(lambda *_: lost.set())
            await channel.set_qos(prefetch_count=self.prefetch)
            exchange = await channel.declare_exchange(
                NOTICES_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(
                NOTICES_QUEUE, durable=True, arguments=QUEUE_ARGUMENTS
            )
            await queue.bind(exchange, routing_key="#")

            async def on_message(message: Any) -> None:
                try:
                    self.receive(message.body)
                except Exception:  # one bad notice must not stop the consumer
                    log.exception("notice not handled")
                await message.ack()

            tag = await queue.consume(on_message)
            log.info("notices: consuming %s", NOTICES_QUEUE)
            self.connected.set()
            await self._until_lost_or_paused(lost)
            if not lost.is_set():
                await queue.cancel(tag)  # the broker hands the rest to the active replica
                log.info("notices: paused by peering, consumer cancelled")
                return
        log.warning("notices: connection to RabbitMQ lost")

    async def _until_lost_or_paused(self, lost: asyncio.Event) -> None:
        waits: list[asyncio.Task[Any]] = [asyncio.create_task(lost.wait())]
        if self._paused is not None:
            waits.append(asyncio.create_task(self._paused.wait_for(True)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
