"""The rotation and API-version parts of `decide` (operator/whatsapp_operator/tenant/compose.py):
warning conditions, their Events (once per new reason), refresh Events, and that neither
touches Ready."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.conditions import Condition, Reason
from whatsapp_operator.model.facts import CheckResult, TokenFacts, Verdict
from whatsapp_operator.model.fragment import Decision
from whatsapp_operator.model.secret_data import SecretOutcome, fingerprint, resolve_token
from whatsapp_operator.tenant.compose import Inputs, decide
from whatsapp_operator.tokens.rotation import (
    RefreshOutcome,
    RotationInputs,
    RotationState,
    TokenTimes,
    after_refresh,
)
from whatsapp_operator.tokens.stage import api_version_condition

TOKEN = "EAAGdecideROTATIONtoken0123456789abcdef"
T0 = datetime(2026, 9, 1, 12, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)
ISSUED = T0
EXPIRES = T0 + 60 * DAY
RENEWAL = T0 + 40 * DAY
SOON = T0 + 54 * DAY
TIMES = TokenTimes(ISSUED, EXPIRES)
GRACE = timedelta(hours=24)
FRESH = RotationState()
OK = RefreshOutcome(True, "done", "token refreshed (sha256:aaaa)", RENEWAL, fingerprint(TOKEN))
FAILED = RefreshOutcome(False, "exchange", "exchange: Graph API error 190", RENEWAL)
RETIRED = "previous token sha256:bbbb removed from the Secret and revoked at Meta"


def secret() -> SecretOutcome:
    return resolve_token(
        {"accessToken": base64.b64encode(TOKEN.encode()).decode()}, "m", "accessToken"
    )


def good_check(at: datetime, times: TokenTimes = TIMES) -> CheckResult:
    return CheckResult(
        Verdict("True", Reason.TOKEN_VALID, "token valid (SYSTEM_USER)"),
        Verdict("True", Reason.PHONE_NUMBER_VERIFIED, "phone number verified"),
        TokenFacts(
            is_valid=True,
            type="SYSTEM_USER",
            issued_at=times.issued_at,
            expires_at=times.expires_at,
            scopes=("whatsapp_business_management", "whatsapp_business_messaging"),
        ),
        checked_at=at,
    )


def inputs(
    now: datetime,
    status: Mapping[str, Any],
    rotation: RotationInputs | None = None,
    api_version: Condition | None = None,
    check: CheckResult | None = None,
) -> Inputs:
    return Inputs(
        generation=1,
        spec_error="",
        secret=secret(),
        conflict=None,
        check=check,
        status=status,
        now=now,
        rotation=rotation,
        api_version=api_version,
    )


def ready_status() -> dict[str, Any]:
    """A Ready tenant checked at T0, before any rotation or version condition existed."""
    return decide(inputs(T0, {}, check=good_check(T0))).status


def external(times: TokenTimes = TIMES, renew_before: timedelta | None = None) -> RotationInputs:
    return RotationInputs("External", renew_before, times, FRESH)


def refresh(
    state: RotationState = FRESH,
    outcome: RefreshOutcome | None = None,
    retired: str | None = None,
) -> RotationInputs:
    return RotationInputs("Refresh", None, TIMES, state, outcome, retired)


def api(version: str, today: datetime) -> Condition:
    return api_version_condition(version, today)


def cond(decision: Decision, type_: str) -> Mapping[str, Any]:
    found = c.find(decision.status["conditions"], type_)
    assert found is not None, type_
    return found


# --- sequences of passes: which Events each pass posts --------------------------------------


@dataclass(frozen=True)
class Step:
    now: datetime
    rotation: RotationInputs | None
    events: list[tuple[str, str]]
    api_version: Condition | None = None
    messages: list[str] = field(default_factory=list)  # of the events, when given


@dataclass(frozen=True)
class Sequence:
    id: str
    steps: list[Step]


WARN_DUE = ("Warning", Reason.RENEWAL_DUE)
WARN_SOON = ("Warning", Reason.EXPIRING_SOON)
REFRESHED = ("Normal", Reason.TOKEN_REFRESHED)
REFRESH_FAILED = ("Warning", Reason.REFRESH_FAILED)
RETIRED_EVENT = ("Normal", Reason.PREVIOUS_TOKEN_RETIRED)
FAILED_ONCE = after_refresh(FRESH, FAILED, GRACE)
FAILED_TWICE = after_refresh(FAILED_ONCE, FAILED, GRACE)
SUCCEEDED = after_refresh(FAILED_TWICE, OK, GRACE)

SEQUENCES = [
    Sequence("External: RenewalDue warns once, ExpiringSoon warns again", [
        Step(T0 + DAY, external(), []),
        Step(RENEWAL - timedelta(seconds=1), external(), []),
        Step(RENEWAL, external(), [WARN_DUE]),
        Step(RENEWAL + DAY, external(), []),
        Step(SOON - DAY, external(), []),
        Step(SOON, external(), [WARN_SOON]),
        Step(SOON + DAY, external(), []),
        Step(EXPIRES - timedelta(seconds=1), external(), []),
    ]),
    Sequence("External: a replaced token schedules again, then warns again", [
        Step(RENEWAL, external(), [WARN_DUE]),
        Step(RENEWAL + DAY, external(TokenTimes(RENEWAL, RENEWAL + 60 * DAY)), []),
        Step(RENEWAL + 40 * DAY, external(TokenTimes(RENEWAL, RENEWAL + 60 * DAY)), [WARN_DUE]),
    ]),
    Sequence("External: the warning Event carries the condition's message", [
        Step(RENEWAL, external(), [WARN_DUE], messages=[
            "the token expires at 2026-10-31T12:00:00Z: replace it in the Secret "
            "(strategy External)"]),
    ]),
    Sequence("Refresh: Normal TokenRefreshed per successful refresh", [
        Step(RENEWAL, refresh(after_refresh(FRESH, OK, GRACE), OK), [REFRESHED],
             messages=[OK.message]),
        Step(RENEWAL + timedelta(minutes=1), refresh(after_refresh(FRESH, OK, GRACE)), []),
        Step(RENEWAL + DAY, refresh(after_refresh(FRESH, OK, GRACE), OK), [REFRESHED]),
    ]),
    Sequence("Refresh: Warning RefreshFailed per failed attempt, none between attempts", [
        Step(RENEWAL, refresh(FAILED_ONCE, FAILED), [REFRESH_FAILED],
             messages=[FAILED.message]),
        Step(RENEWAL + timedelta(seconds=10), refresh(FAILED_ONCE), []),
        Step(RENEWAL + timedelta(seconds=30), refresh(FAILED_TWICE, FAILED), [REFRESH_FAILED]),
        Step(RENEWAL + timedelta(minutes=2), refresh(SUCCEEDED, OK), [REFRESHED]),
    ]),
    Sequence("Refresh: PreviousTokenRetired once the previous token is dropped", [
        Step(RENEWAL, refresh(after_refresh(FRESH, OK, GRACE), OK), [REFRESHED]),
        Step(RENEWAL + GRACE, refresh(FRESH, retired=RETIRED), [RETIRED_EVENT],
             messages=[RETIRED]),
        Step(RENEWAL + GRACE + DAY, refresh(FRESH), []),
    ]),
    Sequence("ApiVersionDeprecated warns once, ApiVersionExpired warns again", [
        Step(datetime(2026, 12, 1, tzinfo=UTC), None, [("Warning", "ApiVersionDeprecated")],
             api("v21.0", datetime(2026, 12, 1, tzinfo=UTC))),
        Step(datetime(2026, 12, 2, tzinfo=UTC), None, [],
             api("v21.0", datetime(2026, 12, 2, tzinfo=UTC))),
        Step(datetime(2027, 1, 22, tzinfo=UTC), None, [("Warning", "ApiVersionExpired")],
             api("v21.0", datetime(2027, 1, 22, tzinfo=UTC))),
        Step(datetime(2027, 1, 23, tzinfo=UTC), None, [],
             api("v21.0", datetime(2027, 1, 23, tzinfo=UTC))),
        Step(datetime(2027, 1, 24, tzinfo=UTC), None, [], api("v25.0", T0)),
    ]),
    Sequence("a current or unknown API version posts nothing", [
        Step(T0, None, [], api("v25.0", T0)),
        Step(T0 + DAY, None, [], api("v19.5", T0)),
    ]),
    Sequence("rotation and version warnings come in one pass, after nothing else", [
        Step(RENEWAL, refresh(FAILED_ONCE, FAILED), [("Warning", "ApiVersionExpired"),
                                                    REFRESH_FAILED],
             api("v20.0", RENEWAL)),
    ]),
]  # fmt: skip


@pytest.mark.parametrize("seq", [pytest.param(x, id=x.id) for x in SEQUENCES])
def test_events_over_passes(seq: Sequence) -> None:
    status: Mapping[str, Any] = ready_status()
    for number, step in enumerate(seq.steps):
        decision = decide(inputs(step.now, status, step.rotation, step.api_version))
        assert [(e.type, e.reason) for e in decision.events] == step.events, number
        if step.messages:
            assert [e.message for e in decision.events] == step.messages, number
        assert decision.ready, number
        status = decision.status


def test_first_pass_posts_ready_and_the_warning() -> None:
    decision = decide(inputs(RENEWAL, {}, external(), check=good_check(RENEWAL)))
    assert [(e.type, e.reason) for e in decision.events] == [("Normal", Reason.READY), WARN_DUE]


# --- Ready is not affected ------------------------------------------------------------------


@dataclass(frozen=True)
class ReadyCase:
    id: str
    now: datetime
    rotation: RotationInputs | None
    api_version: Condition | None
    rotation_status: tuple[str, str] | None
    api_status: tuple[str, str] | None


DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)
READY_CASES = [
    ReadyCase("all well", T0 + DAY, external(), api("v25.0", T0),
              ("True", Reason.RENEWAL_SCHEDULED), ("True", "Current")),
    ReadyCase("TokenRotation False RenewalDue", RENEWAL, external(), None,
              ("False", Reason.RENEWAL_DUE), None),
    ReadyCase("TokenRotation False ExpiringSoon", SOON, external(), None,
              ("False", Reason.EXPIRING_SOON), None),
    ReadyCase("TokenRotation False RefreshFailed", RENEWAL, refresh(FAILED_ONCE, FAILED), None,
              ("False", Reason.REFRESH_FAILED), None),
    ReadyCase("ApiVersionSupported False deprecated", DEC_1, None, api("v21.0", DEC_1), None,
              ("False", "ApiVersionDeprecated")),
    ReadyCase("ApiVersionSupported False expired", T0, None, api("v18.0", T0), None,
              ("False", "ApiVersionExpired")),
    ReadyCase("ApiVersionSupported Unknown", T0, None, api("nonsense", T0), None,
              ("Unknown", "ApiVersionUnknown")),
    ReadyCase("both False", RENEWAL, refresh(FAILED_TWICE), api("v18.0", RENEWAL),
              ("False", Reason.REFRESH_FAILED), ("False", "ApiVersionExpired")),
]  # fmt: skip


@pytest.mark.parametrize("case", [pytest.param(x, id=x.id) for x in READY_CASES])
def test_warning_conditions_never_touch_ready(case: ReadyCase) -> None:
    decision = decide(
        inputs(case.now, ready_status(), case.rotation, case.api_version, good_check(case.now))
    )
    assert decision.ready
    ready = cond(decision, c.READY)
    assert (ready["status"], ready["reason"]) == ("True", Reason.READY)
    found = {x["type"]: (x["status"], x["reason"]) for x in decision.status["conditions"]}
    assert found.get(c.TOKEN_ROTATION) == case.rotation_status
    assert found.get(c.API_VERSION) == case.api_status
    assert [x["type"] for x in decision.status["conditions"]][-1] == c.READY


# --- status.token.renewalTime and status.rotation -------------------------------------------


@dataclass(frozen=True)
class StatusCase:
    id: str
    rotation: RotationInputs | None
    renewal_time: str | None
    rotation_status: dict[str, Any] | None
    stored_rotation: dict[str, Any] | None = None


STATUS_CASES = [
    StatusCase("External: renewalTime, no status.rotation", external(), "2026-10-11T12:00:00Z",
               None),
    StatusCase("External with renewBefore: renewalTime moves", external(renew_before=7 * DAY),
               "2026-10-24T12:00:00Z", None),
    StatusCase("never-expiring token: no renewalTime", external(TokenTimes(T0, None)), None,
               None),
    StatusCase("no rotation inputs: no renewalTime, no status.rotation", None, None, None),
    StatusCase("Refresh: status.rotation as stored state", refresh(FAILED_ONCE, FAILED),
               "2026-10-11T12:00:00Z", FAILED_ONCE.to_status()),
    StatusCase("Refresh: fresh state is written too", refresh(), "2026-10-11T12:00:00Z",
               {"failures": 0}),
    StatusCase("External after Refresh: the stored rotation is kept up to date", external(),
               "2026-10-11T12:00:00Z", {"failures": 0},
               stored_rotation=FAILED_ONCE.to_status()),
]  # fmt: skip


@pytest.mark.parametrize("case", [pytest.param(x, id=x.id) for x in STATUS_CASES])
def test_rotation_status(case: StatusCase) -> None:
    status = ready_status()
    if case.stored_rotation is not None:
        status["rotation"] = case.stored_rotation
    now = T0 + DAY
    decision = decide(inputs(now, status, case.rotation, check=good_check(now)))
    token = decision.status["token"]
    assert token.get("renewalTime") == case.renewal_time
    assert token["fingerprint"] == fingerprint(TOKEN)
    assert decision.status.get("rotation") == case.rotation_status


def test_renewal_time_without_a_check_this_pass() -> None:
    status = ready_status()
    decision = decide(inputs(T0 + DAY, status, external()))
    assert decision.status["token"]["renewalTime"] == "2026-10-11T12:00:00Z"
    assert decision.status["token"]["expiresAt"] == status["token"]["expiresAt"]
