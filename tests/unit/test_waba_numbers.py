"""The memo of numbers lately read from WABA lists (whatsapp_operator/meta/waba_numbers.py)."""

from __future__ import annotations

import asyncio

from whatsapp_operator.meta.waba_numbers import WabaNumbers

KEY = ("102290129340398", "sha256:0123456789abcdef")
OTHER_TOKEN = ("102290129340398", "sha256:fedcba9876543210")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_seen_until_the_first_read_is_ttl_old() -> None:
    clock = Clock()
    memo = WabaNumbers(ttl=60.0, clock=clock)
    assert not memo.seen(KEY, "1")
    memo.remember(KEY, ["1", "2"])
    clock.now += 30
    memo.remember(KEY, ["3"])  # a later read adds to it, keeping the first read's time
    assert memo.seen(KEY, "1")
    assert memo.seen(KEY, "3")
    assert not memo.seen(KEY, "4")
    assert not memo.seen(OTHER_TOKEN, "1")  # another token's reads count for nothing here
    clock.now += 30
    assert not memo.seen(KEY, "3")  # 60 s after the first read: all of it expired
    assert len(memo) == 0


def test_old_entries_are_dropped_as_new_ones_come() -> None:
    clock = Clock()
    memo = WabaNumbers(ttl=10.0, clock=clock)
    for i in range(100):
        memo.remember((str(i), "fp"), ["1"])
        clock.now += 1
    assert len(memo) == 10


async def test_turns_are_taken_in_order_and_forgotten_when_done() -> None:
    memo = WabaNumbers()
    order: list[str] = []

    async def check(name: str, hold: float) -> None:
        async with memo.turn(KEY):
            order.append(f"{name} in")
            await asyncio.sleep(hold)
            order.append(f"{name} out")

    await asyncio.gather(check("a", 0.02), check("b", 0), check("c", 0))
    assert order == ["a in", "a out", "b in", "b out", "c in", "c out"]
    assert memo._turns == {}
