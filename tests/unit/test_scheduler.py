"""The scheduler of tenant passes (scheduler.py): when passes run, how many at once, what a
wake, a removal and kopf's peering pause do, and what a sleeping tenant costs."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import time
import tracemalloc
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from whatsapp_operator.runtime.registry import Registry
from whatsapp_operator.runtime.scheduler import Scheduler, Slot, wait_ended
from whatsapp_operator.runtime.toggles import CountingToggleSet


class Tenant:
    """A pass that records when it ran and how many of its passes overlapped."""

    def __init__(self, name: str, delays: list[float] | None = None) -> None:
        self.name = name
        self.delays = delays or [3600.0]
        self.started: list[float] = []
        self.ended = 0
        self.cancelled = 0
        self.inside = 0
        self.most_inside = 0
        self.gate: asyncio.Event | None = None  # set: the pass may end
        self.fail = 0  # passes left that raise
        self.body: Mapping[str, Any] = {}

    def observe(self, body: Mapping[str, Any]) -> None:
        self.body = body

    async def step(self) -> float:
        self.started.append(time.monotonic())
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0.01)
            if self.fail:
                self.fail -= 1
                raise RuntimeError("boom")
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.inside -= 1
        self.ended += 1
        return self.delays[min(len(self.started), len(self.delays)) - 1]


async def until(condition: Callable[[], bool], seconds: float = 2.0) -> None:
    """Poll what other tasks did (the scheduler has no event for each thing a test waits for)."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def running(scheduler: Scheduler) -> asyncio.Task[None]:
    task = asyncio.create_task(scheduler.run())
    await asyncio.sleep(0)
    return task


async def inside_a_pass(
    scheduler: Scheduler, tenant: Tenant | None = None
) -> tuple[asyncio.Task[None], Slot, Tenant]:
    """The scheduler running, with tenant ns/a in the middle of a pass (held at its gate)."""
    tenant = tenant or Tenant("a")
    tenant.gate = asyncio.Event()
    loop = await running(scheduler)
    slot = scheduler.add(("ns", "a"), tenant)
    await until(lambda: tenant.inside == 1)
    return loop, slot, tenant


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_new_tenant_runs_at_once_then_when_its_pass_says() -> None:
    scheduler = Scheduler(10)
    tenant = Tenant("a", delays=[0.2, 3600.0])
    loop = await running(scheduler)
    added = time.monotonic()
    scheduler.add(("ns", "a"), tenant)
    await until(lambda: len(tenant.started) == 2)
    first, second = tenant.started
    assert first - added < 0.1
    assert 0.2 <= second - first < 0.45  # 0.01 s pass + 0.2 s, not earlier
    await asyncio.sleep(0.3)
    assert len(tenant.started) == 2  # next due in an hour
    await stop(loop)


async def test_a_wake_runs_a_sleeping_tenant_now_and_a_running_one_right_after() -> None:
    loop, slot, tenant = await inside_a_pass(Scheduler(10))
    slot.set()
    slot.set()  # two wakes during a pass: one more pass, not two, and never two at once
    assert slot.is_set()
    assert tenant.gate is not None
    tenant.gate.set()
    await until(lambda: tenant.ended == 2)
    await asyncio.sleep(0.05)
    assert tenant.ended == 2
    assert tenant.most_inside == 1
    assert not slot.is_set()
    slot.set()  # asleep for an hour: woken, it runs now
    await until(lambda: tenant.ended == 3, 1.0)
    await stop(loop)


async def test_at_most_limit_passes_run_and_the_earliest_due_go_first() -> None:
    scheduler = Scheduler(2)
    tenants = [Tenant(str(i)) for i in range(5)]
    gate = asyncio.Event()
    for t in tenants:
        t.gate = gate
    loop = await running(scheduler)
    for i, t in enumerate(tenants):
        scheduler.add(("ns", str(i)), t)
        await asyncio.sleep(0.002)  # due one after the other
    await until(lambda: scheduler.running == 2)
    await asyncio.sleep(0.05)
    assert [len(t.started) for t in tenants] == [1, 1, 0, 0, 0]
    gate.set()
    await until(lambda: all(t.ended == 1 for t in tenants))
    order = sorted(range(5), key=lambda i: tenants[i].started[0])
    assert order == [0, 1, 2, 3, 4]
    await until(lambda: scheduler.running == 0)
    await stop(loop)


async def test_remove_cancels_the_running_pass_and_it_never_runs_again() -> None:
    registry = Registry()
    scheduler = Scheduler(10, registry=registry)
    loop, slot, tenant = await inside_a_pass(scheduler, Tenant("a", delays=[0.01]))
    assert registry.wakers[("ns", "a")] is slot  # its wake target while it is known
    task = scheduler.remove(("ns", "a"))
    assert task is not None
    await wait_ended(task)
    assert tenant.cancelled == 1
    assert ("ns", "a") not in registry.wakers  # wakes no longer reach it
    assert not registry.wake(("ns", "a"), "secret")
    await asyncio.sleep(0.1)
    assert len(tenant.started) == 1
    assert scheduler.remove(("ns", "a")) is None  # twice: nothing to do
    assert scheduler.running == 0
    await stop(loop)


