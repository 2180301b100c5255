"""A hard cap per number on the requests that reach Meta in any second, on top of the pacing
of `limits.py`; and `window_counts`, the worst second of a series of events, as Meta judges it.

Pure, like `limits.py`: the caller passes the clock (`now`, seconds on a monotonic clock) and
does the waiting.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence

ARRIVAL_SPREAD = 0.05  # seconds by which a request may reach Meta later than it started


class SendWindow:
    """A hard cap per number: at most `rate` requests may reach Meta in any second.

    The pacing keeps sends evenly spaced; this bound holds whatever the event loop does. A
    request reaches Meta after it starts and before its answer is back; a delay between the
    two (a stalled loop, a queue for connections, the network) can bunch requests that left
    evenly. So each request counts from its start until one second after the earlier of its
    answer and `spread` after its start: no second of arrivals can hold more than `rate` as
    long as no request takes longer than `spread` to arrive. The cost is throughput when
    answers take longer than `spread`: at most rate / (1 + spread) per second (76 of 80 at the
    default 50 ms); CI caught one or two 130429 under load when only start times counted.
    """

    def __init__(self, spread: float = ARRIVAL_SPREAD) -> None:
        self.spread = spread
        self.until: dict[str, list[float]] = {}  # per number: until when each request counts

    def _end(self, started: float) -> float:
        """Until when a request started at `started` counts while its answer is not back."""
        return started + self.spread + 1.0

    @staticmethod
    def _drop(until: list[float], end: float) -> bool:
        """Remove one request counted until `end`; False if none is (it has expired)."""
        index = bisect.bisect_left(until, end)
        if index < len(until) and until[index] == end:
            del until[index]
            return True
        return False

    def admit(self, phone: str, rate: int, now: float) -> float:
        """0.0 and the request counted from `now`, or how long to wait before asking again
        (call `done` with the same `now` when its answer is back, whatever it was)."""
        until = self.until.setdefault(phone, [])
        expired = bisect.bisect_right(until, now)
        del until[:expired]
        if len(until) < max(1, rate):
            bisect.insort(until, self._end(now))
            return 0.0
        return until[0] - now + 0.001

    def depart(self, phone: str, started: float, now: float) -> float:
        """The request admitted at `started` leaves only `now` (it waited for a request slot
        or the send journal): it counts from `now` instead, so that its `spread` holds. Returns
        its new start, for `done`. Counting it longer is always safe."""
        if self._end(now) <= self._end(started):
            return started
        until = self.until.setdefault(phone, [])
        self._drop(until, self._end(started))
        bisect.insort(until, self._end(now))  # even if its old count had expired: it leaves now
        return now

    def done(self, phone: str, started: float, now: float) -> None:
        """The answer of the request admitted at `started` is back: it counts until a second
        after it, if that is sooner."""
        until = self.until.get(phone)
        if until is None or now + 1.0 >= self._end(started):
            return
        if self._drop(until, self._end(started)):
            bisect.insort(until, now + 1.0)

    def forget_idle(self, phone: str, now: float) -> None:
        until = self.until.get(phone)
        if until is not None and (not until or until[-1] <= now):
            del self.until[phone]


def window_counts(times: Sequence[float], window: float = 1.0) -> int:
    """The most events in any half-open window [t, t + window) over the event times.

    This is how Meta (and the simulator) judge a per-second limit; tests and benchmarks use
    it for the worst 1-second window. Two pointers over sorted times: O(n) (O(n log n) if
    the times have to be sorted first).
    """
    if not window > 0:
        raise ValueError(f"window must be > 0, got {window}")
    ordered = list(times)
    if any(b < a for a, b in itertools.pairwise(ordered)):
        ordered.sort()
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
