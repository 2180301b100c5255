"""What the worker learns from the receiver (`whatsapp-webhook`): its pool's delivery statuses
(`statuses.py`: an uncertain send is settled from its status instead of being sent again) and
its customers' service windows (`windows.py`). Thin I/O: two `StreamTail`s per broker session,
started the first time a tenant whose webhooks reach the receiver (`webhook_app_id`) needs
them; the books they fill are kept across sessions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

from aio_pika.abc import AbstractConnection

from whatsapp_contract.resolved import TenantConfig
from whatsapp_contract.webhook import (
    RESULTS_EXCHANGE,
    SERVICE_WINDOW_SECONDS,
    STATUSES,
    WINDOWS_EXCHANGE,
    parse_window_record,
    status_stream,
    window_stream,
)

from .delivery import Failure
from .messages import OutboundMessage
from .metrics import WorkerMetrics
from .statuses import (
    Resolution,
    Seen,
    StatusBook,
    at_deadline,
    on_return,
    parse_status_event,
    resolve,
    watched,
)
from .stream_tail import StreamTail
from .windows import Window, WindowBook, WindowCheck, outside, window_verdict

log = logging.getLogger(__name__)

RECHECK_TIMEOUT: Final = 3.0  # a refusal first reads the windows stream up to now
TICK: Final = 0.25  # a wait for a status looks at its number's progress this often
OUTCOMES: Final = {
    Resolution.ACCEPTED: "found",
    Resolution.RESEND: "past",
    Resolution.QUIET: "quiet",
    Resolution.LAGGING: "lagging",
    Resolution.AS_BEFORE: "unknown",
}


class Webhooks:
    def __init__(
        self,
        *,
        pool: str,
        metrics: WorkerMetrics,
        status_wait: float,
        status_lookback: float,
        window_check: WindowCheck,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pool = pool
        self.metrics = metrics
        self.status_wait = status_wait
        self.status_lookback = status_lookback
        self.window_check: WindowCheck = window_check
        self.clock = clock
        self.statuses = StatusBook()
        self.windows = WindowBook(clock)
        self._connection: AbstractConnection | None = None
        self._tails: dict[str, StreamTail] = {}
        self._broken: set[str] = set()  # streams that could not be read this session
        self._starting: set[asyncio.Task[None]] = set()

    # -- the session ---------------------------------------------------------------------

    def attach(self, connection: AbstractConnection) -> None:
        """A new broker session: its streams start when first needed (or now, `ensure`)."""
        self._connection = connection
        self._tails = {}
        self._broken = set()

    async def detach(self) -> None:
        for task in list(self._starting):
            task.cancel()
        for tail in self._tails.values():
            await tail.close()
        self._tails = {}
        self._connection = None
        for stream in ("statuses", "windows"):
            self.metrics.streams_caught_up.labels(self.pool, stream).set(0)

    def ensure(self) -> None:
        """Start reading the streams this process needs, once per session."""
        if self._connection is None:
            return
        if self.status_wait > 0 and "statuses" not in self._tails:
            self._start("statuses", self._status_tail(self._connection))
        if self.window_check == "auto" and "windows" not in self._tails:
            self._start("windows", self._window_tail(self._connection))

    def _status_tail(self, connection: AbstractConnection) -> StreamTail:
        keys = [(RESULTS_EXCHANGE, f"{self.pool}.{status}") for status in sorted(STATUSES)]
        return StreamTail(
            connection,
            status_stream(self.pool),
            keys,
            self._on_status,
            since=lambda: self.clock() - self.status_lookback,
            on_change=self._gauge("statuses"),
        )

    def _window_tail(self, connection: AbstractConnection) -> StreamTail:
        return StreamTail(
            connection,
            window_stream(self.pool),
            [(WINDOWS_EXCHANGE, self.pool)],
            self._on_window,
            since=lambda: self.clock() - SERVICE_WINDOW_SECONDS,
            on_change=self._gauge("windows"),
        )

    def _gauge(self, stream: str) -> Callable[[bool], None]:
        gauge = self.metrics.streams_caught_up.labels(self.pool, stream)
        return lambda caught_up: gauge.set(1 if caught_up else 0)

    def _start(self, stream: str, tail: StreamTail) -> None:
        self._tails[stream] = tail

        async def run() -> None:
            try:
                await tail.start()
            except Exception as exc:  # no streams, a broker problem: as without a receiver
                log.warning("the %s stream cannot be read: %s", stream, exc)
                self._broken.add(stream)

        task = asyncio.create_task(run(), name=f"webhooks-{stream}")
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    def _on_status(self, body: bytes) -> None:
        parsed = parse_status_event(body, self.pool)
        if parsed is not None:
            self.statuses.add(parsed)

    def _on_window(self, body: bytes) -> None:
        record = parse_window_record(body)
        if record is not None:
            self.windows.record(*record)

    def _caught_up(self, stream: str) -> bool:
        tail = self._tails.get(stream)
        return tail is not None and tail.caught_up.is_set()

    # -- uncertain sends -----------------------------------------------------------------

    def watching(self, tenant: TenantConfig | None, message_id: str | None) -> bool:
        app = tenant.webhook_app_id if tenant is not None else None
        if not watched(webhook_app_id=app, message_id=message_id, status_wait=self.status_wait):
            return False
        self.ensure()
        return "statuses" in self._tails and "statuses" not in self._broken

    async def resolve(
        self, message_id: str, phone_number_id: str, case: str
    ) -> tuple[Resolution, Seen | None]:
        """Wait up to `status_wait` for what the statuses say of the message (`statuses.py`)."""
        since = self.clock()
        deadline = time.monotonic() + self.status_wait
        book = self.statuses
        while True:
            seen = book.get(phone_number_id, message_id)
            caught_up = self._caught_up("statuses")
            latest = book.latest(phone_number_id)
            resolution = resolve(seen, caught_up=caught_up, latest=latest, since=since)
            left = deadline - time.monotonic()
            if resolution is None and left <= 0:
                resolution = at_deadline(caught_up=caught_up, latest=latest, idle=book.idle(),
                                         unheard=book.unheard(), since=since)  # fmt: skip
            if resolution is not None:
                break
            await book.wait(phone_number_id, message_id, min(left, TICK))
        self._count(case, resolution)
        return resolution, seen

    def look(
        self, message_id: str, phone_number_id: str, case: str, since: float
    ) -> tuple[Resolution, Seen | None]:
        """A copy parked while the webhooks lagged is back (`statuses.on_return`)."""
        book = self.statuses
        seen = book.get(phone_number_id, message_id)
        resolution = on_return(
            seen,
            caught_up=self._caught_up("statuses"),
            latest=book.latest(phone_number_id),
            idle=book.idle(),
            unheard=book.unheard(),
            since=since,
            now=self.clock(),
            patience=self.status_lookback,
        )
        self._count(case, resolution)
        return resolution, seen

    def _count(self, case: str, resolution: Resolution) -> None:
        outcome = OUTCOMES[resolution]
        self.metrics.status_waits.labels(self.pool, case, outcome).inc()

    # -- the service window --------------------------------------------------------------

    async def window(self, message: OutboundMessage, tenant: TenantConfig) -> Failure | None:
        """The dead letter of a free-form message outside the window, or None to send it."""
        if not tenant.webhook_app_id or self.window_check == "off":
            return None  # not checked (and no lookup: this runs for every message)
        self.ensure()
        verdict = self._window(message, tenant)
        if verdict is Window.OUTSIDE:  # the customer may have written a moment ago: look again
            tail = self._tails.get("windows")
            if tail is not None and await tail.sync(RECHECK_TIMEOUT):
                verdict = self._window(message, tenant)
        if verdict is not Window.OUTSIDE:
            return None
        last = self.windows.last(message.phone_number_id, message.to)
        return outside(message.type, last, self.clock())

    def _window(self, message: OutboundMessage, tenant: TenantConfig) -> Window:
        return window_verdict(
            check=self.window_check,
            webhook_app_id=tenant.webhook_app_id,
            message_type=message.type,
            caught_up=self._caught_up("windows"),
            last_message=self.windows.last(message.phone_number_id, message.to),
            now=self.clock(),
        )

    def accepted(self, message: OutboundMessage, tenant: TenantConfig, wa_id: str | None) -> None:
        """Meta accepted a send: its statuses are due (when the receiver serves the tenant);
        remember the customer's WhatsApp id if it differs from the number."""
        if tenant.webhook_app_id:
            self.statuses.sent()
        self.windows.alias(message.to, wa_id)
