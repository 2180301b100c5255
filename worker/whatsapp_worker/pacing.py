"""Waiting, inside one process, until a message's number and pair limits let it go.

The decisions are pure (`limits.Limiter` for the pacing and the pauses, `send_window.SendWindow`
for the hard cap on requests reaching Meta per second); this module does the waiting: in
memory up to `inline_wait` in all, else the message is parked (by the caller, in a delay
queue) and its reservation given back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import NamedTuple

from whatsapp_contract.resolved import TenantConfig

from . import tracing
from .limits import Limiter, scope_key
from .messages import OutboundMessage
from .metrics import WorkerMetrics
from .policy import Action, Decision
from .send_window import SendWindow


class Paced(NamedTuple):
    """What `Pacer.wait` decided: the moment the message was let go (monotonic), or None when
    it is to be parked for `park_for` seconds instead."""

    started: float | None
    park_for: float = 0.0


class Pacer:
    """The per-number FIFO of one process, its limiter and its window of requests at Meta."""

    def __init__(
        self,
        *,
        pool: str,
        limiter: Limiter,
        metrics: WorkerMetrics,
        inline_wait: float,
        arrival_spread: float,
        clock: Callable[[], float],
    ) -> None:
        self.pool = pool
        self.limiter = limiter
        self.metrics = metrics
        self.inline_wait = inline_wait
        self.clock = clock
        self.window = SendWindow(arrival_spread)  # requests at Meta, per number
        self._locks: dict[str, asyncio.Lock] = {}  # per phone number, while anyone waits
        self._lock_users: dict[str, int] = {}

    async def wait(self, message: OutboundMessage, tenant: TenantConfig) -> Paced:
        """`_wait`, traced (tracing.py: the limiter wait)."""
        with tracing.limiter_wait(message, tenant) as span:
            paced = await self._wait(message, tenant)
            tracing.note(span, "whatsapp.parked", paced.started is None)
        return paced

    async def _wait(self, message: OutboundMessage, tenant: TenantConfig) -> Paced:
        """Wait (in memory, up to `inline_wait` in all) until the number's and the pair's
        limits and any pause let this message go.

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
                            wait = self.window.admit(phone, rate, started)
                            if wait <= 0:
                                return Paced(started)
                            await asyncio.sleep(wait)
            finally:
                self._lock_users[phone] -= 1
                if not self._lock_users[phone]:
                    del self._lock_users[phone], self._locks[phone]
                    self.window.forget_idle(phone, time.monotonic())
            if waited + reservation.delay > self.inline_wait:
                if reservation.reserved:  # give the slot back: the message waits elsewhere
                    self.limiter.cancel(phone, message.to, reservation, now=self.clock())
                self.metrics.retried.labels(self.pool, "limit_wait").inc()
                return Paced(None, reservation.delay)
            # a pause or the pair's limit: wait outside the number's queue, then ask again
            waited += reservation.delay
            self.metrics.limiter_wait.labels(self.pool).observe(reservation.delay)
            await asyncio.sleep(reservation.delay)

    def throttled(self, decision: Decision, tenant: TenantConfig, message: OutboundMessage) -> None:
        """After a failed send: pause the scope Meta throttled (app, WABA, number or pair),
        for the decision's delay."""
        if decision.action is Action.THROTTLE and decision.scope is not None:
            key = scope_key(
                decision.scope,
                phone_number_id=tenant.phone_number_id,
                waba_id=tenant.waba_id,
                recipient=message.to,
            )
            self.limiter.pause(decision.scope, key, self.clock() + decision.delay)
