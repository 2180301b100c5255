"""Tenant signals from the sender workers (`whatsapp_contract.signals`): the operator's consumer.

A worker that Meta refuses (`credential_rejected`) or blocks (`sending_blocked`) publishes a
signal to the topic exchange `whatsapp.signals`. `SignalListener` (aio-pika; with
`--amqp-url` and `--workers-namespace`, like the heartbeat listener of convergence.py) reads
them through an exclusive, auto-delete queue bound with '#', and hands each to
`SignalRouter`, which files it in the registry for the tenant's next pass and wakes the
tenant: at once for the first signal, then at most once per `WINDOW` seconds for the same
tenant and the same thing (a block; a refused token, by its fingerprint), so a storm of
signals makes one pass and at most one Graph check, not one per message, and a signal about a
token replaced since does not hold back one about the current token. The pass
decides what the signal means (blocking.py): a live check while the refused token is still
the tenant's, the SendingBlocked condition for a block.

A replica paused by kopf's peering runs no passes: its router drops the signals (the active
replica's own queue receives every signal too). Signals hold no token, only its fingerprint;
a signal that cannot be read is dropped with a log line that shows none of its content.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

from whatsapp_contract.signals import EXCHANGE, TenantSignal, parse_signal
from whatsapp_graph.errors import TENANT_BLOCKED_CODES
from whatsapp_operator.pools.consumer import RECONNECT_CAP, Consumer
from whatsapp_operator.runtime import metrics
from whatsapp_operator.runtime.logs import REDACTOR
from whatsapp_operator.runtime.registry import Registry, TenantKey

log = logging.getLogger(__name__)

WINDOW = 5.0  # seconds: at most one signal-driven pass per tenant in this long
MALFORMED_LOG_EVERY = 10.0  # seconds: one log line for a run of unreadable signals
Outcome = Literal["woken", "coalesced", "paused", "unknown_tenant", "unrelated_code"]


class Timer(Protocol):
    def cancel(self) -> None: ...


Later = Callable[[float, Callable[[], None]], Timer]


def _call_later(delay: float, callback: Callable[[], None]) -> Timer:
    return asyncio.get_running_loop().call_later(delay, callback)


Window = tuple[TenantKey, str]  # the tenant, and what about: "blocked" or a token fingerprint


class SignalRouter:
    """Signals -> the registry's inbox of each tenant, and wakes, coalesced per window."""

    def __init__(
        self,
        registry: Registry,
        *,
        paused: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.monotonic,
        later: Later = _call_later,
        window: float = WINDOW,
    ) -> None:
        self.registry = registry
        self.window = window
        self._paused = paused
        self._clock = clock
        self._later = later
        self._woken: dict[Window, float] = {}  # when such a signal last woke the tenant
        self._armed: dict[Window, Timer] = {}  # a wake due at the end of its window
        self._next_prune = 0.0

    def route(self, signal: TenantSignal) -> Outcome:
        outcome = self._route(signal)
        metrics.SIGNALS.labels(signal.kind, outcome).inc()
        if outcome == "woken":
            log.info(
                "tenant %s: %s (Meta error %d) from worker %s: looking again", signal.tenant_id,
                signal.kind, signal.code, signal.worker,
            )  # fmt: skip
        else:
            log.debug("tenant %s: %s ignored: %s", signal.tenant_id, signal.kind, outcome)
        return outcome

    def _route(self, signal: TenantSignal) -> Outcome:
        if self._paused():
            return "paused"
        if signal.kind == "sending_blocked" and signal.code not in TENANT_BLOCKED_CODES:
            return "unrelated_code"
        key = self.registry.key_of(signal.tenant_id)
        if key is None:
            return "unknown_tenant"
        # Meta's words go into status and Events: a token in them (a worker's bug) goes no further
        self.registry.post_signal(
            key, dataclasses.replace(signal, detail=REDACTOR.scrub(signal.detail))
        )
        about = "blocked" if signal.kind == "sending_blocked" else signal.token_fingerprint
        window = (key, about)
        if window in self._armed:
            return "coalesced"  # the wake at the end of the window takes this one too
        now = self._clock()
        last = self._woken.get(window)
        if last is not None and now - last < self.window:
            fire = functools.partial(self._fire, window)
            self._armed[window] = self._later(last + self.window - now, fire)
            return "coalesced"
        self._wake(window, now)
        return "woken"

    def _fire(self, window: Window) -> None:
        self._armed.pop(window, None)
        self._wake(window, self._clock())

    def _wake(self, window: Window, now: float) -> None:
        self._woken[window] = now
        if now >= self._next_prune:  # forget windows that ended: at most once per window
            self._woken = {w: t for w, t in self._woken.items() if now - t < self.window}
            self._next_prune = now + self.window
        self.registry.wake(window[0], "signal")

    def close(self) -> None:
        for timer in self._armed.values():
            timer.cancel()
        self._armed.clear()


class SignalListener(Consumer):
    """The AMQP side: consume `whatsapp.signals` through an exclusive queue of this replica's,
    reconnecting with backoff (pools/consumer.py)."""

    label = "tenant signals"
    source = EXCHANGE
    no_ack = True  # a lost signal is sent again by the next refused send

    def __init__(
        self,
        amqp_url: str,
        on_signal: Callable[[TenantSignal], object],
        *,
        clock: Callable[[], float] = time.monotonic,
        reconnect_cap: float = RECONNECT_CAP,
    ) -> None:
        super().__init__(amqp_url, reconnect_cap=reconnect_cap)
        self.on_signal = on_signal
        self._clock = clock
        self._malformed = 0  # dropped since the last log line
        self._malformed_logged = -MALFORMED_LOG_EVERY

    def receive(self, body: bytes) -> TenantSignal | None:
        """One message from the queue: the signal handed on, or None (dropped, logged)."""
        signal = parse_signal(body)
        if signal is None:
            self._drop(len(body))
            return None
        self.on_signal(signal)
        return signal

    def _drop(self, size: int) -> None:
        metrics.SIGNALS.labels("unreadable", "malformed").inc()
        self._malformed += 1
        now = self._clock()
        if now - self._malformed_logged >= MALFORMED_LOG_EVERY:
            log.warning(
                "dropped %d malformed tenant signal(s) on %s (the last %d bytes); "
                "a worker publishes something else than whatsapp_contract.signals",
                self._malformed, EXCHANGE, size,
            )  # fmt: skip
            self._malformed, self._malformed_logged = 0, now

    async def declare(self, channel: Any, aio_pika: Any) -> Any:
        exchange = await channel.declare_exchange(
            EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="#")
        return queue

    async def handle(self, message: Any) -> None:
        self.receive(message.body)
