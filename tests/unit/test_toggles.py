"""kopf's start-up gate over indexes (whatsapp_operator/runtime/toggles.py): the same states
and waits as kopf's ToggleSet, at a cost linear in the number of objects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

import pytest
from kopf._cogs.aiokits import aiotoggles

from whatsapp_operator.runtime.toggles import CountingToggleSet, install

ORIGINAL = aiotoggles.ToggleSet if aiotoggles.ToggleSet is not CountingToggleSet else None


def sets(fn: Callable[[Iterable[bool]], bool]) -> list[aiotoggles.ToggleSet]:
    assert ORIGINAL is not None
    return [ORIGINAL(fn), CountingToggleSet(fn)]


# (fn, initial member states, then ops: ("add", state) | ("drop", index) | ("turn", index, state))
CASES = [
    ("all, empty", all, [], []),
    ("any, empty", any, [], []),
    ("all, one off", all, [False], []),
    ("all, all on", all, [True, True], []),
    ("all, off dropped", all, [True, False], [("drop", 1)]),
    ("all, off turned on", all, [False, True], [("turn", 0, True)]),
    ("all, on turned off", all, [True], [("turn", 0, False)]),
    ("any, one on among off", any, [False, True, False], []),
    ("any, the on dropped", any, [False, True], [("drop", 1)]),
    ("any, turned twice", any, [False], [("turn", 0, True), ("turn", 0, True), ("turn", 0, False)]),
    ("all, dropped twice", all, [False], [("drop", 0), ("drop", 0)]),
    ("all, added after", all, [True], [("add", False), ("add", True), ("drop", 1)]),
    ("a custom function", lambda states: sum(states) == 1, [True, False], [("turn", 1, True)]),
]  # fmt: skip


@pytest.mark.parametrize(("fn", "initial", "ops"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
async def test_the_same_states_as_kopfs_toggle_set(
    fn: Callable[[Iterable[bool]], bool], initial: list[bool], ops: list[tuple[object, ...]]
) -> None:
    states = []
    for toggle_set in sets(fn):
        members = [await toggle_set.make_toggle(state) for state in initial]
        seen = [toggle_set.is_on()]
        for op in ops:
            if op[0] == "add":
                members.append(await toggle_set.make_toggle(bool(op[1])))
            elif op[0] == "drop":
                await toggle_set.drop_toggle(members[int(str(op[1]))])
            else:
                await members[int(str(op[1]))].turn_to(bool(op[2]))
            seen.append(toggle_set.is_on())
        states.append((seen, len(toggle_set)))
    assert states[0] == states[1]


async def test_waiters_wake_when_the_set_turns_on() -> None:
    gate = CountingToggleSet(all)
    members = [await gate.make_toggle(name=f"object {i}") for i in range(3)]
    waiter = asyncio.create_task(gate.wait_for(True))
    for toggle in members[:2]:
        await gate.drop_toggle(toggle)
        await asyncio.sleep(0)
        assert not waiter.done()
    await gate.drop_toggles(members[2:])
    await asyncio.wait_for(waiter, 1)
    off = asyncio.create_task(gate.wait_for(False))
    await gate.make_toggle(False)
    await asyncio.wait_for(off, 1)


async def test_a_member_turned_by_itself_wakes_its_waiters() -> None:
    paused = CountingToggleSet(any)  # as peering uses it
    conflict = await paused.make_toggle(name="peering conflicts")
    waiter = asyncio.create_task(paused.wait_for(True))
    await asyncio.sleep(0)
    await conflict.turn_to(True)
    await asyncio.wait_for(waiter, 1)
    resumed = asyncio.create_task(paused.wait_for(False))
    await conflict.turn_to(False)
    await asyncio.wait_for(resumed, 1)


async def gate_start_up(toggle_set: aiotoggles.ToggleSet, objects: int) -> float:
    """kopf's start-up with `objects` indexed objects: a toggle per object, a waiter per object
    (after its own indexing), each toggle dropped once indexed. Seconds until all passed."""
    started = time.perf_counter()
    blocker = await toggle_set.make_toggle(name="orchestration blocker")
    members = [await toggle_set.make_toggle(name=f"object {i}") for i in range(objects)]
    waiters = []
    for toggle in members:
        await toggle_set.drop_toggle(toggle)  # indexed
        waiters.append(asyncio.create_task(toggle_set.wait_for(True)))
        await asyncio.sleep(0)
    await toggle_set.drop_toggle(blocker)
    await asyncio.gather(*waiters)
    return time.perf_counter() - started


async def test_the_gate_is_linear_in_the_objects() -> None:
    """kopf's own set needs seconds for 1,000 objects (cubic: measured 7.5 s for 1,500, and
    an operator restarted with 10,000 tenants never got through); ours passes 20,000 in
    under a second on a quiet machine (0.8 s measured)."""
    assert ORIGINAL is not None
    kopfs = await gate_start_up(ORIGINAL(all), 1000)
    # the best of three: a stall of the shared machine (0.24 s once, against 0.035 s usually)
    # must not pass for a slow gate
    small = min([await gate_start_up(CountingToggleSet(all), 1000) for _ in range(3)])
    large = await gate_start_up(CountingToggleSet(all), 20_000)
    print(f"\n[figure] gate: kopf's 1,000 objects {kopfs:.2f} s; ours 1,000 {small:.3f} s, "
          f"20,000 {large:.2f} s")  # fmt: skip
    assert small < kopfs / 10
    assert large < 10.0  # kopf's set: hours


def test_install_makes_kopf_build_counting_sets() -> None:
    from kopf._core.reactor import orchestration, running

    assert ORIGINAL is not None
    try:
        install()
        install()  # idempotent
        assert aiotoggles.ToggleSet is CountingToggleSet
        # kopf looks the class up in its module when it builds the sets
        assert getattr(orchestration, "aiotoggles").ToggleSet is CountingToggleSet  # noqa: B009
        assert getattr(running, "aiotoggles").ToggleSet is CountingToggleSet  # noqa: B009
    finally:
        aiotoggles.ToggleSet = ORIGINAL  # type: ignore[misc]


def test_the_any_set_is_kopfs_operator_paused_and_the_scheduler_finds_it() -> None:
    """scheduler.py pauses with kopf's peering through `paused_set()`: the one `ToggleSet(any)`
    kopf makes per run is its `operator_paused` (kopf 1.45). Fails if kopf changes that."""
    from pathlib import Path

    import kopf

    from whatsapp_operator.runtime.toggles import paused_set

    sources = {p: p.read_text() for p in Path(kopf.__file__).parent.rglob("*.py")}
    makers = [p.name for p, text in sources.items() for _ in range(text.count("ToggleSet(any)"))]
    assert makers == ["running.py"]
    running = next(text for p, text in sources.items() if p.name == "running.py")
    assert "operator_paused = aiotoggles.ToggleSet(any)" in running
    made = CountingToggleSet(any)
    assert paused_set() is made
    CountingToggleSet(all)  # kopf's other set (the index gate) does not replace it
    assert paused_set() is made
