"""The operator's AMQP consumers' common part (aio-pika): connect, declare, consume, reconnect.

`Consumer.run` consumes for ever (cancel to stop): it connects, watches the connection and its
channel for a close, has the subclass declare its queue (`declare`) and hands each message to
the subclass (`handle`), until the connection or the channel is lost, then reconnects with
backoff (reset once a connection was up). With a `paused` toggle set (kopf's peering), it does
not connect while paused and cancels its consumer when a pause comes, so that the broker hands
the queue's messages to the active replica. Used by the workers' tenant signals
(pools/signals.py) and Meta's notices (pools/notices.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from whatsapp_operator.model.recheck import backoff

log = logging.getLogger(__name__)

RECONNECT_CAP = 30.0  # seconds: the longest wait between two connection attempts


class PauseState(Protocol):
    """kopf's `operator_paused` toggle set (runtime/toggles.paused_set)."""

    def is_on(self) -> bool: ...

    async def wait_for(self, __state: bool) -> None: ...


class Consumer:
    """One queue consumed by this replica; subclasses give the queue and the handler."""

    label = "consumer"  # for the log lines: "<label> unavailable: ..."
    source = ""  # what it consumes, for the log line
    no_ack = False  # True: the broker forgets each message once delivered (no ack needed)

    def __init__(
        self,
        amqp_url: str,
        *,
        paused: PauseState | None = None,
        reconnect_cap: float = RECONNECT_CAP,
        prefetch: int | None = None,
    ) -> None:
        self.amqp_url = amqp_url
        self.reconnect_cap = reconnect_cap
        self.prefetch = prefetch
        self.connected = asyncio.Event()  # set while consuming (tests wait for it)
        self._paused = paused

    async def declare(self, channel: Any, aio_pika: Any) -> Any:
        """Declare (and bind) the queue on `channel`; return it."""
        raise NotImplementedError

    async def handle(self, message: Any) -> None:
        """One delivered message (acknowledging it, unless `no_ack`, is the subclass's job)."""
        raise NotImplementedError

    def lost(self) -> None:
        """The connection is gone: the broker hands its unacknowledged messages out again."""

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
                log.warning("%s unavailable: %s", self.label, type(exc).__name__)
            finally:
                self.connected.clear()
            failures += 1
            await asyncio.sleep(backoff(failures, base=1.0, cap=self.reconnect_cap))

    async def _consume(self) -> None:
        """Until the connection or the channel closes, or peering pauses this replica."""
        import aio_pika  # only operators given an AMQP URL need the client

        connection = await aio_pika.connect(self.amqp_url)
        try:
            async with connection:
                lost = asyncio.Event()
                connection.close_callbacks.add(lambda *_: lost.set())
                channel = await connection.channel()
                channel.close_callbacks.add(lambda *_: lost.set())
                if self.prefetch is not None:
                    await channel.set_qos(prefetch_count=self.prefetch)
                queue = await self.declare(channel, aio_pika)

                async def on_message(message: Any) -> None:
                    try:
                        await self.handle(message)
                    except Exception:  # one bad message must not stop the consumer
                        log.exception("%s: message not handled", self.label)

                if self.no_ack:
                    tag = await queue.consume(on_message, no_ack=True)
                else:
                    tag = await queue.consume(on_message)
                log.info("%s: consuming %s", self.label, self.source)
                self.connected.set()
                await self._until_lost_or_paused(lost)
                if not lost.is_set():
                    await queue.cancel(tag)  # the broker hands the rest to the active replica
                    log.info("%s: paused by peering, consumer cancelled", self.label)
                    return
            log.warning("%s: connection to RabbitMQ lost", self.label)
        finally:
            self.lost()

    async def _until_lost_or_paused(self, lost: asyncio.Event) -> None:
        waits: list[asyncio.Task[Any]] = [asyncio.create_task(lost.wait())]
        if self._paused is not None:
            waits.append(asyncio.create_task(self._paused.wait_for(True)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
