"""Rate decisions for one worker process (worker/whatsapp_worker/limits.py), on a fake clock."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable

import pytest

from whatsapp_graph.errors import ThrottleScope
from whatsapp_worker.limits import Gcra, Limiter, PairLimit, Reservation
from whatsapp_worker.send_window import window_counts

PHONE = "1001"
WABA = "w1"


def drive(
    limiter: Limiter,
    seconds: float,
    rate: float,
    *,
    senders: int = 1,
    jitter: float = 0.0,
    start: float = 0.0,
) -> list[float]:
    """`senders` concurrent loops: reserve, sleep the delay (waking up to `jitter` late), send.

    Returns the sorted send times. Recipients rotate so the pair limit never decides.
    """
    rng = random.Random(7)
    end = start + seconds
    wakeups = [(start, k) for k in range(senders)]
    sent: list[float] = []
    i = 0
    while wakeups:
        now, k = heapq.heappop(wakeups)
        if now >= end:
            continue
        r = limiter.reserve(PHONE, f"r{i % 1000}", rate=rate, waba_id=WABA, now=now)
        i += 1
        assert r.reserved, r
        at = now + r.delay + rng.uniform(0.0, jitter)
        if at < end:
            sent.append(at)
        heapq.heappush(wakeups, (at, k))
    return sorted(sent)


# --- Gcra ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "burst", "now", "expected"),
    [
        (4.0, 1, 0.0, [0.0, 0.25, 0.5, 0.75, 1.0]),
        (2.0, 1, 10.0, [0.0, 0.5, 1.0, 1.5]),
        (4.0, 3, 0.0, [0.0, 0.0, 0.0, 0.25, 0.5, 0.75]),
        (0.5, 2, 0.0, [0.0, 0.0, 2.0, 4.0]),
    ],
    ids=["strict-4/s", "strict-from-t10", "burst3", "slow-burst2"],
)
def test_gcra_spacing_is_exact(rate: float, burst: int, now: float, expected: list[float]) -> None:
    g = Gcra(rate, burst)
    assert [g.reserve(now) for _ in expected] == expected


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        ([0.0, 0.1, 0.2], [0.0, 0.15, 0.3]),  # arrivals faster than the rate queue up
        ([0.0, 0.5, 1.7], [0.0, 0.0, 0.0]),  # arrivals slower than the rate never wait
        ([0.0, 0.25, 0.26], [0.0, 0.0, 0.24]),
    ],
    ids=["faster", "slower", "mixed"],
)
def test_gcra_delays_follow_arrivals(calls: list[float], expected: list[float]) -> None:
    g = Gcra(4.0)
    assert [g.reserve(t) for t in calls] == pytest.approx(expected)


def test_gcra_peek_does_not_reserve() -> None:
    g = Gcra(4.0)
    g.reserve(0.0)
    assert g.peek(0.0) == g.peek(0.0) == 0.25
    assert g.reserve(0.0) == 0.25
    assert g.peek(0.3) == pytest.approx(0.2)
    assert g.peek(5.0) == 0.0


@pytest.mark.parametrize(
    ("cancel_which", "given_back", "next_delay"),
    [("last", True, 0.25), ("earlier", False, 0.5), ("twice", False, 0.25)],
    ids=["last-slot", "earlier-slot-refused", "second-cancel-refused"],
)
def test_gcra_cancel(cancel_which: str, given_back: bool, next_delay: float) -> None:
    g = Gcra(4.0)
    first = 0.0 + g.reserve(0.0)
    last = 0.0 + g.reserve(0.0)
    if cancel_which == "twice":
        assert g.cancel(last)
    assert g.cancel(last if cancel_which != "earlier" else first) is given_back
    assert g.reserve(0.0) == next_delay


@pytest.mark.parametrize(
    ("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)], ids=["zero", "negative", "burst0"]
)
def test_gcra_rejects_bad_parameters(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        Gcra(rate, burst)


def test_gcra_rate_change_keeps_debt_without_burst() -> None:
    g = Gcra(80.0)
    for _ in range(3):
        g.reserve(0.0)  # slots 0, 1/80, 2/80; tat = 3/80
    g.set_rate(1000.0, 0.0)
    assert g.tat == pytest.approx(3 / 1000)  # 3 events of debt, now at 1 ms each
    assert g.reserve(0.0) == pytest.approx(0.003)
    assert g.reserve(0.0) == pytest.approx(0.004)  # still strictly spaced: no burst
    idle = Gcra(80.0)
    idle.reserve(0.0)
    idle.set_rate(1000.0, 5.0)
    assert idle.reserve(5.0) == 0.0
    assert idle.reserve(5.0) == pytest.approx(0.001)


# --- PairLimit ----------------------------------------------------------------------------


def test_pair_limit_burst_45_then_one_per_6_seconds() -> None:
    p = PairLimit()
    for _ in range(45):
        assert p.wait(0.0) == 0.0
        p.take(0.0)
    assert p.wait(0.0) == pytest.approx(6.0)
    assert p.wait(4.5) == pytest.approx(1.5)
    for k in range(1, 6):
        assert p.wait(6.0 * k) == pytest.approx(0.0, abs=1e-9)
        p.take(6.0 * k)
        assert p.wait(6.0 * k) == pytest.approx(6.0)
    assert not p.idle(30.0)
    assert p.idle(30.0 + 45 * 6.0)


def test_pair_limit_clock_going_back_adds_nothing() -> None:
    p = PairLimit(capacity=1, refill_seconds=6.0)
    p.take(10.0)
    assert p.wait(9.0) == pytest.approx(6.0)
    assert p.wait(13.0) == pytest.approx(3.0)


# --- Limiter: number rate -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "senders", "jitter"),
    [
        (80.0, 1, 0.0),
        (80.0, 8, 0.003),
        (20.0, 4, 0.003),
        (1000.0, 1, 0.0),
        (1000.0, 16, 0.0005),
    ],
    ids=["80", "80-8senders-jitter3ms", "20-jitter3ms", "1000", "1000-16senders-jitter0.5ms"],
)
def test_ten_seconds_stay_under_the_rate_and_reach_95_percent(
    rate: float, senders: int, jitter: float
) -> None:
    sent = drive(Limiter(), 10.0, rate, senders=senders, jitter=jitter)
    assert window_counts(sent) <= rate
    assert len(sent) / 10.0 >= 0.95 * rate


def test_concurrent_reservations_queue_at_the_spacing() -> None:
    limiter = Limiter()
    got = [limiter.reserve(PHONE, f"r{i}", rate=80, waba_id=WABA, now=0.0) for i in range(160)]
    slots = [r.slot for r in got if r.slot is not None]
    assert len(slots) == 160
    assert all(r.reason == ("none" if i == 0 else "number") for i, r in enumerate(got))
    assert slots == sorted(slots)
    assert slots[-1] == pytest.approx(159 / 77.6)
    assert window_counts(slots) <= 80


def test_numbers_are_independent() -> None:
    limiter = Limiter()
    a = limiter.reserve("a", "r", rate=80, waba_id=WABA, now=0.0)
    b = limiter.reserve("b", "r", rate=80, waba_id=WABA, now=0.0)
    assert a.delay == b.delay == 0.0


def test_rate_change_80_to_1000() -> None:
    limiter = Limiter()
    before = drive(limiter, 1.0, 80.0)
    after = drive(limiter, 1.0, 1000.0, start=1.0)
    assert window_counts(before) <= 80
    assert len(before) >= 76
    assert window_counts(before + after) <= 1000
    assert len(after) >= 950
    # No burst at the switch: every gap, the one across it included, is >= the new spacing.
    gaps = [b - a for a, b in itertools.pairwise(before[-1:] + after)]
    assert min(gaps) >= 1 / 970 - 1e-9
    assert max(gaps[1:]) == pytest.approx(1 / 970)
    back = drive(limiter, 1.0, 80.0, start=2.0)  # and down again
    assert window_counts(back) <= 80
    assert len(back) >= 76


@pytest.mark.parametrize(
    ("burst", "expected"), [(1, [0.0, 0.5, 1.0]), (3, [0.0, 0.0, 0.0])], ids=["strict", "burst3"]
)
def test_number_burst_is_configurable(burst: int, expected: list[float]) -> None:
    limiter = Limiter(headroom=1.0, number_burst=burst)
    delays = [
        limiter.reserve(PHONE, f"r{i}", rate=2.0, waba_id=WABA, now=0.0).delay for i in range(3)
    ]
    assert delays == expected


# --- Limiter: pair limit ------------------------------------------------------------------


def test_pair_burst_45_then_one_per_6_seconds() -> None:
    limiter = Limiter()
    sent: list[float] = []
    now = 0.0
    while now < 57.0:
        r = limiter.reserve(PHONE, "bob", rate=80, waba_id=WABA, now=now)
        if r.reserved:
            sent.append(now + r.delay)
        else:
            assert r.reason == "pair"
        now += r.delay
    assert sent[44] < 1.0  # the burst of 45 only waits for the number spacing
    # The bucket refills continuously from the first send: the 46th goes at 6 s, then 1 per 6 s.
    assert sent[45:] == pytest.approx([6.0 * k for k in range(1, 10)])
    assert window_counts(sent, 6.0) <= 46
    assert window_counts(sent[45:], 6.0) == 1


def test_pair_wait_does_not_consume_a_number_slot() -> None:
    limiter = Limiter(headroom=1.0, pair_burst=1)
    assert limiter.reserve(PHONE, "bob", rate=10, waba_id=WABA, now=0.0).reserved
    blocked = limiter.reserve(PHONE, "bob", rate=10, waba_id=WABA, now=0.2)
    assert (blocked.reason, blocked.reserved) == ("pair", False)
    assert blocked.delay == pytest.approx(5.8)
    other = limiter.reserve(PHONE, "alice", rate=10, waba_id=WABA, now=0.2)
    assert other == Reservation(0.0, "none", 0.2)


def test_pair_token_is_taken_only_with_a_number_slot() -> None:
    limiter = Limiter(headroom=1.0, pair_burst=2)
    limiter.pause(ThrottleScope.PHONE_NUMBER, PHONE, 5.0)
    for t in (0.0, 1.0, 2.0):
        assert limiter.reserve(PHONE, "bob", rate=1, waba_id=WABA, now=t).reason == "paused_number"
    got = [limiter.reserve(PHONE, "bob", rate=1, waba_id=WABA, now=5.0) for _ in range(3)]
    assert [(r.delay, r.reason) for r in got] == [(0.0, "none"), (1.0, "number"), (6.0, "pair")]


def test_pair_token_due_before_the_number_slot_is_reserved_ahead() -> None:
    limiter = Limiter(headroom=1.0, pair_burst=1)
    assert limiter.reserve(PHONE, "bob", rate=0.1, waba_id=WABA, now=0.0).slot == 0.0
    r = limiter.reserve(PHONE, "bob", rate=0.1, waba_id=WABA, now=1.0)  # pair due at 6, slot 10
    assert (r.delay, r.reason, r.slot) == (9.0, "number", 10.0)
    # At 10 the pair token is due at 12 but the number slot at 20: the number decides.
    r = limiter.reserve(PHONE, "bob", rate=0.1, waba_id=WABA, now=10.0)
    assert (r.delay, r.reason) == (10.0, "number")
    # The token taken at 10 for the slot at 20 is back by 16: at the next slot (30) nothing waits.
    assert limiter.reserve(PHONE, "bob", rate=0.1, waba_id=WABA, now=30.0).reason == "none"


def test_cancel_gives_back_number_slot_and_pair_token() -> None:
    limiter = Limiter(headroom=1.0, pair_burst=1)
    r = limiter.reserve(PHONE, "bob", rate=1, waba_id=WABA, now=0.0)
    assert limiter.cancel(PHONE, "bob", r, now=0.0)
    assert limiter.reserve(PHONE, "bob", rate=1, waba_id=WABA, now=0.0) == r
    assert not limiter.cancel(PHONE, "bob", Reservation(3.0, "pair"), now=0.0)


# --- Limiter: pauses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "key", "reason"),
    [
        (ThrottleScope.APP, "", "paused_app"),
        (ThrottleScope.WABA, WABA, "paused_waba"),
        (ThrottleScope.PHONE_NUMBER, PHONE, "paused_number"),
        (ThrottleScope.PAIR, f"{PHONE}:bob", "paused_pair"),
    ],
    ids=["app", "waba", "number", "pair"],
)
def test_pause_delays_without_consuming_number_slots(
    scope: ThrottleScope, key: str, reason: str
) -> None:
    limiter = Limiter(headroom=1.0)
    limiter.pause(scope, key, 10.0)
    for t in (0.0, 4.0, 9.5):
        r = limiter.reserve(PHONE, "bob", rate=1, waba_id=WABA, now=t)
        assert (r.delay, r.reason, r.reserved) == (10.0 - t, reason, False)
    assert limiter.paused_until(scope, key, 5.0) == 10.0
    # Nothing was reserved while paused: the first send after the pause goes at once.
    assert limiter.reserve(PHONE, "bob", rate=1, waba_id=WABA, now=10.0) == Reservation(
        0.0, "none", 10.0
    )
    assert limiter.paused_until(scope, key, 10.0) == 0.0


@pytest.mark.parametrize(
    ("scope", "key"),
    [
        (ThrottleScope.WABA, "other-waba"),
        (ThrottleScope.PHONE_NUMBER, "other-phone"),
        (ThrottleScope.PAIR, f"{PHONE}:alice"),
    ],
    ids=["other-waba", "other-number", "other-pair"],
)
def test_pause_elsewhere_does_not_delay(scope: ThrottleScope, key: str) -> None:
    limiter = Limiter()
    limiter.pause(scope, key, 10.0)
    assert limiter.reserve(PHONE, "bob", rate=80, waba_id=WABA, now=0.0).reason == "none"


def test_longest_pause_decides_and_pauses_only_extend() -> None:
    limiter = Limiter()
    limiter.pause(ThrottleScope.APP, "", 5.0)
    limiter.pause(ThrottleScope.WABA, WABA, 300.0)
    limiter.pause(ThrottleScope.WABA, WABA, 100.0)  # a late, shorter pause does not shorten
    r = limiter.reserve(PHONE, "bob", rate=80, waba_id=WABA, now=0.0)
    assert (r.delay, r.reason) == (300.0, "paused_waba")
    assert limiter.paused_until(ThrottleScope.APP, "", 0.0) == 5.0
    assert limiter.paused_until(ThrottleScope.APP, "", 6.0) == 0.0


# --- Limiter: memory ----------------------------------------------------------------------


def test_max_keys_is_a_hard_cap() -> None:
    limiter = Limiter(max_keys=50)
    for i in range(1000):  # all at one instant: nothing is idle, only the cap evicts
        limiter.reserve(f"p{i % 200}", f"r{i}", rate=80, waba_id=WABA, now=0.0)
        limiter.pause(ThrottleScope.PAIR, f"p:{i}", 100.0)
    assert limiter.sizes() == (50, 50, 50)


def test_idle_entries_are_evicted() -> None:
    limiter = Limiter()
    for i in range(500):
        limiter.reserve(PHONE, f"r{i}", rate=80, waba_id=WABA, now=i * 0.01)
        limiter.pause(ThrottleScope.PAIR, f"{PHONE}:r{i}", i * 0.01 + 1)
    numbers, pairs, pauses = limiter.sizes()
    assert numbers == 1
    assert pairs == 500  # no pair bucket has refilled yet (6 s)
    assert 99 <= pauses <= 101  # expired pauses went as the clock passed them
    # Pair buckets refill within 6 s of their one send; after that every table empties.
    limiter.reserve("other", "x", rate=80, waba_id=WABA, now=100.0)
    assert limiter.sizes() == (1, 1, 0)


@pytest.mark.parametrize(
    "kwargs",
    [{"headroom": 0.0}, {"headroom": 1.5}, {"max_keys": 0}, {"pair_burst": 0}],
    ids=["headroom0", "headroom>1", "max_keys0", "pair_burst0"],
)
def test_limiter_rejects_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        Limiter(**kwargs)  # type: ignore[arg-type]


# --- window_counts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("times", "window", "expected"),
    [
        ([], 1.0, 0),
        ([5.0], 1.0, 1),
        ([0.0, 1.0], 1.0, 1),  # half-open: an event exactly one window later is outside
        ([0.0, 0.999, 1.0], 1.0, 2),
        ([0.0, 0.0, 0.0], 1.0, 3),
        ([0.0, 0.5, 0.9, 1.4, 1.8, 1.9], 1.0, 4),
        ([1.9, 0.0, 1.4, 0.5, 1.8, 0.9], 1.0, 4),  # unsorted input is sorted first
        ([i / 64 for i in range(640)], 1.0, 64),
        ([0.0, 3.0, 6.0, 9.0], 6.0, 2),
    ],
    ids=[
        "empty",
        "single",
        "half-open",
        "edge",
        "same-instant",
        "sliding",
        "unsorted",
        "steady-64",
        "window-6s",
    ],
)
def test_window_counts(times: list[float], window: float, expected: int) -> None:
    assert window_counts(times, window) == expected


@pytest.mark.parametrize("window", [0.0, -1.0], ids=["zero", "negative"])
def test_window_counts_rejects_bad_window(window: float) -> None:
    with pytest.raises(ValueError, match="window"):
        window_counts([0.0], window)


def test_send_window_counts_a_request_until_a_second_after_its_answer_or_spread() -> None:
    from whatsapp_worker.send_window import SendWindow

    window = SendWindow(spread=0.05)
    assert [window.admit("p", 80, 10.0) for _ in range(80)] == [0.0] * 80
    # none answered yet: each counts until 10.0 + 0.05 + 1
    assert window.admit("p", 80, 10.5) == pytest.approx(0.551)
    for _ in range(80):
        window.done("p", 10.0, 10.02)  # answered after 20 ms: they count until 11.02
    assert window.admit("p", 80, 10.5) == pytest.approx(0.521)
    assert window.admit("p", 80, 11.03) == 0.0
    window.done("p", 11.03, 11.5)  # a slow answer: counts until 11.03 + spread + 1 anyway
    assert window.until["p"] == [pytest.approx(12.08)]
    assert window.admit("q", 20, 11.0) == 0.0  # numbers are counted apart
    window.forget_idle("p", 12.0)
    assert "p" in window.until  # still counting: kept
    window.forget_idle("p", 12.1)
    assert "p" not in window.until


def _arrivals_at_meta(
    seed: int, pick: Callable[[random.Random], tuple[float, float]]
) -> list[float]:
    """Requests admitted by a SendWindow at 80/s for 20 s. `pick` says how long each admitted
    request waits before it leaves (then `depart`) and how long it then takes to reach Meta;
    answers come 1-50 ms after that. Returns the arrival times at Meta."""
    from whatsapp_worker.send_window import SendWindow

    rnd = random.Random(seed)
    rate, window = 80, SendWindow(spread=0.05)
    now, arrivals = 0.0, []
    waiting: list[tuple[float, float, float]] = []  # (leaves at, admitted at, network time)
    pending: list[tuple[float, float, float]] = []  # (answer, arrival, start) in flight
    while now < 20.0:
        for leaves, admitted, network in [w for w in waiting if w[0] <= now]:
            started = window.depart("p", admitted, leaves)
            arrival = leaves + network
            pending.append((arrival + rnd.uniform(0.001, 0.05), arrival, started))
        waiting = [w for w in waiting if w[0] > now]
        for answer, arrival, started in [p for p in pending if p[0] <= now]:
            window.done("p", started, answer)
            arrivals.append(arrival)
        pending = [p for p in pending if p[0] > now]
        wait = window.admit("p", rate, now)
        if wait > 0:
            now += min(wait, 0.003)
            continue
        late, network = pick(rnd)
        waiting.append((now + late, now, network))
        now += rnd.uniform(0.0, 0.01)
    return arrivals


@pytest.mark.parametrize("seed", range(20))
def test_send_window_holds_at_meta_whatever_the_delays_within_spread(seed: int) -> None:
    """Requests admitted by the window, then delayed by random stalls and network times
    (together up to `spread`) before they reach Meta: no one-second window of arrivals holds
    more than the rate. (A window of start times with 2.5 % spare let 95 of 80 through in
    this test; see docs/workers.md.)"""

    def pick(rnd: random.Random) -> tuple[float, float]:
        delay = rnd.uniform(0.03, 0.05) if rnd.random() < 0.1 else rnd.uniform(0.001, 0.01)
        return 0.0, delay

    arrivals = _arrivals_at_meta(seed, pick)
    assert window_counts(arrivals) <= 80
    assert len(arrivals) > 20 * 80 * 0.9  # and it keeps most of the rate


def test_a_request_that_leaves_late_counts_from_when_it_leaves() -> None:
    from whatsapp_worker.send_window import SendWindow

    window = SendWindow(spread=0.05)
    assert window.admit("p", 80, 10.0) == 0.0
    assert window.depart("p", 10.0, 9.9) == 10.0  # never earlier than admitted
    assert window.depart("p", 10.0, 10.2) == 10.2  # it waited 200 ms for the send journal
    assert window.until["p"] == [pytest.approx(11.25)]  # counted from 10.2
    window.done("p", 10.2, 10.22)
    assert window.until["p"] == [pytest.approx(11.22)]


@pytest.mark.parametrize("seed", range(20))
def test_send_window_holds_when_requests_wait_before_they_leave(seed: int) -> None:
    """As above, but some admitted requests wait up to 200 ms more before they leave (a slow
    send-journal confirm, a full request slot): `depart` moves their count to when they
    leave, and no second of arrivals at Meta holds more than the rate."""

    def pick(rnd: random.Random) -> tuple[float, float]:
        late = rnd.uniform(0.05, 0.2) if rnd.random() < 0.2 else rnd.uniform(0.0, 0.005)
        return late, rnd.uniform(0.001, 0.05)

    arrivals = _arrivals_at_meta(seed, pick)
    assert window_counts(arrivals) <= 80
    assert len(arrivals) > 20 * 80 * 0.85


@pytest.mark.parametrize(("latency", "floor"), [(0.02, 0.97), (0.5, 0.95)])
def test_send_window_throughput_costs_at_most_the_spread(latency: float, floor: float) -> None:
    from whatsapp_worker.send_window import SendWindow

    window, now, sent = SendWindow(spread=0.05), 0.0, 0
    answers: list[tuple[float, float]] = []
    while now < 30.0:
        for answer, started in [a for a in answers if a[0] <= now]:
            window.done("p", started, answer)
        answers = [a for a in answers if a[0] > now]
        if window.admit("p", 80, now) == 0.0:
            answers.append((now + latency, now))
            sent += 1
        now += 0.001
    assert sent / 30.0 >= 80 * floor
