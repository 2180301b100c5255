"""Which worker consumes which shard of its pool (worker/whatsapp_worker/ownership.py)."""

from __future__ import annotations

from collections import Counter
from itertools import permutations

import pytest

from whatsapp_contract.heartbeat import Heartbeat
from whatsapp_worker.ownership import Membership, Plan, plan, target_layout

POOL = "bulk"
NOW = 1000.0
ORPHAN_AFTER = 6.0


def beat(
    worker: str,
    at: float,
    *,
    pool: str = POOL,
    shards: tuple[int, ...] = (),
    bye: bool = False,
    interval: float = 2.0,
) -> Heartbeat:
    return Heartbeat(worker=worker, pool=pool, at=at, interval=interval, shards=shards, bye=bye)


def live_of(*workers: str) -> dict[str, Heartbeat]:
    return {w: beat(w, NOW) for w in workers}


# --- Membership.observe ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("beats", "expected"),
    [
        pytest.param([], {}, id="nothing heard"),
        pytest.param([beat("w1", 10.0)], {"w1": (10.0, ())}, id="first beat is kept"),
        pytest.param(
            [beat("w1", 10.0, shards=(1,)), beat("w1", 20.0, shards=(2,))],
            {"w1": (20.0, (2,))},
            id="newer beat replaces",
        ),
        pytest.param(
            [beat("w1", 20.0, shards=(2,)), beat("w1", 10.0, shards=(1,))],
            {"w1": (20.0, (2,))},
            id="older beat (late delivery) is ignored",
        ),
        pytest.param(
            [beat("w1", 20.0, shards=(2,)), beat("w1", 20.0, shards=(3,))],
            {"w1": (20.0, (3,))},
            id="same timestamp: the last one heard wins",
        ),
        pytest.param(
            [beat("w1", 10.0), beat("w2", 11.0)],
            {"w1": (10.0, ()), "w2": (11.0, ())},
            id="two workers",
        ),
        pytest.param(
            [beat("w1", 10.0), beat("w9", 30.0, pool="other")],
            {"w1": (10.0, ())},
            id="a beat of another pool is ignored",
        ),
        pytest.param(
            [beat("w1", 10.0), beat("w2", 11.0), beat("w2", 12.0, bye=True)],
            {"w1": (10.0, ())},
            id="bye forgets the worker",
        ),
        pytest.param(
            [beat("w1", 10.0), beat("w2", 5.0, bye=True)],
            {"w1": (10.0, ())},
            id="bye of an unknown worker changes nothing",
        ),
        pytest.param(
            [beat("w1", 10.0), beat("w1", 12.0, pool="other", bye=True)],
            {"w1": (10.0, ())},
            id="bye of another pool is ignored",
        ),
        pytest.param(
            [beat("w1", 10.0), beat("w1", 12.0, bye=True), beat("w1", 14.0, shards=(0,))],
            {"w1": (14.0, (0,))},
            id="a worker that said bye comes back with its next beat",
        ),
    ],
)
def test_observe(
    beats: list[Heartbeat], expected: dict[str, tuple[float, tuple[int, ...]]]
) -> None:
    members = Membership(POOL)
    for b in beats:
        members.observe(b)
    assert {w: (b.at, b.shards) for w, b in members.beats.items()} == expected


def test_forget_unknown_worker_is_harmless() -> None:
    members = Membership(POOL)
    members.observe(beat("w1", 10.0))
    members.forget("nobody")
    members.forget("w1")
    assert members.beats == {}


# --- Membership.live: alive for 3 intervals, kept for 10 --------------------------------


@pytest.mark.parametrize(
    ("now", "live", "kept"),
    [
        pytest.param(104.0, ["fresh", "old"], ["fresh", "old"], id="both recent"),
        pytest.param(106.0, ["fresh", "old"], ["fresh", "old"], id="old at exactly 3 intervals"),
        pytest.param(106.5, ["fresh"], ["fresh", "old"], id="old past 3 intervals: kept"),
        pytest.param(110.0, ["fresh"], ["fresh", "old"], id="fresh at exactly 3 intervals"),
        pytest.param(110.5, [], ["fresh", "old"], id="neither live, both kept"),
        pytest.param(120.0, [], ["fresh", "old"], id="old at exactly 10 intervals: kept"),
        pytest.param(120.5, [], ["fresh"], id="old past 10 intervals: pruned"),
        pytest.param(124.5, [], [], id="both past 10 intervals: table emptied"),
    ],
)
def test_live_expiry_and_pruning(now: float, live: list[str], kept: list[str]) -> None:
    members = Membership(POOL)
    members.observe(beat("old", 100.0, interval=2.0))
    members.observe(beat("fresh", 104.0, interval=2.0))
    assert sorted(members.live(now)) == live
    assert sorted(members.beats) == kept


