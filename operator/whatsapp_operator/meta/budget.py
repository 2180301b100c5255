"""One shared budget for every Graph API call the operator makes.

A token bucket (as GCRA: one timestamp, no background task) with a rate and a burst, so that
ten thousand tenants starting at once queue politely instead of flooding Meta. Throttling
answers from Meta pause the whole app (code 4) or one WABA (80007/80008) for the time Meta's
guidance names. The clock and sleep are injected for tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class RequestBudget:
    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tat = clock()  # theoretical arrival time of the next request
        self._paused_until = 0.0
        self._waba_paused_until: dict[str, float] = {}
        self.granted = 0

    def reserve(self, waba: str | None = None) -> float:
        """Take one request slot now; returns how long the caller must wait before using it."""
        now = self._clock()
        start = max(now, self._paused_until)
        tat = max(self._tat, start)
        wait = max(0.0, tat - now - (self.burst - 1) / self.rate, start - now)
        # A WABA's pause delays its own callers only: it must not move the shared schedule.
        wait = max(wait, self._waba_held(waba, now))
        self._tat = tat + 1 / self.rate
        self.granted += 1
        return wait

    def charge(self) -> None:
        """Count a request that must not wait: it goes now, ahead of every queued caller and
        of any pause, and the callers after it are paced as if it had taken its turn. Only
        for the Embedded Signup code exchange: Meta's OAuth code lives about 30 s, and a
        burst of tenant checks (or a throttling pause) could outlast it."""
        self._tat = max(self._tat, self._clock()) + 1 / self.rate
        self.granted += 1

    def _waba_held(self, waba: str | None, now: float) -> float:
        return 0.0 if waba is None else self._waba_paused_until.get(waba, 0.0) - now

    async def acquire(self, waba: str | None = None) -> None:
        # Wait out a WABA pause before taking a slot, so that the callers it held are paced
        # when it ends instead of all going at once.
        while (held := self._waba_held(waba, self._clock())) > 0:
            await self._sleep(held)
        wait = self.reserve(waba)
        if wait > 0:
            await self._sleep(wait)

    def pause(self, seconds: float, waba: str | None = None) -> None:
        """Meta said slow down: no new requests (for the app, or one WABA) for `seconds`."""
        until = self._clock() + seconds
        if waba is None:
            self._paused_until = max(self._paused_until, until)
        else:
            self._waba_paused_until[waba] = max(self._waba_paused_until.get(waba, 0.0), until)
