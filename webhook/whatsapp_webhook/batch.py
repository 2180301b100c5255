"""Changes bound for one ingress shard, published together: one confirmed message per shard
per turn of the event loop, rather than one per change.

Every change a request hands in is queued for its shard queue and the request waits. A shard
has at most `max_in_flight` messages waiting for their confirms: below that, the changes queued
in a turn of the event loop go out at the next turn; at it, they wait for a confirm to come
back and then go out together (group commit: an idle receiver sends a change at once, a busy
one sends fewer, larger messages). Every request's changes share one AMQP message per shard
with the other requests' changes, and one publisher confirm. Each request is still answered
only once RabbitMQ confirmed the message that holds its changes, and 503 when it did not: a
batch confirmed or failed is so for each change in it, so Meta's promise is kept change by
change.

Why: per message, aiormq's publish (frames, a socket write, a confirm future) and the quorum
queue's work in RabbitMQ (a Raft log entry, a confirm) cost more than the HTTP request itself;
benchmarks/results/webhook.md measures the difference. The processor reads either shape
(`change.parse_changes`).

A batch holds at most `max_changes` changes and about `max_bytes` bytes (a larger change goes
alone): a redelivered batch is processed again as a whole, so it stays small enough to redo.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .change import batch_body

MAX_CHANGES = 256
MAX_BYTES = 1024 * 1024
MAX_IN_FLIGHT = 2  # unconfirmed messages per shard

# publish(routing key, body): returns once RabbitMQ confirmed, raises otherwise
Publish = Callable[[str, bytes], Awaitable[None]]
_Item = tuple[bytes, "asyncio.Future[None]"]


class ShuttingDown(Exception):
    """The batch's publish was cancelled: its requests are answered 503."""


class Batcher:
    def __init__(
        self,
        publish: Publish,
        *,
        max_changes: int = MAX_CHANGES,
        max_bytes: int = MAX_BYTES,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._publish = publish
        self.max_changes, self.max_bytes = max_changes, max_bytes
        self.max_in_flight = max_in_flight
        self._pending: dict[str, list[_Item]] = {}
        self._in_flight: dict[str, int] = {}  # routing key -> messages not confirmed yet
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # messages published (or tried)

    async def publish(self, routing_key: str, change: bytes) -> None:
        """Queue one serialised change for `routing_key`'s queue; returns when the message
        holding it was confirmed, raises what the publish raised otherwise."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.setdefault(routing_key, []).append((change, future))
        if self._in_flight.get(routing_key, 0) < self.max_in_flight:
            self._schedule(loop)
        await future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Send what waits for every shard below its in-flight limit (the others go when a
        confirm comes back)."""
        self._scheduled = False
        for routing_key in list(self._pending):
            room = self.max_in_flight - self._in_flight.get(routing_key, 0)
            if room <= 0:
                continue
            chunks = self._chunks(self._pending.pop(routing_key))
            if len(chunks) > room:  # the rest waits for a confirm, as a change does
                self._pending[routing_key] = [item for chunk in chunks[room:] for item in chunk]
            for chunk in chunks[:room]:
                self._in_flight[routing_key] = self._in_flight.get(routing_key, 0) + 1
                task = asyncio.create_task(self._send(routing_key, chunk))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _chunks(self, items: list[_Item]) -> list[list[_Item]]:
        chunks: list[list[_Item]] = []
        current: list[_Item] = []
        size = 0
        for item in items:
            if current and (
                len(current) >= self.max_changes or size + len(item[0]) > self.max_bytes
            ):
                chunks.append(current)
                current, size = [], 0
            current.append(item)
            size += len(item[0])
        if current:
            chunks.append(current)
        return chunks

    async def _send(self, routing_key: str, chunk: list[_Item]) -> None:
        self.batches += 1
        error: BaseException | None = None
        try:
            await self._publish(routing_key, batch_body([change for change, _ in chunk]))
        except asyncio.CancelledError:  # shutting down: the requests get 503
            error = ShuttingDown("the receiver stopped before RabbitMQ confirmed")
            raise
        except Exception as exc:  # PublishFailed, or anything a test double raises
            error = exc
        finally:
            self._in_flight[routing_key] -= 1
            if self._pending.get(routing_key):
                self._schedule(asyncio.get_running_loop())
            for _, future in chunk:
                if future.done():  # its request was cancelled meanwhile
                    continue
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

    async def drain(self) -> None:
        """Wait for the publishes in flight (shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
