"""One message from delivery to outcome: decode, find the tenant, wait for the limits, send,
then classify the result and hand the delivery to `settle.Settler`. Decisions come from the
pure modules (`delivery`, `limits`, `policy`); this module only sequences the I/O.

A process killed before a delivery is settled leaves it unacked, so RabbitMQ delivers it
again. Meta has no idempotency key, so each send is journalled (`journal.py`) before it goes
out and before its ack: a delivery given again is acked if its outcome was published, and
dead-lettered (or resent, by the pool's choice) if Meta may have it (`recovery.py`). A send
that timed out after the request was written is counted (`possible_duplicates`) and retried.

A number Meta blocked (`errors.TENANT_BLOCKED_CODES`) is paused in this process and its
messages are held without calling Meta (`holds.py`: `pauses.py` decides which, and
`policy.number_blocked` for how long); the operator is told, and so it is of a token Meta
refused (`signalling.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from whatsapp_contract.resolved import TenantConfig
from whatsapp_graph.client import GraphClient
from whatsapp_graph.errors import ErrorClass, GraphApiError, GraphUnavailable, ThrottleScope

from .config import ConfigStore
from .delivery import PHONE_MISMATCH, Failure, answer_of, decode, read_attempt
from .holds import Holds
from .journal import NOT_SENT, Known, Outcomes, UncertainSends
from .journal_stream import JournalStream
from .limits import ARRIVAL_SPREAD, Limiter, SendWindow
from .messages import InvalidMessage, OutboundMessage
from .metrics import WorkerMetrics
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
from .recovery import Progress, Recovery, orphaned
from .settle import Settler
from .topology import PoolTopology

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
    ) -> None:
        self.pool = topology.pool
        self.holds = holds or Holds(pool=self.pool, worker="", metrics=metrics, clock=clock)
        self.store = store
        self.graphs = graphs
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
        )
        self.metrics = metrics
        self.inflight = asyncio.Semaphore(concurrency)
        self.inline_wait = inline_wait
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}  # per phone number, while anyone waits
        self._lock_users: dict[str, int] = {}
        self._window = SendWindow(arrival_spread)  # limits.py: requests at Meta, per number

    async def handle(self, delivery: AbstractIncomingMessage, shard: int) -> None:
        """Process one delivery; never raises (a failure leaves it unacked for redelivery)."""
        try:
            await self._handle(delivery, shard)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A broker problem while settling (or a bug): give the delivery back, after a
            # pause so that a message that always fails cannot spin; if the channel is gone,
            # RabbitMQ requeues it anyway.
            log.exception("shard %s: a message could not be settled; it will be redelivered", shard)
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
        try:
            message = decode(delivery.body, headers)
        except InvalidMessage as exc:
            failure = Failure(reason=exc.reason, detail=exc.detail)
            await self.settler.dead_letter(delivery, shard, None, failure, attempt, headers)
            return
        key = self.recovery.key(delivery, message, headers)
        possible_duplicate = False
        if key is not None:
            self.settler.keys[(shard, delivery.delivery_tag)] = key
            if delivery.redelivered:
                resumed = await self.recovery.redelivered(
                    delivery, shard, message, attempt, headers, key
                )
                if resumed is None:
                    return  # settled without a send
                possible_duplicate = resumed
        tenant = self.store.get(message.tenant_id)
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
        progress = Progress(probe=gate.verdict is Verdict.PROBE)
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
            started = await self._wait_for_limits(
                delivery, shard, message, tenant, attempt, headers
            )
            if started is None:
                return  # parked in a delay queue
            paused = None if progress.probe else self.holds.holding(tenant)
            if paused is not None:  # the number was paused while this message waited
                self._window.done(tenant.phone_number_id, started, time.monotonic())
                decision = number_blocked(self.policy, attempt, self.clock(), paused)
                await self.settler.settle(delivery, shard, message, decision, attempt, headers)
                return
            sent_at = self.clock()
            try:
                try:
                    async with self.inflight:  # journalled once a request slot is free
                        if orphaned(delivery) or not await self.recovery.sent(delivery, shard, key):
                            # The broker connection or channel is gone, so RabbitMQ has
                            # requeued this delivery and another process may be sending it
                            # already: sending it here too would be a duplicate at Meta, and
                            # its ack could not be sent anyway.
                            self.metrics.retried.labels(self.pool, "requeued").inc()
                            return
                        # it counts in the number's window from now, when it really leaves
                        started = self._window.depart(
                            tenant.phone_number_id, started, time.monotonic()
                        )
                        progress.outcome = None  # from here on, Meta may have it
                        response = await self._post(message, tenant)
                finally:  # the request counts in the number's window until a second after
                    self._window.done(tenant.phone_number_id, started, time.monotonic())
            except GraphApiError as exc:
                progress.outcome = NOT_SENT  # Meta refused it
                error = _describe_error(exc)
                decision = self._decide(attempt, exc.code, exc.subcode, maybe_sent=False)
                kind = exc.classification.error_class
                if kind is ErrorClass.TENANT_BLOCKED:
                    await self.holds.blocked(tenant, exc)
                elif kind is ErrorClass.CREDENTIAL:
                    await self.holds.refused(tenant, exc)
                if kind is ErrorClass.CREDENTIAL and not rotated_once:
                    rotated_once = True
                    fresh = await self._fresh_token(tenant)
                    if fresh is not None:
                        tenant = fresh  # a rotated token is already mounted: use it now
                        continue
            except GraphUnavailable as exc:
                progress.outcome = None if exc.maybe_sent else NOT_SENT
                error = str(exc)
                if exc.maybe_sent:
                    self.metrics.possible_duplicates.labels(self.pool).inc()
                decision = self._decide(attempt, None, None, maybe_sent=exc.maybe_sent)
            else:
                answer = answer_of(response)
                progress.outcome = Known(
                    accepted=True, wamid=answer.wamid, attempt=attempt, answer=answer
                )
                self.holds.accepted(tenant, sent_at, probe=progress.probe)
                await self.settler.accepted(
                    delivery,
                    shard,
                    message,
                    attempt,
                    answer.wamid,
                    possible_duplicate=possible_duplicate,
                    answer=answer,
                )
                return
            if decision.action is Action.THROTTLE and decision.scope is not None:
                scope_key = _scope_key(decision.scope, tenant, message)
                self.limiter.pause(decision.scope, scope_key, self.clock() + decision.delay)
            attempt = next_attempt(attempt, decision, self.clock())
            if decision.action is Action.DEAD_LETTER:
                failure = Failure.from_decision(decision, detail=error)
                if possible_duplicate:
                    failure = dataclasses.replace(failure, possible_duplicate=True)
                await self.settler.dead_letter(delivery, shard, message, failure, attempt, headers)
                return
            self.settler.count(decision)
            if decision.action in (Action.RETRY, Action.THROTTLE) and (
                decision.delay <= self.inline_wait
            ):
                await asyncio.sleep(decision.delay)
                continue
            await self.settler.later(delivery, shard, attempt, headers, decision.delay)
            return

    async def _wait_for_limits(
        self,
        delivery: AbstractIncomingMessage,
        shard: int,
        message: OutboundMessage,
        tenant: TenantConfig,
        attempt: Attempt,
        headers: dict[str, Any],
    ) -> float | None:
        """Wait (in memory, up to `inline_wait` in all) until the number's and the pair's
        limits and any pause let this message go: the moment it was let go (monotonic), or
        None when it was parked instead.

        Messages of one number take their slots one at a time (a FIFO lock held only while
        waiting for a number slot): a slot is reserved when the previous one is due, never a
        prefetch-worth ahead, so a late wake-up (a busy event loop) shifts the following
        sends instead of bunching them into one window.
        """
        phone = tenant.phone_number_id
        waited = 0.0
        while True:
            self._lock_users[phone] = self._lock_users.get(phone, 0) + 1
            try:
                async with self._locks.setdefault(phone, asyncio.Lock()):
                    reservation = self.limiter.reserve(
                        phone,
                        message.to,
                        rate=float(tenant.messages_per_second),
                        waba_id=tenant.waba_id,
                        now=self.clock(),
                    )
                    if reservation.reserved and waited + reservation.delay <= self.inline_wait:
                        if reservation.delay > 0:
                            self.metrics.limiter_wait.labels(self.pool).observe(reservation.delay)
                            await asyncio.sleep(reservation.delay)
                        rate = tenant.messages_per_second
                        while True:  # the number's window of requests at Meta has room
                            started = time.monotonic()
                            wait = self._window.admit(phone, rate, started)
                            if wait <= 0:
                                return started
                            await asyncio.sleep(wait)
            finally:
                self._lock_users[phone] -= 1
                if not self._lock_users[phone]:
                    del self._lock_users[phone], self._locks[phone]
                    self._window.forget_idle(phone, time.monotonic())
            if waited + reservation.delay > self.inline_wait:
                if reservation.reserved:  # give the slot back: the message waits elsewhere
                    self.limiter.cancel(phone, message.to, reservation, now=self.clock())
                self.metrics.retried.labels(self.pool, "limit_wait").inc()
                await self.settler.later(delivery, shard, attempt, headers, reservation.delay)
                return None
            # a pause or the pair's limit: wait outside the number's queue, then ask again
            waited += reservation.delay
            self.metrics.limiter_wait.labels(self.pool).observe(reservation.delay)
            await asyncio.sleep(reservation.delay)

    def _decide(
        self, attempt: Attempt, code: int | None, subcode: int | None, *, maybe_sent: bool
    ) -> Decision:
        return after_error(
            self.policy,
            attempt,
            code=code,
            subcode=subcode,
            maybe_sent=maybe_sent,
            now=self.clock(),
            rand=random.random(),  # jitter, not security
        )

    async def _post(self, message: OutboundMessage, tenant: TenantConfig) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            graph = self.graphs[zlib.crc32(tenant.phone_number_id.encode()) % len(self.graphs)]
            proof = tenant.appsecret_proof
            return await graph.send_message(
                tenant.token.get_secret_value(),
                tenant.phone_number_id,
                message.payload,
                version=tenant.graph_api_version,
                proof=proof.get_secret_value() if proof is not None else None,
            )
        finally:
            self.metrics.send_seconds.labels(self.pool).observe(time.perf_counter() - started)

    async def _fresh_token(self, tenant: TenantConfig) -> TenantConfig | None:
        """Meta rejected the token: re-read the mounted config; a rotated one may be there."""
        await asyncio.to_thread(self.store.reload)
        fresh = self.store.get(tenant.tenant_id)
        if fresh is None or fresh.token_fingerprint == tenant.token_fingerprint:
            return None
        log.info("tenant %s: retrying with the token found on reload", tenant.tenant_id)
        return fresh


def _scope_key(scope: ThrottleScope, tenant: TenantConfig, message: OutboundMessage) -> str:
    if scope is ThrottleScope.APP:
        return ""
    if scope is ThrottleScope.WABA:
        return tenant.waba_id
    if scope is ThrottleScope.PAIR:
        return f"{tenant.phone_number_id}:{message.to}"
    return tenant.phone_number_id


def _describe_error(exc: GraphApiError) -> str:
    """Meta's own words (already scrubbed of tokens by the client)."""
    info = exc.info
    text = f"Meta error {info.code}" + (f"/{info.subcode}" if info.subcode is not None else "")
    text += f": {info.message}"
    if info.details:
        text += f" ({info.details})"
    return text[:1000]
