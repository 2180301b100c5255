"""kopf's start-up gate over indexes, made linear in the number of objects.

kopf (1.45) holds every handler back until all objects are indexed: on the first listing it
adds an "off" toggle per indexed object to one `ToggleSet(all)`, drops it once the object is
indexed, and every object's worker (tenants and Secrets alike) waits on that set. Each add and
drop woke every waiter, and each waiter, like each new object's watcher step, recomputed the
set's state over all its toggles: cubic in the number of objects. An operator restarted with
10,000 tenants (and their Secrets) sat at 100 % CPU in `ToggleSet.make_toggle` and had
reconciled none of them minutes later; kopf's floor in `benchmarks/scale.py` never listed
10,000 for the same reason.

`install()` (before `kopf.operator` starts) has kopf build its toggle sets from
`CountingToggleSet`: the set counts its "on" members, so its state costs O(1), and adding or
dropping a member wakes the waiters only when the set's state changes. A member turned on or
off by itself still wakes everyone (peering does that, rarely). Same states, same waits.

kopf makes one `ToggleSet(any)` per run, its `operator_paused` (on while peering has a replica
of higher priority, or the peering resource is missing): `paused_set()` gives it to the
scheduler of tenant passes, which must pause with kopf's daemons (kopf stops those itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from kopf._cogs.aiokits import aiotoggles


class CountedToggle(aiotoggles.Toggle):
    """A member of a `CountingToggleSet`: keeps its set's count right when turned."""

    def __init__(
        self,
        state: bool,
        *,
        name: str | None,
        condition: asyncio.Condition,
        owner: CountingToggleSet,
    ) -> None:
        super().__init__(state, name=name, condition=condition)
        self._owner = owner

    async def turn_to(self, __state: bool) -> None:
        async with self._condition:
            state = bool(__state)
            if self in self._owner._members and state != self._state:
                self._owner._on += 1 if state else -1
            self._state = state
            self._condition.notify_all()


class CountingToggleSet(aiotoggles.ToggleSet):
    """`ToggleSet` with an O(1) state for `all` and `any`, and wake-ups on changes only."""

    def __init__(self, fn: Callable[[Iterable[bool]], bool]) -> None:
        super().__init__(fn)
        self._members: set[aiotoggles.Toggle] = self._toggles
        self._on = 0  # members that are on
        if fn is any:
            global _PAUSED
            _PAUSED = self

    def is_on(self) -> bool:
        if self._fn is all:
            return self._on == len(self._members)
        if self._fn is any:
            return self._on > 0
        return super().is_on()

    async def make_toggle(self, __val: bool = False, *, name: str | None = None) -> CountedToggle:
        toggle = CountedToggle(__val, name=name, condition=self._condition, owner=self)
        async with self._condition:
            before = self.is_on()
            self._members.add(toggle)
            self._on += toggle.is_on()
            if self.is_on() != before:
                self._condition.notify_all()
        return toggle

    async def drop_toggle(self, toggle: aiotoggles.Toggle) -> None:
        await self.drop_toggles([toggle])

    async def drop_toggles(self, toggles: Iterable[aiotoggles.Toggle]) -> None:
        async with self._condition:
            before = self.is_on()
            for toggle in toggles:
                if toggle in self._members:
                    self._members.discard(toggle)
                    self._on -= toggle.is_on()
            if self.is_on() != before:
                self._condition.notify_all()


_PAUSED: CountingToggleSet | None = None


def paused_set() -> CountingToggleSet | None:
    """kopf's `operator_paused` of the running operator (None before kopf made it)."""
    return _PAUSED


def install() -> None:
    """Make kopf create `CountingToggleSet`s from now on (idempotent)."""
    aiotoggles.ToggleSet = CountingToggleSet  # type: ignore[misc]
