"""Settling a delivery once its outcome is known: accepted (result event, then ack), parked
in a delay queue (confirmed copy, then ack) or dead-lettered with a reason (confirmed copy
and result event, then ack). Never an ack before the outcome is safely elsewhere.

An accepted message's result event is written to the connection before its ack (no confirm
of its own: TCP keeps them in order, so an ack the broker saw means the result was seen too).
Between the two, a journalled delivery is recorded as settled in the send journal (confirmed),
so that a process killed before the ack leaves a message the next owner acks instead of
sending it again (Meta has no idempotency key; see `journal.py`).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from .delivery import (
    H_COPY,
    Failure,
    SendAnswer,
    attempt_headers,
    dead_letter_headers,
    result_event,
)
from .journal import SETTLED
from .journal_stream import JournalStream
from .messages import OutboundMessage, message_key
from .metrics import WorkerMetrics
from .policy import Action, Attempt, Decision, next_attempt
from .topology import PoolTopology, delay_tier

log = logging.getLogger(__name__)


class Settler:
    def __init__(
        self,
        *,
        topology: PoolTopology,
        publisher: AbstractExchange,  # the default exchange of a confirming channel
        results: AbstractExchange,
        metrics: WorkerMetrics,
        clock: Callable[[], float],
        journal: JournalStream | None = None,
    ) -> None:
        self.topology = topology
        self.journal = journal
        # (shard, delivery tag) -> journal key, while a journalled delivery is handled
        self.keys: dict[tuple[int, int | None], str] = {}
        self.pool = topology.pool
        self.publisher = publisher
        self.results = results
        self.metrics = metrics
        self.clock = clock

    async def settle(
        self,
        delivery: AbstractIncomingMessage,
        shard: int,
        message: OutboundMessage,
        decision: Decision,
        attempt: Attempt,
        headers: dict[str, Any],
    ) -> None:
        """Carry out a decision taken without a send: dead-letter, or retry later."""
        if decision.action is Action.DEAD_LETTER:
            failure = Failure.from_decision(decision, detail=_detail(decision))
            await self.dead_letter(delivery, shard, message, failure, attempt, headers)
            return
        attempt = next_attempt(attempt, decision, self.clock())
        self.count(decision)
        await self.later(delivery, shard, attempt, headers, decision.delay)

    def count(self, decision: Decision) -> None:
        """A decision that keeps the message (retry, throttle, hold), in the metrics."""
        self.metrics.retried.labels(self.pool, decision.action.value).inc()
        if decision.action is Action.HOLD:
            self.metrics.holds.labels(self.pool, decision.reason).inc()

    async def later(
        self,
        delivery: AbstractIncomingMessage,
        shard: int,
        attempt: Attempt,
        headers: dict[str, Any],
        delay: float,
    ) -> None:
        """Park the message in the shard's delay queue, then ack this delivery."""
        queue = self.topology.delay_queue(shard, delay_tier(delay))
        await self.publisher.publish(_copy(delivery, attempt_headers(headers, attempt)), queue)
        await self.ack(delivery, shard)

    async def accepted(
        self,
        delivery: AbstractIncomingMessage,
        shard: int,
        message: OutboundMessage,
        attempt: Attempt,
        wamid: str | None,
        *,
        possible_duplicate: bool = False,
        answer: SendAnswer | None = None,
        resolved_by: str | None = None,
    ) -> None:
        self.metrics.sent.labels(self.pool).inc()
        event = result_event(
            pool=self.pool,
            message_id=_message_id(delivery, message),
            message=message,
            attempts=attempt.attempts + 1,
            now=self.clock(),
            wamid=wamid,
            possible_duplicate=possible_duplicate,
            answer=answer,
            resolved_by=resolved_by,
        )
        # the result, then (journalled as settled) the ack, on one connection (module doc)
        await self._emit_result(event)
        await self.ack(delivery, shard)

    async def dead_letter(
        self,
        delivery: AbstractIncomingMessage,
        shard: int,
        message: OutboundMessage | None,
        failure: Failure,
        attempt: Attempt,
        headers: dict[str, Any],
    ) -> None:
        now = self.clock()
        self.metrics.failed.labels(
            self.pool, failure.reason, str(failure.code or ""), failure.error_class or ""
        ).inc()
        tenant_id = message.tenant_id if message else None
        dead = dead_letter_headers(
            headers, failure, attempt=attempt, tenant_id=tenant_id, shard=shard, now=now
        )
        await self.publisher.publish(_copy(delivery, dead), self.topology.dead_queue)
        event = result_event(
            pool=self.pool,
            message_id=_message_id(delivery, message),
            message=message,
            attempts=attempt.attempts,
            now=now,
            failure=failure,
        )
        await self._emit_result(event)
        log.warning(
            "dead-lettered a message%s: %s%s",
            f" of tenant {tenant_id}" if tenant_id else "",
            failure.reason,
            f" (code {failure.code})" if failure.code is not None else "",
            extra={"tenant_id": tenant_id, "message_id": event.get("messageId"), "shard": shard,
                   "meta_code": failure.code, "reason": failure.reason},
        )  # fmt: skip
        await self.ack(delivery, shard)

    async def ack(self, delivery: AbstractIncomingMessage, shard: int) -> None:
        """The outcome is published: journal the delivery as settled (when it is journalled
        at all), then ack. A later owner given it again acks it without sending."""
        key = self.keys.get((shard, delivery.delivery_tag))
        if key is not None and self.journal is not None:
            await self.journal.record(shard, key, SETTLED)
        await delivery.ack()

    async def _emit_result(self, event: dict[str, Any]) -> None:
        await self.results.publish(
            aio_pika.Message(
                json.dumps(event, separators=(",", ":")).encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=event.get("messageId"),
                correlation_id=event.get("messageId"),
            ),
            routing_key=f"{self.pool}.{event['status']}",
            mandatory=False,  # an event nobody subscribed to is simply not kept
        )


def _message_id(delivery: AbstractIncomingMessage, message: OutboundMessage | None) -> str | None:
    """What producers correlate results by: metadata.messageId, else the AMQP message id,
    else a hash of the content."""
    if message is not None and message.message_id:
        return message.message_id
    if delivery.message_id:
        return delivery.message_id
    return message_key(message) if message is not None else None


def _copy(delivery: AbstractIncomingMessage, headers: dict[str, Any]) -> aio_pika.Message:
    """The same message (body and producer properties) with new headers and a copy id of its
    own (the send journal tells copies apart by it); persistent."""
    return aio_pika.Message(
        delivery.body,
        headers={**headers, H_COPY: uuid.uuid4().hex[:16]},
        content_type=delivery.content_type,
        content_encoding=delivery.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        correlation_id=delivery.correlation_id,
        message_id=delivery.message_id,
        timestamp=delivery.timestamp,
        type=delivery.type,
        app_id=delivery.app_id,
    )


def _detail(decision: Decision) -> str:
    parts = [decision.reason]
    if decision.code is not None:
        parts.append(f"Meta error code {decision.code}")
    if decision.error_class:
        parts.append(f"class {decision.error_class}")
    return ", ".join(parts)
