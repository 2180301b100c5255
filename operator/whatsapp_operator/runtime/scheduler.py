"""When each tenant's reconcile pass runs: one heap of due times for all tenants, and a task
only for a pass that is running.

Each tenant used to have its own kopf daemon: a task that slept between passes, with kopf's
machinery around it (its stopper, its kwargs, its logger, its frames), about 36 KB per tenant
while it slept (`benchmarks/results/scale.md`). Here a sleeping tenant is one `Slot` and a heap
entry. The guarantees the daemons gave are kept:

- one pass at a time per tenant: a wake during a pass runs the tenant again right after it;
- a pass due now starts now, unless `limit` passes are already running (then the earliest due
  starts first as soon as one ends): a burst of tenants is worked through, not all at once;
- a tenant removed (deleted, or the operator paused by peering) has its running pass
  cancelled, and `remove` hands the task back so that the caller can wait for it to end;
- paused (kopf's peering found a replica of higher priority): no pass starts, the running
  ones are cancelled and every tenant is forgotten; kopf lists them all again on resuming;
- a pass runs in the context (contextvars) of the kopf handler that first handed a tenant
  over, as a daemon ran in its handler's: `kopf.event` finds kopf's event queue there.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Protocol

from whatsapp_operator.model.recheck import backoff
from whatsapp_operator.runtime import metrics
from whatsapp_operator.runtime.registry import Registry, TenantKey

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 500  # passes at once; most of a pass is waiting (Graph budget, publisher, SQL)


class Pass(Protocol):
    """One tenant's reconcile: run a pass, say in how many seconds the next is due; take
    the tenant's newer body from the watch."""

    async def step(self) -> float: ...

    def observe(self, body: Mapping[str, Any]) -> None: ...


class PauseState(Protocol):
    """kopf's `operator_paused` toggle set (see toggles.paused_set)."""

    def is_on(self) -> bool: ...

    async def wait_for(self, __state: bool) -> None: ...


class Slot:
    """A tenant as the scheduler knows it; also its wake target in the Registry."""

    __slots__ = ("_owner", "due", "failures", "key", "running", "seq", "tenant", "woken")

    def __init__(self, key: TenantKey, tenant: Pass, owner: Scheduler) -> None:
        self.key = key
        self.tenant = tenant
        self.due = 0.0
        self.seq = 0
        self.woken = False  # woken since its last pass started
        self.running: asyncio.Task[None] | None = None
        self.failures = 0  # passes in a row that raised
        self._owner = owner

    def set(self) -> None:
        """Wake: run a pass now (right after the running one, if one is running)."""
        self.woken = True
        if self.running is None and self._owner.slots.get(self.key) is self:
            self._owner.schedule(self, 0.0)

    def is_set(self) -> bool:
        return self.woken


