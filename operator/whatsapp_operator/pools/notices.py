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
(`NoticeRouter`) and the tenant woken. The message is acknowledged only once the pass that
took it has written the tenant's status (tenant/loop.py settles its `Delivery`): a replica
lost before that leaves the notice unacknowledged, and the broker hands it to the next one.
(Acknowledging after the write, rather than first copying the notice to the tenant, costs no
extra API call: the pass writes `status.health` anyway.) Redeliveries are harmless: the pass
recognises a notice it already applied (model/notice_ids.py). When the connection closes, the
notices it delivered and no pass wrote yet are dropped here (void): the broker delivers them
again. A notice for a tenant not known here is acknowledged after `PENDING_GRACE` even
unwritten (kept in memory for the tenant's first pass), so that notices about tenants that
no longer exist do not hold the prefetch (a deleted tenant's pending notices are acknowledged
at its deletion: registry.drop_notices). One that cannot be read is acknowledged at once (it
would never read better), counted and logged without its content. Wakes need no window of
their own: a tenant woken many times before its pass runs makes one pass, which takes every
notice filed by then.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

from prometheus_client import Counter

from whatsapp_contract.webhook import NOTICES_EXCHANGE, NOTICES_QUEUE
from whatsapp_operator.model.notices import Notice, Receipt, parse_notice
from whatsapp_operator.pools.consumer import RECONNECT_CAP, Consumer, PauseState
from whatsapp_operator.runtime.registry import Registry

log = logging.getLogger(__name__)

MALFORMED_LOG_EVERY = 10.0  # seconds: one log line for a run of unreadable notices
PREFETCH = 200  # notices in flight (delivered, not yet written by a pass) to this replica
PENDING_GRACE = 120.0  # seconds a notice for a tenant not known here holds its delivery
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


class Timer(Protocol):
    def cancel(self) -> None: ...


Later = Callable[[float, Callable[[], None]], Timer]


def _call_later(delay: float, callback: Callable[[], None]) -> Timer:
    return asyncio.get_running_loop().call_later(delay, callback)


class NoticeRouter:
    """Notices -> the registry's store for each tenant's next pass, and a wake."""

    def __init__(
        self, registry: Registry, *, later: Later = _call_later, grace: float = PENDING_GRACE
    ) -> None:
        self.registry = registry
        self.grace = grace
        self._later = later

    def route(self, notice: Notice) -> Outcome:
        dropped = self.registry.post_notice(notice.key, notice)
        if dropped:
            NOTICES_DROPPED.inc(dropped)
        outcome: Outcome = "woken" if self.registry.wake(notice.key, "notice") else "pending"
        if outcome == "pending" and notice.receipt is not None:
            # a tenant that does not exist (any more) must not hold the queue's prefetch for
            # ever: after the grace its notice is acknowledged (still kept for its first pass)
            self._later(self.grace, notice.receipt.settle)
        NOTICES.labels(notice.kind, outcome).inc()
        log.info(
            "tenant %s/%s: %s from Meta (WABA %s): %s", notice.namespace, notice.name,
            notice.kind, notice.waba_id, outcome,
        )  # fmt: skip
        return outcome


class Delivery:
    """One notice's message (`model.notices.Receipt`): acknowledged when settled, by the pass
    that wrote its effect; void once the connection it came on is gone (the broker hands it
    out again: the copy held here must not be applied too)."""

    __slots__ = ("_listener", "message", "settled", "void")

    def __init__(self, listener: NoticeListener, message: Any) -> None:
        self._listener = listener
        self.message = message
        self.settled = False
        self.void = False

    def settle(self) -> None:
        if not (self.settled or self.void):
            self.settled = True
            self._listener.acknowledge(self)


class NoticeListener(Consumer):
    """The AMQP side: consume `whatsapp.operator.notices` while not paused, reconnecting with
    backoff (pools/consumer.py)."""

    label = "notices"
    source = NOTICES_QUEUE

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
        super().__init__(amqp_url, paused=paused, reconnect_cap=reconnect_cap, prefetch=prefetch)
        self.on_notice = on_notice
        self._clock = clock
        self._malformed = 0  # dropped since the last log line
        self._malformed_logged = -MALFORMED_LOG_EVERY
        self._held: set[Delivery] = set()  # delivered on this connection, not settled yet
        self._acks: set[asyncio.Task[None]] = set()

    def receive(self, body: bytes, receipt: Receipt | None = None) -> Notice | None:
        """One message from the queue: the notice handed on, or None (dropped, logged)."""
        notice = parse_notice(body)
        if notice is None:
            self._drop(len(body))
            return None
        notice = dataclasses.replace(notice, receipt=receipt)
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

    async def declare(self, channel: Any, aio_pika: Any) -> Any:
        exchange = await channel.declare_exchange(
            NOTICES_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(NOTICES_QUEUE, durable=True, arguments=QUEUE_ARGUMENTS)
        await queue.bind(exchange, routing_key="#")
        return queue

    async def handle(self, message: Any) -> None:
        delivery = Delivery(self, message)
        self._held.add(delivery)  # before the router: it may settle it at once (dropped)
        try:
            notice = self.receive(message.body, delivery)
        except Exception:  # one bad notice must not stop the consumer
            log.exception("notice not handled")
            notice = None
        if notice is None:
            delivery.settle()  # unreadable (or a bug): it would never read better

    def acknowledge(self, delivery: Delivery) -> None:
        """Acknowledge a settled notice (in the background: the caller is a tenant's pass)."""
        self._held.discard(delivery)
        task = asyncio.get_running_loop().create_task(self._ack(delivery.message))
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)

    async def _ack(self, message: Any) -> None:
        try:
            await message.ack()
        except Exception as exc:  # the channel closed: the broker hands the notice out again
            log.info("notices: acknowledgement not sent (%s): the notice comes again and "
                     "changes nothing then", type(exc).__name__)  # fmt: skip

    def lost(self) -> None:
        """The connection closed: the broker hands its unacknowledged notices out again."""
        for delivery in self._held:
            delivery.void = True
        self._held.clear()