async def test_a_pass_that_raises_is_retried_with_backoff_and_the_others_go_on() -> None:
    scheduler = Scheduler(10)
    failing, fine = Tenant("bad"), Tenant("good", delays=[0.05])
    failing.fail = 1
    loop = await running(scheduler)
    scheduler.add(("ns", "bad"), failing)
    scheduler.add(("ns", "good"), fine)
    await until(lambda: len(fine.started) >= 3)
    assert len(failing.started) == 1  # backoff of the first failure: 1-2 s
    slot = scheduler.slots[("ns", "bad")]
    assert slot.failures == 1
    assert 1.0 <= slot.due - failing.started[0] <= 2.1
    await stop(loop)


async def test_kopf_pausing_stops_every_pass_and_resuming_waits_for_the_new_listing() -> None:
    paused = CountingToggleSet(any)  # kopf's operator_paused, as toggles.install makes it
    peer = await paused.make_toggle(False, name="a peer of higher priority")
    registry = Registry()
    scheduler = Scheduler(10, paused=paused, registry=registry)
    loop, slot, tenant = await inside_a_pass(scheduler)
    assert registry.wakers[("ns", "a")] is slot  # its wake target while it is known

    await peer.turn_to(True)
    await until(lambda: tenant.cancelled == 1)
    assert scheduler.slots == {}
    assert registry.wakers == {}
    late = Tenant("late")  # an event that sneaked in while paused: kept, not run
    scheduler.add(("ns", "late"), late)
    await asyncio.sleep(0.1)
    assert late.started == []

    await peer.turn_to(False)
    await until(lambda: late.ended == 1)
    assert len(tenant.started) == 1  # forgotten: only kopf's new listing brings it back
    await stop(loop)


QUEUE: contextvars.ContextVar[str] = contextvars.ContextVar("queue")


async def test_passes_run_in_the_context_of_the_handler_that_handed_the_tenants_over() -> None:
    """kopf.event reads kopf's event queue from contextvars that kopf sets in its handlers'
    tasks only: a pass must see them, though it runs in a task of the scheduler."""
    scheduler = Scheduler(10)
    seen: list[str | None] = []

    class Reader(Tenant):
        async def step(self) -> float:
            seen.append(QUEUE.get(None))
            return 3600.0

    loop = await running(scheduler)  # started where the variable is not set, like startup

    async def handler() -> None:
        QUEUE.set("kopf's event queue")
        scheduler.add(("ns", "a"), Reader("a"))

    await asyncio.create_task(handler())
    scheduler.add(("ns", "b"), Reader("b"))  # later adds: the same context
    await until(lambda: len(seen) == 2)
    assert seen == ["kopf's event queue"] * 2
    await stop(loop)


async def test_stopping_the_scheduler_cancels_the_running_passes() -> None:
    scheduler = Scheduler(10)
    loop, _, tenant = await inside_a_pass(scheduler)
    await stop(loop)
    assert tenant.cancelled == 1
    assert scheduler.slots == {}


async def test_many_wakes_do_not_grow_the_heap() -> None:
    scheduler = Scheduler(10)
    slots = [scheduler.add(("ns", str(i)), Tenant(str(i))) for i in range(10)]
    for _ in range(1000):
        for slot in slots:
            scheduler.schedule(slot, 3600.0)
    assert len(scheduler._heap) <= 2 * len(slots) + 64


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Scheduler(0)


async def test_a_sleeping_tenant_costs_no_task_and_a_few_hundred_bytes() -> None:
    """The point of the scheduler: a kopf daemon per tenant cost about 36 KB while it slept
    (benchmarks/results/scale.md); here it is a slot and a heap entry."""
    n = 2000
    scheduler = Scheduler(500)
    tenants = [Tenant(str(i)) for i in range(n)]
    loop = await running(scheduler)
    tasks_before = len(asyncio.all_tasks())
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i, t in enumerate(tenants):
            scheduler.add(("ns", str(i)), t)
        await until(lambda: all(t.ended == 1 for t in tenants), 20.0)
        await until(lambda: scheduler.running == 0)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    per_tenant = sum(s.size_diff for s in after.compare_to(before, "filename")) / n
    assert len(asyncio.all_tasks()) == tasks_before  # none per sleeping tenant
    # the slot, its heap entry, its dict entry, and the key made here (tuple and str, ~120
    # bytes); the test's Tenant objects are older. Measured: 447.
    assert per_tenant < 600, f"{per_tenant:.0f} bytes per sleeping tenant"
    await stop(loop)
