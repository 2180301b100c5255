"""The reconcile histograms the scheduler feeds (scheduler.py, metrics.py): a pass's duration
(also when it raised, not when it was cancelled) and its wait from falling due to starting."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from whatsapp_operator.runtime.scheduler import Scheduler

DURATION = "whatsapp_operator_reconcile_duration_seconds"
WAIT = "whatsapp_operator_reconcile_queue_wait_seconds"


def reading(name: str) -> tuple[float, float]:
    """(count, sum) of a histogram of the process-wide registry."""
    count = REGISTRY.get_sample_value(f"{name}_count") or 0.0
    total = REGISTRY.get_sample_value(f"{name}_sum") or 0.0
    return count, total


class Held:
    """A pass held until its gate opens; it raises if told to."""

    def __init__(self, fail: bool = False) -> None:
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.fail = fail

    def observe(self, body: object) -> None:
        pass

    async def step(self) -> float:
        self.started.set()
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("boom")
        return 3600.0


async def test_a_pass_waiting_for_a_free_place_is_measured_and_so_is_the_pass() -> None:
    scheduler = Scheduler(limit=1)
    loop = asyncio.create_task(scheduler.run())
    first, second = Held(), Held(fail=True)
    try:
        scheduler.add(("ns", "first"), first)
        await asyncio.wait_for(first.started.wait(), 2)
        waits, waited = reading(WAIT)
        passes, passed = reading(DURATION)
        scheduler.add(("ns", "second"), second)  # due now, but the only place is taken
        await asyncio.sleep(0.3)
        first.gate.set()
        await asyncio.wait_for(second.started.wait(), 2)
        assert reading(WAIT)[0] == waits + 1
        assert reading(WAIT)[1] - waited >= 0.25  # the second waited for the first's end
        assert reading(DURATION)[0] == passes + 1
        assert reading(DURATION)[1] - passed >= 0.25  # the first pass lasted ~0.3 s
        second.gate.set()  # a pass that raises is a pass too
        await asyncio.sleep(0.05)
        assert reading(DURATION)[0] == passes + 2
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


async def test_a_cancelled_pass_is_not_a_pass() -> None:
    scheduler = Scheduler(limit=1)
    loop = asyncio.create_task(scheduler.run())
    held = Held()
    try:
        scheduler.add(("ns", "gone"), held)
        await asyncio.wait_for(held.started.wait(), 2)
        passes = reading(DURATION)[0]
        task = scheduler.remove(("ns", "gone"))
        assert task is not None
        await asyncio.gather(task, return_exceptions=True)
        assert reading(DURATION)[0] == passes
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


async def test_the_wait_is_read_on_the_schedulers_clock() -> None:
    now = [1000.0]
    scheduler = Scheduler(limit=1, clock=lambda: now[0])
    loop = asyncio.create_task(scheduler.run())
    held = Held()
    try:
        waits, waited = reading(WAIT)
        scheduler.schedule(scheduler.add(("ns", "late"), held), 0.0)
        now[0] += 42.0  # the loop looks at its heap 42 s (of this clock) after the due time
        await asyncio.wait_for(held.started.wait(), 2)
        assert reading(WAIT) == (waits + 1, waited + 42.0)
    finally:
        held.gate.set()
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