def test_live_uses_each_workers_own_interval() -> None:
    members = Membership(POOL)
    members.observe(beat("slow", 100.0, interval=10.0))
    members.observe(beat("fast", 100.0, interval=1.0))
    assert sorted(members.live(125.0)) == ["slow"]
    assert sorted(members.beats) == ["slow"]  # fast: 25 s > 10 x 1 s, pruned


# --- target_layout ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shards", "workers", "expected"),
    [
        pytest.param(4, [], {}, id="no workers: no layout"),
        pytest.param(0, ["a"], {}, id="no shards"),
        pytest.param(3, ["a"], {0: "a", 1: "a", 2: "a"}, id="one worker holds everything"),
        pytest.param(3, ["b", "a"], {0: "a", 1: "b", 2: "a"}, id="sorted, then round robin"),
        pytest.param(
            5, ["c", "a", "b"], {0: "a", 1: "b", 2: "c", 3: "a", 4: "b"}, id="three workers"
        ),
        pytest.param(2, ["b", "a", "b", "a"], {0: "a", 1: "b"}, id="duplicates count once"),
        pytest.param(3, ["w-10", "w-2", "w-1"], {0: "w-1", 1: "w-10", 2: "w-2"}, id="string order"),
        pytest.param(1, ["a", "b", "c"], {0: "a"}, id="more workers than shards"),
    ],
)
def test_target_layout(shards: int, workers: list[str], expected: dict[int, str]) -> None:
    assert target_layout(shards, workers) == expected
    assert target_layout(shards, iter(workers)) == expected  # any iterable


def test_target_layout_does_not_depend_on_order() -> None:
    layouts = {tuple(target_layout(8, p).items()) for p in permutations(["x", "y", "z"])}
    assert len(layouts) == 1


# --- plan ------------------------------------------------------------------------------

ALL_8 = tuple(range(8))
ALL_UNHELD_8 = dict.fromkeys(range(8), NOW)


