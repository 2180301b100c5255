"""Token renewal, as pure decisions: when to renew, whether to refresh now, what to report.

Renewal is timed like cert-manager's: when a third of the token's lifetime is left (or
`spec.rotation.renewBefore` before expiry). With strategy External the operator warns at
renewal time and again when a tenth of the lifetime is left; with strategy Refresh it
refreshes at renewal time (see refresh.py), backing off after failures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.conditions import Condition, Reason
from whatsapp_operator.model.fragment import AuditNote, Event, Fragment
from whatsapp_operator.model.recheck import parse_time

ASSUMED_LIFETIME = timedelta(days=60)  # Meta's expiring system user tokens
RETRY_CAP = timedelta(hours=1)


def renewal_time(
    issued_at: datetime | None, expires_at: datetime | None, renew_before: timedelta | None
) -> datetime | None:
    """When to renew; None for a token that never expires."""
    if expires_at is None:
        return None
    if renew_before is not None:
        return expires_at - renew_before
    lifetime = (expires_at - issued_at) if issued_at is not None else ASSUMED_LIFETIME
    return expires_at - max(lifetime, timedelta(0)) / 3


def expiring_soon_time(issued_at: datetime | None, expires_at: datetime) -> datetime:
    lifetime = (expires_at - issued_at) if issued_at is not None else ASSUMED_LIFETIME
    return expires_at - max(lifetime, timedelta(0)) / 10


def retry_delay(failures: int) -> timedelta:
    """After the n-th failed refresh: 30 s doubling, capped at an hour."""
    # The exponent is bounded: 2.0 ** n overflows timedelta (and then float) after ~45
    # failures, long after the cap applies.
    return min(RETRY_CAP, timedelta(seconds=30 * 2.0 ** min(max(0, failures - 1), 32)))


@dataclass(frozen=True)
class RotationState:
    """status.rotation as stored."""

    last_refresh_at: datetime | None = None
    previous_fingerprint: str | None = None
    previous_retire_at: datetime | None = None
    failures: int = 0
    next_attempt_at: datetime | None = None
    last_error: str = ""  # the failed step and why (never a token)

    @classmethod
    def from_status(cls, status: Mapping[str, Any]) -> RotationState:
        raw = status.get("rotation") or {}
        return cls(
            parse_time(raw.get("lastRefreshAt")),
            raw.get("previousTokenFingerprint"),
            parse_time(raw.get("previousTokenRetireAt")),
            int(raw.get("failures") or 0),
            parse_time(raw.get("nextAttemptAt")),
            str(raw.get("lastError") or ""),
        )

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"failures": self.failures}
        for key, when in (
            ("lastRefreshAt", self.last_refresh_at),
            ("previousTokenRetireAt", self.previous_retire_at),
            ("nextAttemptAt", self.next_attempt_at),
        ):
            if when is not None:
                out[key] = c.rfc3339(when)
        if self.previous_fingerprint:
            out["previousTokenFingerprint"] = self.previous_fingerprint
        if self.last_error:
            out["lastError"] = self.last_error[:500]
        return out


@dataclass(frozen=True)
class RefreshOutcome:
    """One refresh attempt (refresh.py): ok, or the step that failed and why."""

    ok: bool
    step: str
    message: str
    at: datetime
    previous_fingerprint: str | None = None


def refresh_due(
    *, strategy: str, renewal: datetime | None, now: datetime, forced: bool, state: RotationState
) -> bool:
    if strategy != "Refresh":
        return False
    if forced:
        return True
    if renewal is None or now < renewal:
        return False
    return state.next_attempt_at is None or now >= state.next_attempt_at


def after_refresh(state: RotationState, outcome: RefreshOutcome, grace: timedelta) -> RotationState:
    if outcome.ok:
        return RotationState(outcome.at, outcome.previous_fingerprint, outcome.at + grace, 0, None)
    failures = state.failures + 1
    return RotationState(
        state.last_refresh_at, state.previous_fingerprint, state.previous_retire_at,
        failures, outcome.at + retry_delay(failures), outcome.message,
    )  # fmt: skip


def retired(state: RotationState) -> RotationState:
    return replace(state, previous_fingerprint=None, previous_retire_at=None)


@dataclass(frozen=True)
class TokenTimes:
    issued_at: datetime | None
    expires_at: datetime | None

    @classmethod
    def from_status(cls, token: Mapping[str, Any]) -> TokenTimes:
        return cls(parse_time(token.get("issuedAt")), parse_time(token.get("expiresAt")))


def rotation_condition(
    *,
    strategy: str,
    times: TokenTimes,
    renew_before: timedelta | None,
    state: RotationState,
    outcome: RefreshOutcome | None,
    token_ok: bool,
    now: datetime,
) -> Condition:
    """The TokenRotation condition: False is a warning, never a reason to stop sending."""
    t = c.TOKEN_ROTATION
    if not token_ok:
        return Condition(t, "Unknown", Reason.NOT_CHECKED, "no valid token to renew")
    if times.expires_at is None:
        return Condition(t, "True", Reason.NEVER_EXPIRES, "the token never expires")
    renewal = renewal_time(times.issued_at, times.expires_at, renew_before)
    assert renewal is not None
    expires = c.rfc3339(times.expires_at)
    if strategy == "Refresh":
        if (outcome is not None and not outcome.ok) or (outcome is None and state.failures):
            when = c.rfc3339(state.next_attempt_at) if state.next_attempt_at else "soon"
            what = (
                outcome.message
                if outcome is not None
                else (state.last_error or "the last refresh failed")
            )
            return Condition(
                t, "False", Reason.REFRESH_FAILED,
                f"{what}; the current token (expires {expires}) stays; next attempt {when}",
            )  # fmt: skip
        if state.last_refresh_at is not None and renewal > now:
            return Condition(
                t, "True", Reason.REFRESHED,
                f"refreshed at {c.rfc3339(state.last_refresh_at)}; expires {expires}; "
                f"next renewal {c.rfc3339(renewal)}",
            )  # fmt: skip
        return Condition(
            t, "True", Reason.RENEWAL_SCHEDULED,
            f"the operator refreshes the token at {c.rfc3339(renewal)} (expires {expires})",
        )  # fmt: skip
    if now >= expiring_soon_time(times.issued_at, times.expires_at):
        return Condition(
            t, "False", Reason.EXPIRING_SOON,
            f"the token expires at {expires}: replace it in the Secret now",
        )  # fmt: skip
    if now >= renewal:
        return Condition(
            t, "False", Reason.RENEWAL_DUE,
            f"the token expires at {expires}: replace it in the Secret (strategy External)",
        )  # fmt: skip
    return Condition(
        t, "True", Reason.RENEWAL_SCHEDULED,
        f"renewal due at {c.rfc3339(renewal)} (expires {expires}; strategy External)",
    )  # fmt: skip


def next_rotation_moment(
    *, strategy: str, times: TokenTimes, renew_before: timedelta | None, state: RotationState,
    now: datetime,
) -> datetime | None:  # fmt: skip
    """The next moment the rotation picture changes (to wake the tenant then)."""
    moments: list[datetime] = []
    if times.expires_at is not None:
        renewal = renewal_time(times.issued_at, times.expires_at, renew_before)
        assert renewal is not None
        moments += [renewal, expiring_soon_time(times.issued_at, times.expires_at),
                    times.expires_at]  # fmt: skip
    if strategy == "Refresh":
        moments += [m for m in (state.next_attempt_at, state.previous_retire_at) if m]
    future = [m for m in moments if m > now]
    return min(future, default=None)


@dataclass(frozen=True)
class RotationInputs:
    """What the token stage learned about renewal this pass (`rotation_fragment` reports it)."""

    strategy: str
    renew_before: timedelta | None
    times: TokenTimes
    state: RotationState  # after this pass
    outcome: RefreshOutcome | None = None  # a refresh attempted this pass
    retired: str | None = None  # what retiring the previous token did this pass
    token_ok: bool = True

    def condition(self, now: datetime) -> Condition:
        return rotation_condition(
            strategy=self.strategy, times=self.times, renew_before=self.renew_before,
            state=self.state, outcome=self.outcome, token_ok=self.token_ok, now=now,
        )  # fmt: skip

    def renewal(self) -> datetime | None:
        return renewal_time(self.times.issued_at, self.times.expires_at, self.renew_before)


def rotation_fragment(
    rotation: RotationInputs, stored: Mapping[str, Any], now: datetime, fingerprint: str | None
) -> Fragment:
    """The token stage's report: `TokenRotation` (a warning beside Ready), the renewal time
    for `status.token`, `status.rotation` (for strategy Refresh, or once there is one), the
    refresh and retirement Events and audit entries. `fingerprint`: the current token's."""
    renewal = rotation.renewal()
    keep_state = rotation.strategy == "Refresh" or bool(stored.get("rotation"))
    return Fragment(
        condition=rotation.condition(now),
        status={"rotation": rotation.state.to_status()} if keep_state else {},
        token={"renewalTime": c.rfc3339(renewal)} if renewal is not None else {},
        events=tuple(_events(rotation)),
        audit=tuple(_audit(rotation, stored, fingerprint)),
    )


def _events(rotation: RotationInputs) -> list[Event]:
    events = []
    if rotation.outcome is not None:
        if rotation.outcome.ok:
            events.append(Event("Normal", Reason.TOKEN_REFRESHED, rotation.outcome.message))
        else:
            events.append(Event("Warning", Reason.REFRESH_FAILED, rotation.outcome.message))
    if rotation.retired:
        events.append(Event("Normal", Reason.PREVIOUS_TOKEN_RETIRED, rotation.retired))
    return events


def _audit(
    rotation: RotationInputs, stored: Mapping[str, Any], fingerprint: str | None
) -> list[AuditNote]:
    notes = []
    if rotation.outcome is not None:
        outcome = rotation.outcome
        event = "refreshed" if outcome.ok else "refresh_failed"
        notes.append(AuditNote(event, outcome.previous_fingerprint or fingerprint, outcome.message))
    if rotation.retired and "revoked" in rotation.retired:
        previous = (stored.get("rotation") or {}).get("previousTokenFingerprint")
        notes.append(AuditNote("revoked", previous, rotation.retired))
    return notes
