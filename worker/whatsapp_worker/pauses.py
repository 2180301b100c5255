"""Numbers Meta blocked, as one worker process sees them: pure state, the clock passed in.

A send answered with one of `errors.TENANT_BLOCKED_CODES` (368, 131048, ...) means every later
message of that business number would fail the same way until someone acts. The process then
pauses the number (`NumberPauses.pause`: number -> code, since) and holds its messages
without calling Meta, and tells the operator (a `sending_blocked` signal), which sets the
tenant's SendingBlocked condition and publishes the code in the tenant's config
(`TenantConfig.blocked_code`): from then on every replica holds the number's messages.

`NumberPauses.gate` says, for each message, whether it may go:

| the config's blocked_code | this process's pause | gate |
| --- | --- | --- |
| set | any | HOLD (the pause, if any, is marked confirmed) |
| not set | none | SEND |
| not set | confirmed earlier | SEND: the operator cleared the block; the pause is dropped |
| not set | unconfirmed, probe not due | HOLD |
| not set | unconfirmed, probe due | PROBE: this message is sent; the next probe is later |

An unconfirmed pause is one the operator never took up (no operator, a lost signal, or a
config not yet reloaded): one message is tried every `probe_interval` (the next probe is due
that long after a probe); the pause ends once a send for the number is accepted (`lift`),
and is renewed by another block code.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from dataclasses import dataclass, replace


class Verdict(enum.Enum):
    SEND = "send"
    PROBE = "probe"  # the one message that tests whether an unconfirmed block has lifted
    HOLD = "hold"


@dataclass(frozen=True)
class Gate:
    verdict: Verdict
    code: int | None = None  # the block's Meta code, for HOLD and PROBE


SEND = Gate(Verdict.SEND)


@dataclass(frozen=True)
class Pause:
    code: int  # Meta's error code
    since: float  # wall clock of the first block of this pause
    probe_at: float  # when one message may test the number again
    confirmed: bool = False  # the operator's config has shown a block for the number


class NumberPauses:
    """Paused business numbers (phone number ids) of this process."""

    def __init__(self, probe_interval: float = 300.0) -> None:
        if not probe_interval > 0:
            raise ValueError("probe_interval must be > 0")
        self.probe_interval = probe_interval
        self._pauses: dict[str, Pause] = {}

    def __len__(self) -> int:
        return len(self._pauses)

    def get(self, phone: str) -> Pause | None:
        return self._pauses.get(phone)

    def pause(self, phone: str, code: int, now: float) -> bool:
        """Meta answered a send with a block `code`: pause (or renew the pause of) the
        number. True when the number was not paused before."""
        known = self._pauses.get(phone)
        since = known.since if known is not None else now
        confirmed = known.confirmed if known is not None else False
        self._pauses[phone] = Pause(code, since, now + self.probe_interval, confirmed)
        return known is None

    def lift(self, phone: str) -> bool:
        """A send of the number was accepted: it is not blocked. True if it was paused."""
        return self._pauses.pop(phone, None) is not None

    def gate(self, phone: str, blocked_code: int | None, now: float) -> Gate:
        """May a message of `phone` go now? `blocked_code` is the tenant's in the loaded
        config (see the module docstring's table)."""
        pause = self._pauses.get(phone)
        if blocked_code is not None:
            if pause is not None and not pause.confirmed:
                self._pauses[phone] = replace(pause, confirmed=True)
            return Gate(Verdict.HOLD, blocked_code)
        if pause is None:
            return SEND
        if pause.confirmed:  # the operator had the block and has cleared it
            del self._pauses[phone]
            return SEND
        if now >= pause.probe_at:
            self._pauses[phone] = replace(pause, probe_at=now + self.probe_interval)
            return Gate(Verdict.PROBE, pause.code)
        return Gate(Verdict.HOLD, pause.code)

    def holding(self, phone: str) -> int | None:
        """The code of the number's pause, if it has one (no side effects): a message let go
        before the pause began is held after its wait for the limits."""
        pause = self._pauses.get(phone)
        return pause.code if pause is not None else None


class Debounce:
    """At most one event per key per `interval` seconds (signals to the operator); keys older
    than the interval are forgotten once the table grows past `limit`."""

    def __init__(self, interval: float, limit: int = 10_000) -> None:
        self.interval = interval
        self.limit = limit
        self._last: dict[Hashable, float] = {}

    def due(self, key: Hashable, now: float) -> bool:
        last = self._last.get(key)
        return last is None or now - last >= self.interval

    def mark(self, key: Hashable, now: float) -> None:
        self._last[key] = now
        if len(self._last) > self.limit:
            self._last = {k: t for k, t in self._last.items() if now - t < self.interval}
