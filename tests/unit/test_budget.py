"""The shared Graph API request budget (operator/whatsapp_operator/meta/budget.py)."""

from __future__ import annotations

import itertools

import pytest

from whatsapp_operator.meta.budget import RequestBudget


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeSleep:
    """Records the waits and moves the clock on, as a real sleep would."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.now += seconds


def budget(rate: float = 10.0, burst: int = 3) -> tuple[RequestBudget, FakeClock]:
    clock = FakeClock()
    return RequestBudget(rate, burst, clock=clock), clock


@pytest.mark.parametrize(
    ("rate", "burst", "expected"),
    [
        pytest.param(10.0, 3, [0, 0, 0, 0.1, 0.2, 0.3], id="burst of 3 at once, then 1/rate"),
        pytest.param(2.0, 1, [0, 0.5, 1.0, 1.5], id="no burst: evenly paced"),
        pytest.param(100.0, 5, [0, 0, 0, 0, 0, 0.01, 0.02], id="fast rate, burst of 5"),
    ],
)
def test_burst_then_paced(rate: float, burst: int, expected: list[float]) -> None:
    b, _ = budget(rate, burst)
    waits = [b.reserve() for _ in expected]
    assert waits == pytest.approx(expected)
    assert b.granted == len(expected)


def test_idle_time_refills_the_burst_but_no_more() -> None:
    b, clock = budget(rate=10.0, burst=3)
    for _ in range(6):
        b.reserve()
    clock.now += 60
    waits = [b.reserve() for _ in range(5)]
    assert waits == pytest.approx([0, 0, 0, 0.1, 0.2])


def test_requests_spread_over_time_never_wait() -> None:
    b, clock = budget(rate=10.0, burst=1)
    for _ in range(20):
        assert b.reserve() == pytest.approx(0)
        clock.now += 0.1


def test_app_pause_holds_everyone() -> None:
    b, clock = budget(rate=10.0, burst=3)
    b.pause(30.0)
    assert b.reserve() == pytest.approx(30.0)
    assert b.reserve("waba-1") == pytest.approx(30.0)
    clock.now += 30.0
    assert b.reserve() == pytest.approx(0.0)


def test_waba_pause_holds_that_waba() -> None:
    b, clock = budget(rate=10.0, burst=3)
    b.pause(300.0, waba="waba-1")
    assert b.reserve("waba-1") == pytest.approx(300.0)
    clock.now += 300.0
    assert b.reserve("waba-1") == pytest.approx(0.0)


def test_waba_pause_does_not_block_other_wabas() -> None:
    b, _ = budget(rate=10.0, burst=3)
    b.pause(300.0, waba="waba-1")
    assert b.reserve("waba-1") >= 300.0
    assert b.reserve("waba-2") == pytest.approx(0.0)
    assert b.reserve() == pytest.approx(0.0)
    assert b.reserve("waba-2") < 1.0


def test_pauses_only_extend() -> None:
    b, _ = budget()
    b.pause(60.0)
    b.pause(5.0)
    b.pause(120.0, waba="w")
    b.pause(10.0, waba="w")
    assert b.reserve() == pytest.approx(60.0)
    assert b.reserve("w") >= 120.0


@pytest.mark.parametrize(
    ("rate", "burst"),
    [
        pytest.param(0.0, 1, id="zero rate"),
        pytest.param(-1.0, 1, id="negative rate"),
        pytest.param(1.0, 0, id="zero burst"),
    ],
)
def test_invalid_settings(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate"):
        RequestBudget(rate, burst)


async def test_acquire_sleeps_the_reserved_wait() -> None:
    clock = FakeClock()
    sleep = FakeSleep(clock)
    b = RequestBudget(10.0, 2, clock=clock, sleep=sleep)
    for _ in range(2):
        await b.acquire()
    assert sum(sleep.waits) == pytest.approx(0.0)  # the burst goes at once
    start = clock.now
    for _ in range(3):
        await b.acquire()
    assert [w for w in sleep.waits if w > 1e-9] == pytest.approx([0.1, 0.1, 0.1])
    assert clock.now - start == pytest.approx(0.3)


async def test_acquire_waits_out_a_waba_pause_and_then_paces() -> None:
    clock = FakeClock()
    sleep = FakeSleep(clock)
    b = RequestBudget(10.0, 1, clock=clock, sleep=sleep)
    b.pause(60.0, waba="w")
    start = clock.now
    await b.acquire("other")
    assert clock.now == start  # another WABA goes at once
    for _ in range(3):
        await b.acquire("w")
    assert clock.now - start == pytest.approx(60.2)
    assert b.granted == 4


async def test_many_requests_for_a_paused_waba_do_not_burst_when_it_ends() -> None:
    clock = FakeClock()
    sleep = FakeSleep(clock)
    b = RequestBudget(10.0, 1, clock=clock, sleep=sleep)
    b.pause(5.0, waba="w")
    sent: list[float] = []
    for _ in range(20):
        await b.acquire("w")
        sent.append(clock.now)
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert sent[0] - 1000.0 >= 5.0
    assert min(gaps) == pytest.approx(0.1)


async def test_charge_goes_ahead_of_the_queue_and_the_next_caller_pays() -> None:
    """The signup's code exchange (its code lives ~30 s) never waits behind the queue or a
    pause; it is counted, and whoever comes next waits one slot more."""
    clock = FakeClock()
    sleep = FakeSleep(clock)
    b = RequestBudget(1.0, 1, clock=clock, sleep=sleep)
    for _ in range(5):
        b.reserve()  # a queue: the next acquire would wait 5 s
    b.pause(60.0)  # and Meta asked the app to slow down
    before = b.granted
    b.charge()  # no await: nothing to wait for
    assert b.granted == before + 1
    assert sleep.waits == []
    wait = b.reserve()
    assert wait == pytest.approx(60.0)  # the pause still holds everyone else
    clock.now += 100
    b.charge()
    assert b.reserve() == pytest.approx(1.0)  # one slot behind the charged request
