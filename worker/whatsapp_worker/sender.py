"""One message from delivery to outcome: decode, find the tenant, wait for the limits, send,
then classify the result and hand the delivery to `settle.Settler`. Decisions come from the
pure modules (`delivery`, `limits`, `policy`, `windows`); `pacing.Pacer` waits for the limits.

Meta has no idempotency key: each send is journalled (`journal.py`); a delivery given again
after its worker died, or a request that timed out after it was written, is settled from what
the journal and Meta's status webhooks tell (`recovery.py`, `unanswered.py`). Every send
carries its message id for those webhooks (`callback.py`); a free-form message outside the
customer service window is refused (`webhooks.py`). A number Meta blocked is paused and its
messages held without calling Meta (`holds.py`); the operator is told (`signalling.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from whatsapp_contract.resolved import TenantConfig
from whatsapp_graph.client import GraphClient
from whatsapp_graph.errors import GraphApiError, GraphUnavailable

from . import tracing
from .callback import callback_id, stamp
from .config import ConfigStore
from .delivery import PHONE_MISMATCH, Failure, answer_of, decode, error_detail, read_attempt
from .holds import Holds
from .journal import NOT_SENT, Known, Outcomes, UncertainSends
from .journal_stream import JournalStream
from .limits import Limiter
from .messages import InvalidMessage, OutboundMessage
from .metrics import WorkerMetrics
from .pacing import Pacer
from .pauses import Verdict
from .policy import (
    Action,
    Attempt,
    Decision,
    RetryPolicy,
    after_error,
    next_attempt,
    number_blocked,
)
from .policy import tenant_unavailable as unavailable_decision
from .posting import Poster
from .recovery import Progress, Recovery, orphaned
from .send_window import ARRIVAL_SPREAD
from .settle import Settler
from .topology import PoolTopology
from .webhooks import Webhooks

log = logging.getLogger(__name__)


class Sender:
    def __init__(
        self,
        *,
        topology: PoolTopology,
        store: ConfigStore,
        graphs: Sequence[GraphClient],
        limiter: Limiter,
        policy: RetryPolicy,
        publisher: AbstractExchange,  # the default exchange of a confirming channel
        results: AbstractExchange,
        metrics: WorkerMetrics,
        concurrency: int,
        inline_wait: float,
        arrival_spread: float = ARRIVAL_SPREAD,
        clock: Callable[[], float] = time.time,
        journal: JournalStream | None = None,
        uncertain_sends: UncertainSends = "dead_letter",
        outcomes: Outcomes | None = None,
        holds: Holds | None = None,  # kept across broker sessions, like `outcomes`
        webhooks: Webhooks | None = None,  # the receiver's statuses and service windows
    ) -> None:
        self.pool = topology.pool
        self.holds = holds or Holds(pool=self.pool, worker="", metrics=metrics, clock=clock)
        self.store = store
        self.poster = Poster(pool=self.pool, graphs=graphs, store=store, metrics=metrics)
        self.webhooks = webhooks
        self.limiter = limiter
        self.policy = policy
        self.settler = Settler(
            topology=topology,
            publisher=publisher,
            results=results,
            metrics=metrics,
            clock=clock,
            journal=journal,
        )
        self.recovery = Recovery(
            pool=self.pool,
            journal=journal,
            outcomes=outcomes if outcomes is not None else Outcomes(),
            uncertain_sends=uncertain_sends,
            settler=self.settler,
            metrics=metrics,
            webhooks=webhooks,
        )
        self.metrics = metrics
        self.inflight = asyncio.Semaphore(concurrency)
        self.inline_wait = inline_wait
        self.clock = clock
        self.pacer = Pacer(
            pool=self.pool,
            limiter=limiter,
            metrics=metrics,
            inline_wait=inline_wait,
            arrival_spread=arrival_spread,
            clock=clock,
        )

    async def handle(self, delivery: AbstractIncomingMessage, shard: int) -> None:
        """Process one delivery; never raises (a failure leaves it unacked for redelivery)."""
        try:
            with tracing.delivery(delivery, shard):  # its producer's trace, its queue wait
                await self._handle(delivery, shard)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A broker problem while settling (or a bug): give it back after a pause (a message
            # that always fails cannot spin); if the channel is gone, RabbitMQ requeues it.
            log.exception(
                "shard %s: a message could not be settled; it will be redelivered",
                shard,
                extra={"shard": shard, "message_id": delivery.message_id},
            )
            if not delivery.processed:
                await asyncio.sleep(1.0)
                with contextlib.suppress(Exception):
                    await delivery.nack(requeue=True)
        finally:
            self.settler.keys.pop((shard, delivery.delivery_tag), None)

    async def _handle(self, delivery: AbstractIncomingMessage, shard: int) -> None:
        headers: dict[str, Any] = dict(delivery.headers or {})
        attempt = read_attempt(headers)
        if delivery.timestamp is not None and attempt.attempts == 0 and not attempt.throttles:
            self.metrics.queue_lag.labels(self.pool).observe(
                max(0.0, self.clock() - delivery.timestamp.timestamp())
            )
        message: OutboundMessage | None = None
        try:
            message = decode(delivery.body, headers)
            identity = callback_id(message, delivery.message_id)
            message = stamp(message, identity)  # the id Meta's status webhooks will echo
        except InvalidMessage as exc:
            failure = Failure(reason=exc.reason, detail=exc.detail)
            await self.settler.dead_letter(delivery, shard, message, failure, attempt, headers)
            return
        key = self.recovery.key(delivery, message, headers)
        possible_duplicate = False
        tenant = self.store.get(message.tenant_id)
        if key is not None:
            self.settler.keys[(shard, delivery.delivery_tag)] = key
        resumed = await self.recovery.resume(
            delivery, shard, message, attempt, headers, key, tenant, identity
        )
        if resumed is None:
            return  # settled without a send
        possible_duplicate = resumed
        if tenant is None or tenant.suspended:
            decision = unavailable_decision(self.policy, attempt, self.clock())
            await self.settler.settle(delivery, shard, message, decision, attempt, headers)
            return
        if tenant.phone_number_id != message.phone_number_id:
            failure = Failure(
                reason=PHONE_MISMATCH,
                detail=f"phone number {message.phone_number_id} is not the number of tenant "
                f"{message.tenant_id}",
            )
            await self.settler.dead_letter(delivery, shard, message, failure, attempt, headers)
            return
        gate = self.holds.gate(tenant)
        if gate.verdict is Verdict.HOLD and gate.code is not None:
            decision = number_blocked(self.policy, attempt, self.clock(), gate.code)
            await self.settler.settle(delivery, shard, message, decision, attempt, headers)
            return
        if self.webhooks is not None:
            outside = await self.webhooks.window(message, tenant)
            if outside is not None:  # free-form, and the customer service window is closed
                await self.settler.dead_letter(delivery, shard, message, outside, attempt, headers)
                return
        progress = Progress(probe=gate.verdict is Verdict.PROBE, identity=identity)
        try:
            await self._send_loop(
                delivery, shard, message, tenant, attempt, headers, key, possible_duplicate,
                progress,
            )  # fmt: skip
        except Exception:  # not settled (the connection went away, most likely)
            self.recovery.lost(key, progress)
            raise

    async def _send_loop(
        self,
        delivery: AbstractIncomingMessage,
        shard: int,
        message: OutboundMessage,
        tenant: TenantConfig,
        attempt: Attempt,
        headers: dict[str, Any],
        key: str | None,
        possible_duplicate: bool,
        progress: Progress,
    ) -> None:
        rotated_once = False
        error = ""
        while True:
            started = await self._cleared(
                delivery, shard, message, tenant, attempt, headers, progress
            )
            if started is None:
                return  # parked, or held: settled
            sent_at = self.clock()
            try:
                response = await self._send(
                    delivery, shard, key, message, tenant, started, progress
                )
            except GraphApiError as exc:
                progress.outcome = NOT_SENT  # Meta refused it
                error = error_detail(exc)
                decision = self._decide(attempt, exc.code, exc.subcode, maybe_sent=False)
                if await self.holds.meta_refused(tenant, exc) and not rotated_once:
                    rotated_once = True
                    fresh = await self.poster.fresh_token(tenant)
                    if fresh is not None:
                        tenant = fresh  # a rotated token is already mounted: use it now
                        continue
            except GraphUnavailable as exc:
                progress.outcome = None if exc.maybe_sent else NOT_SENT
                if exc.maybe_sent and await self._unanswered(
                    delivery, shard, message, tenant, attempt, headers, progress
                ):
                    return
                error = str(exc)
                if exc.maybe_sent:
                    self.metrics.possible_duplicates.labels(self.pool).inc()
                decision = self._decide(attempt, None, None, maybe_sent=exc.maybe_sent)
            else:
                if response is not None:  # None: requeued meanwhile, and not sent
                    await self._accepted(
                        delivery, shard, message, tenant, attempt, response, sent_at,
                        possible_duplicate, progress,
                    )  # fmt: skip
                return
            retry = await self._after_failure(
                delivery, shard, message, tenant, attempt, headers, decision, error,
                possible_duplicate,
            )  # fmt: skip
            if retry is None:
                return
            attempt = retry

    async def _cleared(
        self,
        delivery: AbstractIncomingMessage,
        shard: int,
        message: OutboundMessage,
        tenant: TenantConfig,
        attempt: Attempt,
        headers: dict[str, Any],
        progress: Progress,
    ) -> float | None:
        """Wait until the limits let the message go (`pacing.Pacer.wait`): the moment it was
        let go (monotonic), or None when it was parked in a delay queue instead, or held
        because its number was paused while it waited."""
        paced = await self.pacer.wait(message, tenant)
        if paced.started is None:  # parked in a delay queue
            await self.settler.later(delivery, shard, attempt, headers, paced.park_for)
            return None
        paused = None if progress.probe else self.holds.holding(tenant)
        if paused is not None:  # the number was paused while this message waited
            self.pacer.window.done(tenant.phone_number_id, paced.started, time.monotonic())
            decision = number_blocked(self.policy, attempt, self.clock(), paused)
            await self.settler.settle(delivery, shard, message, decision, attempt, headers)
            return None
        return paced.started

    async def _send(
        self,
        delivery: AbstractIncomingMessage,
        shard: int,
        key: str | None,
        message: OutboundMessage,
        tenant: TenantConfig,
        started: float,
        progress: Progress,
    ) -> dict[str, Any] | None:
        """Post the message once a request slot is free and the send is journalled: Meta's
        answer, or None when the delivery went back to the broker meanwhile (not sent)."""
        window = self.pacer.window
        try:
            async with self.inflight:  # journalled once a request slot is free
                if orphaned(delivery) or not await self.recovery.sent(delivery, shard, key):
                    # The broker connection or channel is gone, so RabbitMQ has requeued
                    # this delivery and another process may be sending it already: sending
                    # it here too would be a duplicate at Meta, and its ack could not be
                    # sent anyway.
                    self.metrics.retried.labels(self.pool, "requeued").inc()
                    return None
                # it counts in the number's window from now, when it really leaves
                started = window.depart(tenant.phone_number_id, started, time.monotonic())
                progress.outcome = None  # from here on, Meta may have it
                return await self.poster.post(message, tenant)
        finally:  # the request counts in the number's window until a second after
            window.done(tenant.phone_number_id, started, time.monotonic())

    async def _accepted(
        self,
        delivery: AbstractIncomingMessage,
        shard: int,
        message: OutboundMessage,
        tenant: TenantConfig,
        attempt: Attempt,
        response: dict[str, Any],
        sent_at: float,
        possible_duplicate: bool,
        progress: Progress,
    ) -> None:
        """Meta accepted the message: publish the result and ack."""
        answer = answer_of(response)
        progress.outcome = Known(accepted=True, wamid=answer.wamid, attempt=attempt, answer=answer)
        self.holds.accepted(tenant, sent_at, probe=progress.probe)
        if self.webhooks is not None:
            self.webhooks.accepted(message, tenant, answer.wa_id)
        await self.settler.accepted(
            delivery,
            shard,
            message,
            attempt,
            answer.wamid,
            possible_duplicate=possible_duplicate,
            answer=answer,
        )

    async def _unanswered(
        self,
        delivery: AbstractIncomingMessage,
        shard: int,
        message: OutboundMessage,
        tenant: TenantConfig,
        attempt: Attempt,
        headers: dict[str, Any],
        progress: Progress,
    ) -> bool:
        """A request that timed out after it was written: True once its status webhook said
        Meta has it (settled as accepted), or it was parked to wait for one."""
        if not await self.recovery.timed_out(
            delivery, shard, message, tenant, attempt, headers, progress
        ):
            return False
        if progress.outcome is not None and progress.outcome.accepted:
            self.holds.accepted(tenant, self.clock(), probe=progress.probe)
        return True

    async def _after_failure(
        self,
        delivery: AbstractIncomingMessage,
        shard: int,
        message: OutboundMessage,
        tenant: TenantConfig,
        attempt: Attempt,
        headers: dict[str, Any],
        decision: Decision,
        error: str,
        possible_duplicate: bool,
    ) -> Attempt | None:
        """Carry out the decision after a failed send: the next attempt when it is tried again
        here (after a wait short enough to take in memory), or None once it is settled."""
        self.pacer.throttled(decision, tenant, message)
        attempt = next_attempt(attempt, decision, self.clock())
        if decision.action is Action.DEAD_LETTER:
            failure = Failure.from_decision(decision, detail=error)
            if possible_duplicate:
                failure = dataclasses.replace(failure, possible_duplicate=True)
            await self.settler.dead_letter(delivery, shard, message, failure, attempt, headers)
            return None
        self.settler.count(decision)
        if decision.action in (Action.RETRY, Action.THROTTLE) and (
            decision.delay <= self.inline_wait
        ):
            await asyncio.sleep(decision.delay)
            return attempt
        await self.settler.later(delivery, shard, attempt, headers, decision.delay)
        return None

    def _decide(
        self, attempt: Attempt, code: int | None, subcode: int | None, *, maybe_sent: bool
    ) -> Decision:
        now, rand = self.clock(), random.random()  # jitter, not security
        return after_error(self.policy, attempt, code=code, subcode=subcode,
                           maybe_sent=maybe_sent, now=now, rand=rand)  # fmt: skip
