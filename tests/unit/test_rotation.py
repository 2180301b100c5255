"""Token renewal as pure decisions (operator/whatsapp_operator/tokens/rotation.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.conditions import Reason
from whatsapp_operator.tokens.rotation import (
    RefreshOutcome,
    RotationInputs,
    RotationState,
    TokenTimes,
    after_refresh,
    expiring_soon_time,
    next_rotation_moment,
    refresh_due,
    renewal_time,
    retired,
    retry_delay,
    rotation_condition,
)

T0 = datetime(2026, 9, 1, 12, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
ISSUED = T0
EXPIRES = T0 + 60 * DAY
RENEWAL = T0 + 40 * DAY  # a third of 60 days left
SOON = T0 + 54 * DAY  # a tenth of 60 days left
TIMES = TokenTimes(ISSUED, EXPIRES)
NEVER = TokenTimes(T0, None)
FRESH = RotationState()


# --- renewal_time / expiring_soon_time / retry_delay -------------------------------------


@dataclass(frozen=True)
class RenewalCase:
    id: str
    issued_at: datetime | None
    expires_at: datetime | None
    renew_before: timedelta | None
    expected: datetime | None


RENEWAL_CASES = [
    RenewalCase("60-day token renews with 20 days left", ISSUED, EXPIRES, None, RENEWAL),
    RenewalCase("30-day token renews with 10 days left", T0, T0 + 30 * DAY, None, T0 + 20 * DAY),
    RenewalCase("3-hour token renews with an hour left", T0, T0 + timedelta(hours=3), None,
                T0 + timedelta(hours=2)),
    RenewalCase("renewBefore overrides the third", ISSUED, EXPIRES, 7 * DAY, EXPIRES - 7 * DAY),
    RenewalCase("renewBefore overrides the third with an unknown issue time", None, EXPIRES,
                timedelta(hours=36), EXPIRES - timedelta(hours=36)),
    RenewalCase("renewBefore zero renews at expiry", ISSUED, EXPIRES, timedelta(0), EXPIRES),
    RenewalCase("unknown issued_at assumes 60 days", None, EXPIRES, None, EXPIRES - 20 * DAY),
    RenewalCase("unknown issued_at assumes 60 days for a short token too", None,
                T0 + timedelta(hours=3), None, T0 + timedelta(hours=3) - 20 * DAY),
    RenewalCase("issued after expiry (clock skew) renews at expiry", EXPIRES + DAY, EXPIRES, None,
                EXPIRES),
    RenewalCase("never-expiring token has no renewal", ISSUED, None, None, None),
    RenewalCase("never-expiring token has no renewal even with renewBefore", ISSUED, None,
                7 * DAY, None),
    RenewalCase("never-expiring token of unknown age has no renewal", None, None, None, None),
]  # fmt: skip


@pytest.mark.parametrize("case", [pytest.param(x, id=x.id) for x in RENEWAL_CASES])
def test_renewal_time(case: RenewalCase) -> None:
    assert renewal_time(case.issued_at, case.expires_at, case.renew_before) == case.expected


@pytest.mark.parametrize(
    ("issued_at", "expires_at", "expected"),
    [
        pytest.param(ISSUED, EXPIRES, SOON, id="60-day token: 6 days left"),
        pytest.param(T0, T0 + 10 * DAY, T0 + 9 * DAY, id="10-day token: 1 day left"),
        pytest.param(None, EXPIRES, EXPIRES - 6 * DAY, id="unknown issued_at assumes 60 days"),
        pytest.param(EXPIRES + DAY, EXPIRES, EXPIRES, id="issued after expiry: at expiry"),
    ],
)
def test_expiring_soon_time(
    issued_at: datetime | None, expires_at: datetime, expected: datetime
) -> None:
    assert expiring_soon_time(issued_at, expires_at) == expected


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        pytest.param(0, timedelta(seconds=30), id="no failure yet: 30 s"),
        pytest.param(1, timedelta(seconds=30), id="first failure: 30 s"),
        pytest.param(2, timedelta(minutes=1), id="second failure: 1 min"),
        pytest.param(3, timedelta(minutes=2), id="third failure: 2 min"),
        pytest.param(7, timedelta(minutes=32), id="seventh failure: 32 min"),
        pytest.param(8, timedelta(hours=1), id="eighth failure: capped at 1 h"),
        pytest.param(9, timedelta(hours=1), id="ninth failure: capped at 1 h"),
        pytest.param(46, timedelta(hours=1), id="two days of failures: still 1 h"),
        pytest.param(2000, timedelta(hours=1), id="thousands of failures: still 1 h"),
    ],
)
def test_retry_delay(failures: int, expected: timedelta) -> None:
    assert retry_delay(failures) == expected


# --- RotationState ------------------------------------------------------------------------

FULL = RotationState(
    last_refresh_at=T0,
    previous_fingerprint="sha256:0123456789abcdef",
    previous_retire_at=T0 + DAY,
    failures=2,
    next_attempt_at=T0 + timedelta(minutes=1),
    last_error="exchange: Graph API error 4",
)


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(FRESH, id="fresh state"),
        pytest.param(FULL, id="every field set"),
        pytest.param(RotationState(failures=3, next_attempt_at=T0), id="failures only"),
        pytest.param(RotationState(T0, "sha256:aa", T0 + DAY), id="after a refresh"),
        pytest.param(RotationState(failures=1, last_error="verify: x"), id="an error only"),
        pytest.param(retired(FULL), id="after retirement"),
    ],
)
def test_rotation_state_round_trip(state: RotationState) -> None:
    assert RotationState.from_status({"rotation": state.to_status()}) == state


def test_rotation_state_keeps_a_long_error_short() -> None:
    stored = RotationState(failures=1, last_error="x" * 2000).to_status()
    assert stored["lastError"] == "x" * 500


def test_rotation_state_to_status_names_the_fields() -> None:
    assert FULL.to_status() == {
        "failures": 2,
        "lastRefreshAt": "2026-09-01T12:00:00Z",
        "previousTokenFingerprint": "sha256:0123456789abcdef",
        "previousTokenRetireAt": "2026-09-02T12:00:00Z",
        "nextAttemptAt": "2026-09-01T12:01:00Z",
        "lastError": "exchange: Graph API error 4",
    }
    assert FRESH.to_status() == {"failures": 0}


@pytest.mark.parametrize(
    "status",
    [
        pytest.param({}, id="no rotation in the status"),
        pytest.param({"rotation": None}, id="rotation null"),
        pytest.param({"rotation": {}}, id="rotation empty"),
        pytest.param(
            {"rotation": {"lastRefreshAt": "yesterday", "nextAttemptAt": 5, "failures": None}},
            id="unreadable times are ignored",
        ),
    ],
)
def test_rotation_state_from_an_empty_status(status: dict[str, object]) -> None:
    assert RotationState.from_status(status) == FRESH


# --- refresh_due --------------------------------------------------------------------------

BACKOFF_END = RENEWAL + timedelta(minutes=5)
BACKING_OFF = RotationState(failures=1, next_attempt_at=BACKOFF_END)


@dataclass(frozen=True)
class DueCase:
    id: str
    strategy: str
    renewal: datetime | None
    now: datetime
    forced: bool
    state: RotationState
    due: bool


DUE_CASES = [
    DueCase("External never refreshes after renewal", "External", RENEWAL, RENEWAL + DAY, False,
            FRESH, False),
    DueCase("External never refreshes, even when forced", "External", RENEWAL, T0, True, FRESH,
            False),
    DueCase("Refresh: not before renewal", "Refresh", RENEWAL, RENEWAL - SECOND, False, FRESH,
            False),
    DueCase("Refresh: due at renewal", "Refresh", RENEWAL, RENEWAL, False, FRESH, True),
    DueCase("Refresh: due after renewal", "Refresh", RENEWAL, RENEWAL + DAY, False, FRESH, True),
    DueCase("Refresh: forced before renewal", "Refresh", RENEWAL, T0, True, FRESH, True),
    DueCase("Refresh: forced during backoff", "Refresh", RENEWAL, RENEWAL, True, BACKING_OFF,
            True),
    DueCase("Refresh: forced on a never-expiring token", "Refresh", None, T0, True, FRESH, True),
    DueCase("Refresh: never-expiring token is never due", "Refresh", None, T0 + 1000 * DAY,
            False, FRESH, False),
    DueCase("Refresh: waits out the backoff", "Refresh", RENEWAL,
            BACKOFF_END - SECOND, False, BACKING_OFF, False),
    DueCase("Refresh: due when the backoff ends", "Refresh", RENEWAL,
            BACKOFF_END, False, BACKING_OFF, True),
    DueCase("Refresh: due after the backoff", "Refresh", RENEWAL, RENEWAL + DAY, False,
            BACKING_OFF, True),
]  # fmt: skip


@pytest.mark.parametrize("case", [pytest.param(x, id=x.id) for x in DUE_CASES])
def test_refresh_due(case: DueCase) -> None:
    due = refresh_due(
        strategy=case.strategy,
        renewal=case.renewal,
        now=case.now,
        forced=case.forced,
        state=case.state,
    )
    assert due is case.due


# --- after_refresh / retired --------------------------------------------------------------

AT = RENEWAL + timedelta(minutes=3)
GRACE = timedelta(hours=24)
OK = RefreshOutcome(True, "done", "token refreshed (sha256:new)", AT, "sha256:old")
FAILED = RefreshOutcome(False, "exchange", "exchange: Graph API error 190", AT)


@dataclass(frozen=True)
class AfterCase:
    id: str
    state: RotationState
    outcome: RefreshOutcome
    expected: RotationState


AFTER_CASES = [
    AfterCase("success from a fresh state keeps the previous token for the grace", FRESH, OK,
              RotationState(AT, "sha256:old", AT + GRACE, 0, None)),
    AfterCase("success after failures resets failures and backoff", BACKING_OFF, OK,
              RotationState(AT, "sha256:old", AT + GRACE, 0, None)),
    AfterCase("success replaces an older previous token", FULL, OK,
              RotationState(AT, "sha256:old", AT + GRACE, 0, None)),
    AfterCase("first failure schedules a retry in 30 s and keeps the error", FRESH, FAILED,
              RotationState(None, None, None, 1, AT + timedelta(seconds=30), FAILED.message)),
    AfterCase("third failure schedules a retry in 2 min", RotationState(failures=2), FAILED,
              RotationState(None, None, None, 3, AT + timedelta(minutes=2), FAILED.message)),
    AfterCase("failure keeps the last refresh and the previous token", FULL, FAILED,
              RotationState(T0, FULL.previous_fingerprint, FULL.previous_retire_at, 3,
                            AT + timedelta(minutes=2), FAILED.message)),
    AfterCase("failure after two days of failures retries within the hour",
              RotationState(failures=60), FAILED,
              RotationState(None, None, None, 61, AT + timedelta(hours=1), FAILED.message)),
]  # fmt: skip


@pytest.mark.parametrize("case", [pytest.param(x, id=x.id) for x in AFTER_CASES])
def test_after_refresh(case: AfterCase) -> None:
    assert after_refresh(case.state, case.outcome, GRACE) == case.expected


def test_retired_forgets_the_previous_token_only() -> None:
    assert retired(FULL) == RotationState(T0, None, None, 2, FULL.next_attempt_at, FULL.last_error)
    assert retired(FRESH) == FRESH


# --- rotation_condition -------------------------------------------------------------------

REFRESHED = RotationState(T0, "sha256:old", T0 + GRACE)
FAILING = RotationState(failures=2, next_attempt_at=RENEWAL + timedelta(minutes=1))
FAILING_WITH_ERROR = RotationState(
    failures=2,
    next_attempt_at=RENEWAL + timedelta(minutes=1),
    last_error="verify: the new token is not usable",
)


@dataclass(frozen=True)
class CondCase:
    id: str
    strategy: str
    now: datetime
    status: str
    reason: str
    words: tuple[str, ...] = ()
    times: TokenTimes = TIMES
    renew_before: timedelta | None = None
    state: RotationState = FRESH
    outcome: RefreshOutcome | None = None
    token_ok: bool = True


COND_CASES = [
    CondCase("NotChecked when the token is not ok (External)", "External", RENEWAL, "Unknown",
             Reason.NOT_CHECKED, token_ok=False),
    CondCase("NotChecked when the token is not ok (Refresh)", "Refresh", RENEWAL, "Unknown",
             Reason.NOT_CHECKED, token_ok=False, state=FAILING),
    CondCase("NeverExpires (External)", "External", T0, "True", Reason.NEVER_EXPIRES,
             times=NEVER),
    CondCase("NeverExpires (Refresh)", "Refresh", T0, "True", Reason.NEVER_EXPIRES, times=NEVER),
    CondCase("External: RenewalScheduled at first", "External", T0, "True",
             Reason.RENEWAL_SCHEDULED, ("2026-10-11T12:00:00Z", "2026-10-31T12:00:00Z",
                                        "External")),
    CondCase("External: RenewalScheduled a second before renewal", "External", RENEWAL - SECOND,
             "True", Reason.RENEWAL_SCHEDULED),
    CondCase("External: RenewalDue at renewal", "External", RENEWAL, "False",
             Reason.RENEWAL_DUE, ("2026-10-31T12:00:00Z", "replace it in the Secret")),
    CondCase("External: RenewalDue a second before expiring soon", "External", SOON - SECOND,
             "False", Reason.RENEWAL_DUE),
    CondCase("External: ExpiringSoon with a tenth left", "External", SOON, "False",
             Reason.EXPIRING_SOON, ("2026-10-31T12:00:00Z", "now")),
    CondCase("External: ExpiringSoon past expiry", "External", EXPIRES + DAY, "False",
             Reason.EXPIRING_SOON),
    CondCase("External: renewBefore moves RenewalDue later", "External", RENEWAL + DAY, "True",
             Reason.RENEWAL_SCHEDULED, ("2026-10-24T12:00:00Z",), renew_before=7 * DAY),
    CondCase("External: renewBefore RenewalDue", "External", EXPIRES - 7 * DAY, "False",
             Reason.RENEWAL_DUE, renew_before=7 * DAY),
    CondCase("External: unknown issue time assumes 60 days", "External", EXPIRES - 20 * DAY,
             "False", Reason.RENEWAL_DUE, times=TokenTimes(None, EXPIRES)),
    CondCase("Refresh: RenewalScheduled names the renewal time", "Refresh", T0, "True",
             Reason.RENEWAL_SCHEDULED, ("2026-10-11T12:00:00Z", "2026-10-31T12:00:00Z")),
    CondCase("Refresh: Refreshed while the new token's renewal is ahead", "Refresh",
             T0 + DAY, "True", Reason.REFRESHED,
             ("refreshed at 2026-09-01T12:00:00Z", "2026-10-11T12:00:00Z"), state=REFRESHED),
    CondCase("Refresh: RefreshFailed this pass names the error and the next attempt",
             "Refresh", AT, "False", Reason.REFRESH_FAILED,
             ("exchange: Graph API error 190", "2026-10-11T12:01:00Z", "stays"),
             state=FAILING, outcome=FAILED),
    CondCase("Refresh: RefreshFailed on a later pass names the next attempt", "Refresh", AT,
             "False", Reason.REFRESH_FAILED,
             ("the last refresh failed", "next attempt 2026-10-11T12:01:00Z"), state=FAILING),
    CondCase("Refresh: RefreshFailed on a later pass names the stored error", "Refresh", AT,
             "False", Reason.REFRESH_FAILED, ("verify: the new token is not usable",
                                              "2026-10-11T12:01:00Z"),
             state=FAILING_WITH_ERROR),
    CondCase("Refresh: RefreshFailed without a next attempt says soon", "Refresh", AT,
             "False", Reason.REFRESH_FAILED, ("next attempt soon",),
             state=RotationState(failures=1)),
    CondCase("Refresh: a failure outweighs an earlier refresh", "Refresh", AT, "False",
             Reason.REFRESH_FAILED, state=RotationState(T0, failures=1, next_attempt_at=AT),
             outcome=FAILED),
]  # fmt: skip


@pytest.mark.parametrize("case", [pytest.param(x, id=x.id) for x in COND_CASES])
def test_rotation_condition(case: CondCase) -> None:
    cond = rotation_condition(
        strategy=case.strategy,
        times=case.times,
        renew_before=case.renew_before,
        state=case.state,
        outcome=case.outcome,
        token_ok=case.token_ok,
        now=case.now,
    )
    assert cond.type == c.TOKEN_ROTATION
    assert (cond.status, cond.reason) == (case.status, case.reason)
    for word in case.words:
        assert word in cond.message


def test_external_warnings_come_in_order_as_time_passes() -> None:
    reasons = []
    for day in range(0, 62):
        cond = rotation_condition(
            strategy="External", times=TIMES, renew_before=None, state=FRESH, outcome=None,
            token_ok=True, now=T0 + day * DAY,
        )  # fmt: skip
        if not reasons or reasons[-1] != cond.reason:
            reasons.append(cond.reason)
    assert reasons == [Reason.RENEWAL_SCHEDULED, Reason.RENEWAL_DUE, Reason.EXPIRING_SOON]


# --- next_rotation_moment -----------------------------------------------------------------


@dataclass(frozen=True)
class MomentCase:
    id: str
    strategy: str
    now: datetime
    expected: datetime | None
    times: TokenTimes = TIMES
    state: RotationState = FRESH
    renew_before: timedelta | None = None


MOMENT_CASES = [
    MomentCase("never-expiring token: nothing to wake for", "External", T0, None, times=NEVER),
    MomentCase("External: renewal first", "External", T0, RENEWAL),
    MomentCase("External: renewal with renewBefore", "External", T0, EXPIRES - 7 * DAY,
               renew_before=7 * DAY),
    MomentCase("External: renewal itself is not in the future", "External", RENEWAL, SOON),
    MomentCase("External: expiring soon after renewal", "External", RENEWAL + DAY, SOON),
    MomentCase("External: expiry after expiring soon", "External", SOON + DAY, EXPIRES),
    MomentCase("External: nothing after expiry", "External", EXPIRES, None),
    MomentCase("External ignores next attempt and retirement", "External", T0, RENEWAL,
               state=RotationState(T0, "sha256:old", T0 + DAY, 1, T0 + SECOND)),
    MomentCase("Refresh: renewal first", "Refresh", T0, RENEWAL),
    MomentCase("Refresh: next attempt during backoff", "Refresh", RENEWAL + SECOND,
               BACKOFF_END, state=BACKING_OFF),
    MomentCase("Refresh: a past next attempt is ignored", "Refresh", RENEWAL + DAY, SOON,
               state=BACKING_OFF),
    MomentCase("Refresh: retirement of the previous token", "Refresh", T0 + timedelta(hours=2),
               T0 + GRACE, state=REFRESHED),
    MomentCase("Refresh: retirement of a never-expiring token's predecessor", "Refresh",
               T0 + timedelta(hours=2), T0 + GRACE, state=REFRESHED, times=NEVER),
    MomentCase("Refresh: the retirement moment itself is not in the future", "Refresh",
               T0 + GRACE, RENEWAL, state=REFRESHED),
]  # fmt: skip


@pytest.mark.parametrize("case", [pytest.param(x, id=x.id) for x in MOMENT_CASES])
def test_next_rotation_moment(case: MomentCase) -> None:
    moment = next_rotation_moment(
        strategy=case.strategy,
        times=case.times,
        renew_before=case.renew_before,
        state=case.state,
        now=case.now,
    )
    assert moment == case.expected


# --- RotationInputs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", [pytest.param(x, id=x.id) for x in COND_CASES if x.outcome is None]
)
def test_rotation_inputs_condition_is_rotation_condition(case: CondCase) -> None:
    inputs = RotationInputs(
        case.strategy, case.renew_before, case.times, case.state, token_ok=case.token_ok
    )
    assert inputs.condition(case.now) == rotation_condition(
        strategy=case.strategy, times=case.times, renew_before=case.renew_before,
        state=case.state, outcome=None, token_ok=case.token_ok, now=case.now,
    )  # fmt: skip


def test_rotation_inputs_pass_the_outcome_on() -> None:
    inputs = RotationInputs("Refresh", None, TIMES, FAILING, FAILED)
    assert inputs.condition(AT).reason == Reason.REFRESH_FAILED
    assert FAILED.message in inputs.condition(AT).message


@pytest.mark.parametrize(
    ("times", "renew_before", "expected"),
    [
        pytest.param(TIMES, None, RENEWAL, id="a third left"),
        pytest.param(TIMES, 7 * DAY, EXPIRES - 7 * DAY, id="renewBefore"),
        pytest.param(NEVER, None, None, id="never expires"),
    ],
)
def test_rotation_inputs_renewal(
    times: TokenTimes, renew_before: timedelta | None, expected: datetime | None
) -> None:
    assert RotationInputs("External", renew_before, times, FRESH).renewal() == expected


def test_rotation_inputs_defaults() -> None:
    inputs = RotationInputs("External", None, TIMES, FRESH)
    assert (inputs.outcome, inputs.retired, inputs.token_ok) == (None, None, True)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        pytest.param(
            {"issuedAt": "2026-09-01T12:00:00Z", "expiresAt": "2026-10-31T12:00:00Z"},
            TIMES,
            id="both times",
        ),
        pytest.param(
            {"expiresAt": "2026-10-31T12:00:00Z"}, TokenTimes(None, EXPIRES), id="no issue time"
        ),
        pytest.param({"fingerprint": "sha256:x"}, TokenTimes(None, None), id="no times"),
    ],
)
def test_token_times_from_status(token: dict[str, str], expected: TokenTimes) -> None:
    assert TokenTimes.from_status(token) == expected