class Scheduler:
    def __init__(
        self,
        limit: int = DEFAULT_LIMIT,
        *,
        clock: Callable[[], float] = time.monotonic,
        paused: PauseState | None = None,
        registry: Registry | None = None,
    ) -> None:
        """`registry`: where a known tenant's slot is its wake target (from `add` until
        `remove`)."""
        if limit < 1:
            raise ValueError(f"the limit of passes at once must be at least 1, not {limit}")
        self.limit = limit
        self.slots: dict[TenantKey, Slot] = {}
        self.running = 0
        self._clock = clock
        self._paused = paused
        self._registry = registry
        self._heap: list[tuple[float, int, TenantKey]] = []
        self._seq = itertools.count(1)
        self._changed = asyncio.Event()
        self._context: contextvars.Context | None = None

    def add(self, key: TenantKey, tenant: Pass) -> Slot:
        """Know this tenant (its first pass is due now); the slot it already had, if any."""
        if self._context is None:
            self._context = contextvars.copy_context()  # kopf's, in its handler
        slot = self.slots.get(key)
        if slot is None:
            slot = self.slots[key] = Slot(key, tenant, self)
            if self._registry is not None:
                self._registry.register(key, slot)
            self.schedule(slot, 0.0)
        return slot

    def remove(self, key: TenantKey) -> asyncio.Task[None] | None:
        """Forget this tenant; its running pass is cancelled and returned (await it to be sure
        it has ended)."""
        slot = self.slots.pop(key, None)
        if slot is None:
            return None
        if self._registry is not None:
            self._registry.unregister(key)
        task = slot.running
        if task is not None:
            task.cancel()
        return task

    def schedule(self, slot: Slot, seconds: float) -> None:
        """The slot's next pass is due in `seconds` (earlier entries of it are void)."""
        slot.due = self._clock() + max(0.0, seconds)
        slot.seq = next(self._seq)
        heapq.heappush(self._heap, (slot.due, slot.seq, slot.key))
        if len(self._heap) > 2 * len(self.slots) + 64:
            self._compact()
        if self._heap[0][1] == slot.seq:
            self._changed.set()  # the earliest due changed: the loop must look again

    def _compact(self) -> None:
        self._heap = [(s.due, s.seq, k) for k, s in self.slots.items() if s.running is None]
        heapq.heapify(self._heap)

    def _due(self) -> Iterator[Slot]:
        """Pop the slots due now, skipping entries made void by a later schedule."""
        now = self._clock()
        while self._heap and self._heap[0][0] <= now and self.running < self.limit:
            _, seq, key = heapq.heappop(self._heap)
            slot = self.slots.get(key)
            if slot is not None and slot.seq == seq and slot.running is None:
                yield slot

    def _start(self, slot: Slot) -> None:
        metrics.QUEUE_WAIT.observe(max(0.0, self._clock() - slot.due))
        slot.woken = False
        self.running += 1
        context = self._context.copy() if self._context is not None else None
        slot.running = asyncio.create_task(
            self._pass(slot), name=f"reconcile {slot.key}", context=context
        )

    async def _pass(self, slot: Slot) -> None:
        delay = 0.0
        started = time.perf_counter()
        try:
            delay = await slot.tenant.step()
            slot.failures = 0
            metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
        except asyncio.CancelledError:
            raise
        except Exception:
            metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
            slot.failures += 1
            delay = backoff(slot.failures)
            log.exception("tenant %s/%s: reconcile pass failed; again in %.0f s", *slot.key, delay)
        finally:
            slot.running = None
            self.running -= 1
            self._changed.set()  # a place is free
            if self.slots.get(slot.key) is slot:
                self.schedule(slot, 0.0 if slot.woken else delay)

    def stop_all(self) -> list[asyncio.Task[None]]:
        """Forget every tenant, cancelling the running passes (returned)."""
        return [t for key in list(self.slots) if (t := self.remove(key)) is not None]

    async def run(self) -> None:
        """Start passes as they fall due, for ever (cancel to stop: passes are cancelled)."""
        watching = None
        if self._paused is not None:
            watching = asyncio.create_task(self._watch_pause())
        try:
            while True:
                self._changed.clear()
                if not self._is_paused():
                    for slot in self._due():
                        self._start(slot)
                wait = None
                if self._heap and self.running < self.limit and not self._is_paused():
                    wait = max(0.0, self._heap[0][0] - self._clock())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._changed.wait()
        finally:
            if watching is not None:
                watching.cancel()
            stopping = self.stop_all()
            if stopping:
                await asyncio.wait(stopping, timeout=5.0)

    def _is_paused(self) -> bool:
        return self._paused is not None and self._paused.is_on()

    async def _watch_pause(self) -> None:
        assert self._paused is not None
        while True:
            await self._paused.wait_for(True)
            n = len(self.slots)
            self.stop_all()
            log.info("operator paused by peering: %d tenants' passes stopped", n)
            await self._paused.wait_for(False)
            self._changed.set()
            log.info("operator resumed: tenants are picked up as kopf lists them again")


async def wait_ended(task: Awaitable[None] | None, seconds: float = 5.0) -> None:
    """Wait (at most `seconds`) for a pass returned by `Scheduler.remove` to end."""
    if task is None:
        return
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        async with asyncio.timeout(seconds):
            await task
