"""Rate decisions for one sender worker process: per-number spacing, Meta's pair limit, pauses.
The hard cap on requests reaching Meta per second is `send_window.py`.

The pool's messages are sharded by phone number so that exactly one worker process sends for
a given business number at any time. A limiter local to the process is therefore exact
across replicas, and needs no shared store.

Everything here is pure: the caller passes the clock (`now`, seconds on a monotonic clock)
and does the sleeping, so every decision can be table-tested with a fake clock.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

from whatsapp_graph.errors import ThrottleScope

# Two reservation times closer than this are the same slot (float rounding of tat arithmetic).
_EPSILON = 1e-9

_PAUSE_REASONS: dict[ThrottleScope, str] = {
    ThrottleScope.APP: "paused_app",
    ThrottleScope.WABA: "paused_waba",
    ThrottleScope.PHONE_NUMBER: "paused_number",
    ThrottleScope.PAIR: "paused_pair",
}


@dataclass
class Gcra:
    """Generic cell rate algorithm, reservation style: never rejects, says how long to wait.

    `tat` is the theoretical arrival time of the next event at the steady rate; an event may
    go at `tat - tolerance`, where the tolerance lets `burst` events go back to back. The
    caller that reserves a slot sleeps for the returned delay and then acts, so the events
    themselves keep the spacing even when many coroutines reserve at once.
    """

    rate: float
    burst: int = 1
    tat: float = -math.inf
    _last_slot: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {self.burst}")

    @property
    def interval(self) -> float:
        return 1.0 / self.rate

    @property
    def tolerance(self) -> float:
        return (self.burst - 1) * self.interval

    def peek(self, now: float) -> float:
        """The delay a `reserve(now)` would return, without reserving."""
        return max(0.0, self.tat - self.tolerance - now)

    def reserve(self, now: float) -> float:
        """Reserve the next slot; return the delay (>= 0) to wait before acting."""
        slot = max(now, self.tat - self.tolerance)
        self.tat = max(self.tat, now) + self.interval
        self._last_slot = slot
        return slot - now

    def cancel(self, slot: float) -> bool:
        """Give back the slot at absolute time `slot` (`now + delay` of its reservation).

        Only the most recent reservation can be given back: an earlier one has later
        reservations behind it, and moving `tat` back would hand the same slot out twice.
        Returns whether the slot was given back.
        """
        if self._last_slot is None or abs(self._last_slot - slot) > _EPSILON:
            return False
        self.tat -= self.interval
        self._last_slot = None
        return True

    def set_rate(self, rate: float, now: float) -> None:
        """Adopt a new rate without granting a burst.

        The outstanding debt (`tat - now`, i.e. reserved-but-not-yet-due events) is kept as a
        number of events and re-expressed in the new interval; an idle limiter stays idle.
        A lower rate cannot undo what went out in the last second at the old rate; Meta's
        130429 (handled as a number pause) covers that case.
        """
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        if rate == self.rate:
            return
        if self.tat > now:
            self.tat = now + (self.tat - now) * (self.rate / rate)
        self.rate = rate
        self._last_slot = None

    def idle(self, now: float) -> bool:
        """True when this limiter behaves exactly like a fresh one (so it can be dropped)."""
        return self.tat <= now


@dataclass
class PairLimit:
    """Meta's pair limit (one business number -> one recipient) as a token bucket.

    Meta allows 1 message per 6 s on average and bursts of up to 45 that borrow from future
    quota: capacity 45, one token back every 6 s. A full bucket is the same as no bucket.
    """

    capacity: int = 45
    refill_seconds: float = 6.0
    tokens: float = math.nan  # at `updated`; nan -> capacity
    updated: float = -math.inf

    def __post_init__(self) -> None:
        if self.capacity < 1 or not self.refill_seconds > 0:
            raise ValueError("capacity must be >= 1 and refill_seconds > 0")
        if math.isnan(self.tokens):
            self.tokens = float(self.capacity)

    def _refill(self, now: float) -> None:
        # A `now` older than the last update (callers racing on a captured clock) adds nothing.
        if now > self.updated:
            if self.updated > -math.inf:
                gained = (now - self.updated) / self.refill_seconds
                self.tokens = min(float(self.capacity), self.tokens + gained)
            self.updated = now

    def wait(self, now: float) -> float:
        """Seconds until a token is available (0.0 if one is available now)."""
        self._refill(now)
        return max(0.0, (1.0 - self.tokens) * self.refill_seconds)

    def take(self, now: float) -> None:
        """Take one token. May go below zero when taken for a slot that is still ahead."""
        self._refill(now)
        self.tokens -= 1.0

    def give_back(self, now: float) -> None:
        self._refill(now)
        self.tokens = min(float(self.capacity), self.tokens + 1.0)

    def idle(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.capacity


@dataclass(frozen=True)
class Reservation:
    """What `Limiter.reserve` decided.

    `reason` names the limit that decided the delay: "none" and "number" reserved a send slot
    (sleep `delay`, then send); "pair" and "paused_*" reserved nothing (re-reserve after
    `delay`). `slot` is the absolute time of the reserved send slot, None if none was reserved.
    """

    delay: float
    reason: str
    slot: float | None = None

    @property
    def reserved(self) -> bool:
        return self.slot is not None


class Limiter:
    """Per-process rate decisions: pauses first, then the pair bucket, then number spacing.

    Tables are LRU-ordered; idle entries at the old end are dropped as they are passed, and
    each table holds at most `max_keys` entries (the least recently used go first, which can
    only make Meta throttle us, never lose a message).
    """

    def __init__(
        self,
        *,
        headroom: float = 0.97,
        pair_burst: int = 45,
        pair_refill_seconds: float = 6.0,
        max_keys: int = 100_000,
        number_burst: int = 1,
    ) -> None:
        if not 0 < headroom <= 1 or min(max_keys, number_burst, pair_burst) < 1:
            raise ValueError("headroom must be in (0, 1]; max_keys and bursts must be >= 1")
        if not pair_refill_seconds > 0:
            raise ValueError("pair_refill_seconds must be > 0")
        self.headroom = headroom
        self.pair_burst = pair_burst
        self.pair_refill_seconds = pair_refill_seconds
        self.max_keys = max_keys
        self.number_burst = number_burst
        self._numbers: OrderedDict[str, Gcra] = OrderedDict()
        self._pairs: OrderedDict[str, PairLimit] = OrderedDict()
        self._pauses: OrderedDict[tuple[ThrottleScope, str], float] = OrderedDict()

    @staticmethod
    def pair_key(phone_number_id: str, recipient: str) -> str:
        return f"{phone_number_id}:{recipient}"

    def sizes(self) -> tuple[int, int, int]:
        """Entries held (numbers, pairs, pauses): for metrics and the memory-bound tests."""
        return len(self._numbers), len(self._pairs), len(self._pauses)

    def pause(self, scope: ThrottleScope, key: str, until: float) -> None:
        """Stop sending in `scope` until `until` (a throttling error from Meta).

        Keys (`scope_key`): "" for the app, the WABA id, the phone number id, or
        `pair_key(...)`. A pause only ever extends: a shorter one arriving late does not cut a
        longer one short.
        """
        k = (scope, key)
        self._pauses[k] = max(until, self._pauses.get(k, -math.inf))
        self._pauses.move_to_end(k)
        while len(self._pauses) > self.max_keys:
            self._pauses.popitem(last=False)

    def paused_until(self, scope: ThrottleScope, key: str, now: float) -> float:
        """The end of the pause on that scope, 0.0 if not paused."""
        until = self._pauses.get((scope, key), 0.0)
        if until <= now:
            self._pauses.pop((scope, key), None)  # expired: forget it now
            return 0.0
        return until

    def reserve(
        self, phone_number_id: str, recipient: str, *, rate: float, waba_id: str, now: float
    ) -> Reservation:
        """Decide when the next message for (number, recipient) may be sent.

        A pause or an empty pair bucket returns the wait without reserving anything, so a
        message waiting there does not hold a number slot other recipients could use. Else
        a number slot (at `rate * headroom`) and a pair token are reserved together.
        """
        self._sweep(now)
        pair = self.pair_key(phone_number_id, recipient)
        best_until, best_scope = 0.0, None
        for scope, key in (
            (ThrottleScope.APP, ""),
            (ThrottleScope.WABA, waba_id),
            (ThrottleScope.PHONE_NUMBER, phone_number_id),
            (ThrottleScope.PAIR, pair),
        ):
            until = self.paused_until(scope, key, now)
            if until > best_until:
                best_until, best_scope = until, scope
        if best_scope is not None:
            return Reservation(best_until - now, _PAUSE_REASONS[best_scope])

        gcra = self._number(phone_number_id, rate * self.headroom, now)
        number_delay = gcra.peek(now)
        bucket = self._pairs.get(pair)
        pair_delay = bucket.wait(now) if bucket is not None else 0.0
        if pair_delay > number_delay:
            return Reservation(pair_delay, "pair")
        delay = gcra.reserve(now)
        if bucket is None:
            bucket = PairLimit(self.pair_burst, self.pair_refill_seconds)
            self._pairs[pair] = bucket
            self._trim(self._pairs)
        else:
            self._pairs.move_to_end(pair)
        bucket.take(now)
        return Reservation(delay, "number" if delay > 0 else "none", now + delay)

    def cancel(
        self, phone_number_id: str, recipient: str, reservation: Reservation, now: float
    ) -> bool:
        """Give back a reservation whose send did not happen (shutdown, tenant gone).

        The pair token always comes back; the number slot only if no later reservation was
        made for that number. Returns whether the number slot came back.
        """
        if reservation.slot is None:
            return False
        bucket = self._pairs.get(self.pair_key(phone_number_id, recipient))
        if bucket is not None:
            bucket.give_back(now)
        gcra = self._numbers.get(phone_number_id)
        return gcra is not None and gcra.cancel(reservation.slot)

    def _number(self, phone_number_id: str, rate: float, now: float) -> Gcra:
        gcra = self._numbers.get(phone_number_id)
        if gcra is None:
            gcra = Gcra(rate, self.number_burst)
            self._numbers[phone_number_id] = gcra
            self._trim(self._numbers)
        else:
            gcra.set_rate(rate, now)
            self._numbers.move_to_end(phone_number_id)
        return gcra

    def _trim(self, table: OrderedDict[str, Gcra] | OrderedDict[str, PairLimit]) -> None:
        while len(table) > self.max_keys:
            table.popitem(last=False)

    def _sweep(self, now: float) -> None:
        """Drop idle entries from the least recently used end; stops at the first busy one."""
        while self._numbers and next(iter(self._numbers.values())).idle(now):
            self._numbers.popitem(last=False)
        while self._pairs and next(iter(self._pairs.values())).idle(now):
            self._pairs.popitem(last=False)
        while self._pauses and next(iter(self._pauses.values())) <= now:
            self._pauses.popitem(last=False)


def scope_key(scope: ThrottleScope, *, phone_number_id: str, waba_id: str, recipient: str) -> str:
    """The key of a pause on `scope` (`Limiter.pause`): "" for the app, the WABA id, the
    phone number id, or the pair's key."""
    if scope is ThrottleScope.APP:
        return ""
    if scope is ThrottleScope.WABA:
        return waba_id
    if scope is ThrottleScope.PAIR:
        return Limiter.pair_key(phone_number_id, recipient)
    return phone_number_id
