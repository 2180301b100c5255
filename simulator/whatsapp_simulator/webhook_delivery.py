"""Posting webhooks: an asyncio scheduler, bounded concurrency, retries with backoff.

`Dispatcher.schedule(delivery)` only queues (the send path never waits for a webhook). A
background task takes each delivery when it is due and POSTs it, at most `concurrency`
at once, to its app's callback URL:

    POST <callback_url>
    Content-Type: application/json
    X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>

200 is success; any other answer, a timeout or a connection error is retried after
`retry_delay` (webhook_plan.py) until the delivery is older than `max_age_seconds`
(https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/overview,
paraphrased: an answer other than 200, or a webhook that cannot be delivered, is retried with
decreasing frequency for up to 7 days).

Also the verification GET of a subscription (`verify`), as the App Dashboard sends it
(https://developers.facebook.com/docs/graph-api/webhooks/getting-started#verification-requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import secrets
import time
from collections.abc import Callable

import aiohttp

from whatsapp_simulator.webhook_model import Delivery, WebhookBook
from whatsapp_simulator.webhook_payloads import SIGNATURE_HEADER, signature
from whatsapp_simulator.webhook_plan import retry_delay

log = logging.getLogger(__name__)
USER_AGENT = "facebookexternalua"  # what Meta's webhook requests say they are: UNCONFIRMED
SecretOf = Callable[[str], tuple[str, str] | None]  # app id -> (callback URL, secret)


class Dispatcher:
    """Delivers `Delivery` records of the current `WebhookBook` (see the module docstring)."""

    def __init__(self, book: Callable[[], WebhookBook], app: SecretOf) -> None:
        self._book = book
        self._app = app
        self._heap: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._active = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._runner is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
            self._runner = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        for task in [*self._tasks, *([runner] if runner else [])]:
            task.cancel()
        await asyncio.gather(*self._tasks, *([runner] if runner else []), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def schedule(self, delivery: Delivery, delay: float) -> None:
        """Queue `delivery` for an attempt `delay` seconds from now. Never blocks."""
        due = time.monotonic() + max(0.0, delay)
        heapq.heappush(self._heap, (due, next(self._seq), delivery))
        self._wake.set()

    @property
    def queued(self) -> int:
        return len(self._heap) + self._active

    async def _run(self) -> None:
        while True:
            delivery = await self._next_due()
            if delivery.cancelled:
                continue
            while self._active >= self._book().config.concurrency:
                self._slot_freed.clear()
                await self._slot_freed.wait()
            self._active += 1
            task = asyncio.create_task(self._attempt(delivery))
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._active -= 1
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook attempt failed: %r", task.exception())

    async def _next_due(self) -> Delivery:
        while True:
            timeout: float | None = None
            if self._heap:
                due, _, delivery = self._heap[0]
                timeout = due - time.monotonic()
                if timeout <= 0:
                    heapq.heappop(self._heap)
                    return delivery
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _attempt(self, delivery: Delivery) -> None:
        book = self._book()
        target = self._app(delivery.app_id)
        now = time.time()
        if delivery.first_attempt_at is None:
            delivery.first_attempt_at = now
        delivery.last_attempt_at = now
        delivery.attempts += 1
        if target is None:
            code, error = None, "no callback URL"
        else:
            delivery.url = target[0]
            code, error = await self._post(delivery, *target, book.config.timeout_seconds)
        book.record_attempt(delivery, code, error)
        if delivery.cancelled:
            return
        if code == 200:
            book.finish(delivery, delivered=True)
            return
        delay = retry_delay(book.config, delivery.attempts, now - delivery.first_attempt_at)
        if delay is None:
            book.finish(delivery, delivered=False)
            log.info("webhook %s to app %s given up after %s attempts",
                     delivery.id, delivery.app_id, delivery.attempts)  # fmt: skip
            return
        self.schedule(delivery, delay)

    async def _post(
        self, delivery: Delivery, url: str, secret: str, seconds: float
    ) -> tuple[int | None, str]:
        assert self._session is not None, "the dispatcher is not started"
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(secret, delivery.body),
        }
        try:
            async with self._session.post(
                url,
                data=delivery.body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=seconds),
                allow_redirects=False,
            ) as response:
                await response.read()
                return response.status, ""
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            return None, type(exc).__name__

    async def verify(self, url: str, verify_token: str, seconds: float) -> tuple[bool, str]:
        """Meta's verification request: GET `url?hub.mode=subscribe&hub.challenge=<int>&
        hub.verify_token=<token>`; verified only when answered 200 with exactly the challenge.
        The second item says why not (never the token)."""
        session = self._session
        if session is None:
            raise RuntimeError("the dispatcher is not started")
        challenge = str(secrets.randbelow(9 * 10**9) + 10**9)  # "an int you must pass back"
        query = {
            "hub.mode": "subscribe",
            "hub.challenge": challenge,
            "hub.verify_token": verify_token,
        }
        try:
            async with session.get(
                url, params=query, timeout=aiohttp.ClientTimeout(total=seconds)
            ) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            return False, f"verification request failed: {type(exc).__name__}"
        if status != 200:
            return False, f"verification answered HTTP {status}"
        if text != challenge:
            return False, "verification answer is not the challenge"
        return True, ""