@pytest.mark.parametrize(
    ("me", "shards", "live", "held", "unheld_since", "expected"),
    [
        pytest.param(
            "a", 4, {}, [], dict.fromkeys(range(4), NOW), Plan(claim=(0, 1, 2, 3)),
            id="alone before my first beat: claim every unheld shard",
        ),
        pytest.param(
            "a", 4, live_of("a"), [1], {0: NOW, 2: NOW, 3: NOW}, Plan(claim=(0, 2, 3)),
            id="alone: claim the rest",
        ),
        pytest.param(
            "a", 4, live_of("a"), [0, 1, 2, 3], {}, Plan(),
            id="alone holding everything: nothing to do",
        ),
        pytest.param(
            "a", 8, live_of("a", "b"), ALL_8, {}, Plan(release=(1, 3, 5, 7)),
            id="a holds all 8, b joins: a releases b's half",
        ),
        pytest.param(
            "b", 8, live_of("a", "b"), [], {}, Plan(),
            id="b joined while a holds all 8: nothing unheld, nothing claimed",
        ),
        pytest.param(
            "b", 8, live_of("a", "b"), [], {1: NOW, 3: NOW, 5: NOW, 7: NOW},
            Plan(claim=(1, 3, 5, 7)),
            id="a released b's half: b claims it",
        ),
        pytest.param(
            "b", 8, live_of("a", "b"), ALL_8, {}, Plan(release=(0, 2, 4, 6)),
            id="b holds all 8, a joins: b releases a's half",
        ),
        pytest.param(
            "a", 8, live_of("a", "b"), [0, 2, 4, 6], {}, Plan(),
            id="split 4/4: stable",
        ),
        pytest.param(
            "b", 8, live_of("a", "b"), [], ALL_UNHELD_8, Plan(claim=(1, 3, 5, 7)),
            id="everything unheld (fresh): only my target",
        ),
        pytest.param(
            "a", 4, live_of("a"), [], {1: NOW, 2: NOW, 3: NOW}, Plan(claim=(1, 2, 3)),
            id="a shard held by someone else is not claimed, even my target",
        ),
        pytest.param(
            "a", 2, live_of("a", "b"), [], {1: NOW - ORPHAN_AFTER}, Plan(claim=(1,)),
            id="orphan exactly orphan_after: claimed though b's target",
        ),
        pytest.param(
            "a", 2, live_of("a", "b"), [], {1: NOW - 100.0}, Plan(claim=(1,)),
            id="long orphan: claimed though b's target",
        ),
        pytest.param(
            "a", 2, live_of("a", "b"), [], {1: NOW - ORPHAN_AFTER + 0.5}, Plan(),
            id="unheld for less than orphan_after, b's target: not claimed",
        ),
        pytest.param(
            "a", 4, live_of("a", "b"), [], {0: NOW, 1: NOW - 1.0, 3: NOW - 7.0},
            Plan(claim=(0, 3)),
            id="mixed: my target now, an orphan, a fresh unheld shard of b",
        ),
        pytest.param(
            "c", 3, live_of("a", "b"), [], dict.fromkeys(range(3), NOW), Plan(claim=(2,)),
            id="me counts as live before my first beat",
        ),
        pytest.param(
            "a", 4, live_of("a", "b"), [1, 0], {}, Plan(release=(1,)),
            id="held given unsorted",
        ),
        pytest.param(
            "a", 2, live_of("a"), [0, 1, 5], {}, Plan(release=(5,)),
            id="a held shard beyond the shard count is released",
        ),
        pytest.param(
            "a", 0, live_of("a"), [], {}, Plan(),
            id="no shards",
        ),
    ],
)  # fmt: skip
def test_plan(
    me: str,
    shards: int,
    live: dict[str, Heartbeat],
    held: list[int],
    unheld_since: dict[int, float],
    expected: Plan,
) -> None:
    result = plan(
        me=me,
        shards=shards,
        live=live,
        held=held,
        unheld_since=unheld_since,
        now=NOW,
        orphan_after=ORPHAN_AFTER,
    )
    assert result == expected


def test_orphan_claimed_then_handed_back_to_its_target() -> None:
    """An orphan is claimed by anyone, but the release rule still follows the target layout:
    on the next tick the claimer releases it again (delayed, never stranded)."""
    live = live_of("a", "b")
    first = plan(
        me="a", shards=2, live=live, held=[0], unheld_since={1: NOW - 10.0},
        now=NOW, orphan_after=ORPHAN_AFTER,
    )  # fmt: skip
    assert first == Plan(claim=(1,))
    second = plan(
        me="a", shards=2, live=live, held=[0, 1], unheld_since={},
        now=NOW + 0.5, orphan_after=ORPHAN_AFTER,
    )  # fmt: skip
    assert second == Plan(release=(1,))


# --- property: the target layout partitions the shards ---------------------------------


@pytest.mark.parametrize("shards", range(1, 17), ids=lambda n: f"{n}s")
@pytest.mark.parametrize("workers", range(1, 6), ids=lambda n: f"{n}w")
def test_every_shard_has_exactly_one_target(workers: int, shards: int) -> None:
    names = [f"worker-{i}" for i in range(workers)]
    live = live_of(*names)
    claimed: Counter[int] = Counter()
    per_worker: dict[str, int] = {}
    for me in names:
        # every shard unheld but none an orphan: each worker claims exactly its target
        decided = plan(
            me=me,
            shards=shards,
            live=live,
            held=[],
            unheld_since=dict.fromkeys(range(shards), NOW),
            now=NOW,
            orphan_after=ORPHAN_AFTER,
        )
        assert decided.release == ()
        assert decided.claim == tuple(s for s, w in target_layout(shards, names).items() if w == me)
        claimed.update(decided.claim)
        per_worker[me] = len(decided.claim)
    assert claimed == Counter(range(shards))  # every shard exactly once
    assert max(per_worker.values()) - min(per_worker.values()) <= 1  # balanced
    # and a worker holding its target has nothing to do
    for me in names:
        mine = [s for s, w in target_layout(shards, names).items() if w == me]
        assert plan(
            me=me, shards=shards, live=live, held=mine, unheld_since={},
            now=NOW, orphan_after=ORPHAN_AFTER,
        ) == Plan()  # fmt: skip
