"""The pure decide step of a reconcile (operator/whatsapp_operator/tenant/compose.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.claims import Claim, find_conflict
from whatsapp_operator.model.conditions import Reason
from whatsapp_operator.model.facts import (
    CheckResult,
    PhoneFacts,
    TokenFacts,
    Verdict,
    not_checked,
    unavailable,
)
from whatsapp_operator.model.fragment import Decision
from whatsapp_operator.model.secret_data import SecretOutcome, fingerprint, resolve_token
from whatsapp_operator.tenant.compose import Inputs, decide

TOKEN = "EAAGm0PX4ZCpsBAKZBdecideTOKEN1234567890"
NEW_TOKEN = "EAAGm0PX4ZCpsBAKZBrotatedTOKEN0987654321"
T0 = datetime(2026, 9, 1, 12, 0, 0, tzinfo=UTC)
GRACE = timedelta(minutes=15)


def secret(token: str | None = TOKEN) -> SecretOutcome:
    data = None if token is None else {"accessToken": base64.b64encode(token.encode()).decode()}
    return resolve_token(data, "meta", "accessToken")


TOKEN_FACTS = TokenFacts(
    is_valid=True,
    type="SYSTEM_USER",
    expires_at=T0 + timedelta(days=60),
    scopes=("whatsapp_business_management", "whatsapp_business_messaging"),
)
PHONE_FACTS = PhoneFacts(display_phone_number="+1 555-0100", quality_rating="GREEN")


def good_check(at: datetime) -> CheckResult:
    return CheckResult(
        Verdict("True", Reason.TOKEN_VALID, "token valid (SYSTEM_USER)"),
        Verdict("True", Reason.PHONE_NUMBER_VERIFIED, "phone number verified"),
        TOKEN_FACTS,
        PHONE_FACTS,
        checked_at=at,
    )


def down_check() -> CheckResult:
    return CheckResult(unavailable("debug_token: Graph API timed out"), not_checked("skipped"))


def throttled_check() -> CheckResult:
    return CheckResult(
        Verdict("Unknown", Reason.GRAPH_API_THROTTLED, "Meta error 4"), not_checked("skipped")
    )


def expired_check(at: datetime) -> CheckResult:
    return CheckResult(
        Verdict("False", Reason.TOKEN_EXPIRED, "Meta reports the token invalid"),
        not_checked("token not valid"),
        replace(TOKEN_FACTS, is_valid=False),
        checked_at=at,
    )


def inputs(
    *,
    status: Mapping[str, Any] | None = None,
    check: CheckResult | None = None,
    now: datetime = T0,
    secret_outcome: SecretOutcome | None = None,
    spec_error: str = "",
    conflict: Any = None,
    generation: int = 1,
) -> Inputs:
    return Inputs(
        generation=generation,
        spec_error=spec_error,
        secret=secret() if secret_outcome is None and not spec_error else secret_outcome,
        conflict=conflict,
        check=check,
        status=status or {},
        now=now,
        grace=GRACE,
    )


def ready_status() -> dict[str, Any]:
    """The status of a tenant that became Ready at T0."""
    return decide(inputs(check=good_check(T0))).status


def cond(decision: Decision, type_: str) -> Mapping[str, Any]:
    found = c.find(decision.status["conditions"], type_)
    assert found is not None, type_
    return found


def summary(decision: Decision) -> dict[str, tuple[str, str]]:
    return {x["type"]: (x["status"], x["reason"]) for x in decision.status["conditions"]}


DUPLICATE = find_conflict(
    Claim("2026-02-01T00:00:00Z", "shop", "acme", "uid-me"),
    "acme",
    [Claim("2026-01-01T00:00:00Z", "older-ns", "first", "uid-older")],
    "1",
    [],
)


@dataclass
class Case:
    id: str
    inputs: Inputs
    conditions: dict[str, tuple[str, str]]
    events: list[tuple[str, str]] = field(default_factory=list)
    in_ready_message: str = ""


CASES = [
    Case(
        "Ready when Secret, token and phone are good",
        inputs(check=good_check(T0)),
        {
            c.SECRET_RESOLVED: ("True", Reason.RESOLVED),
            c.TOKEN_VALID: ("True", Reason.TOKEN_VALID),
            c.PHONE_NUMBER_VERIFIED: ("True", Reason.PHONE_NUMBER_VERIFIED),
            c.READY: ("True", Reason.READY),
        },
        [("Normal", Reason.READY)],
    ),
    Case(
        "not Ready if Secret is missing",
        inputs(secret_outcome=secret(None)),
        {
            c.SECRET_RESOLVED: ("False", Reason.SECRET_NOT_FOUND),
            c.TOKEN_VALID: ("Unknown", Reason.NOT_CHECKED),
            c.PHONE_NUMBER_VERIFIED: ("Unknown", Reason.NOT_CHECKED),
            c.READY: ("False", Reason.SECRET_NOT_FOUND),
        },
        [("Warning", Reason.SECRET_NOT_FOUND)],
        "'meta' not found",
    ),
    Case(
        "not Ready if the Secret of a Ready tenant disappears",
        inputs(status=ready_status(), secret_outcome=secret(None), now=T0 + timedelta(hours=1)),
        {
            c.SECRET_RESOLVED: ("False", Reason.SECRET_NOT_FOUND),
            c.TOKEN_VALID: ("Unknown", Reason.NOT_CHECKED),
            c.PHONE_NUMBER_VERIFIED: ("Unknown", Reason.NOT_CHECKED),
            c.READY: ("False", Reason.SECRET_NOT_FOUND),
        },
        [("Warning", Reason.SECRET_NOT_FOUND)],
    ),
    Case(
        "not Ready if the spec is invalid",
        inputs(spec_error="spec is invalid: wabaId: String should match pattern"),
        {
            c.SECRET_RESOLVED: ("Unknown", Reason.NOT_CHECKED),
            c.TOKEN_VALID: ("Unknown", Reason.NOT_CHECKED),
            c.PHONE_NUMBER_VERIFIED: ("Unknown", Reason.NOT_CHECKED),
            c.READY: ("False", Reason.INVALID_SPEC),
        },
        [("Warning", Reason.INVALID_SPEC)],
        "wabaId",
    ),
    Case(
        "duplicate tenantId names the older tenant",
        inputs(conflict=DUPLICATE),
        {
            c.SECRET_RESOLVED: ("True", Reason.RESOLVED),
            c.TOKEN_VALID: ("Unknown", Reason.NOT_CHECKED),
            c.PHONE_NUMBER_VERIFIED: ("Unknown", Reason.NOT_CHECKED),
            c.READY: ("False", Reason.DUPLICATE_TENANT_ID),
        },
        [("Warning", Reason.DUPLICATE_TENANT_ID)],
        "older-ns/first",
    ),
    Case(
        "Graph API down keeps a Ready tenant Ready within grace",
        inputs(status=ready_status(), check=down_check(), now=T0 + timedelta(hours=1)),
        {
            c.SECRET_RESOLVED: ("True", Reason.RESOLVED),
            c.TOKEN_VALID: ("Unknown", Reason.GRAPH_API_UNAVAILABLE),
            c.PHONE_NUMBER_VERIFIED: ("Unknown", Reason.NOT_CHECKED),
            c.READY: ("True", Reason.READY),
        },
        [],
        "still Ready",
    ),
    Case(
        "Graph API throttling keeps a Ready tenant Ready within grace",
        inputs(status=ready_status(), check=throttled_check(), now=T0 + timedelta(hours=1)),
        {
            c.SECRET_RESOLVED: ("True", Reason.RESOLVED),
            c.TOKEN_VALID: ("Unknown", Reason.GRAPH_API_THROTTLED),
            c.PHONE_NUMBER_VERIFIED: ("Unknown", Reason.NOT_CHECKED),
            c.READY: ("True", Reason.READY),
        },
    ),
    Case(
        "new tenant with Graph down is not Ready",
        inputs(check=down_check()),
        {
            c.SECRET_RESOLVED: ("True", Reason.RESOLVED),
            c.TOKEN_VALID: ("Unknown", Reason.GRAPH_API_UNAVAILABLE),
            c.PHONE_NUMBER_VERIFIED: ("Unknown", Reason.NOT_CHECKED),
            c.READY: ("Unknown", Reason.GRAPH_API_UNAVAILABLE),
        },
        [("Warning", Reason.GRAPH_API_UNAVAILABLE)],
    ),
    Case(
        "no check this time carries the stored verdicts",
        inputs(status=ready_status(), now=T0 + timedelta(minutes=30)),
        {
            c.SECRET_RESOLVED: ("True", Reason.RESOLVED),
            c.TOKEN_VALID: ("True", Reason.TOKEN_VALID),
            c.PHONE_NUMBER_VERIFIED: ("True", Reason.PHONE_NUMBER_VERIFIED),
            c.READY: ("True", Reason.READY),
        },
    ),
    Case(
        "Warning event with the failure reason",
        inputs(status=ready_status(), check=expired_check(T0 + timedelta(hours=1))),
        {
            c.SECRET_RESOLVED: ("True", Reason.RESOLVED),
            c.TOKEN_VALID: ("False", Reason.TOKEN_EXPIRED),
            c.PHONE_NUMBER_VERIFIED: ("Unknown", Reason.NOT_CHECKED),
            c.READY: ("False", Reason.TOKEN_EXPIRED),
        },
        [("Warning", Reason.TOKEN_EXPIRED)],
        "invalid",
    ),
    Case(
        "a Ready tenant whose token is revoked is not Ready at once, grace or not",
        inputs(status=ready_status(), check=expired_check(T0 + timedelta(minutes=1))),
        {
            c.SECRET_RESOLVED: ("True", Reason.RESOLVED),
            c.TOKEN_VALID: ("False", Reason.TOKEN_EXPIRED),
            c.PHONE_NUMBER_VERIFIED: ("Unknown", Reason.NOT_CHECKED),
            c.READY: ("False", Reason.TOKEN_EXPIRED),
        },
        [("Warning", Reason.TOKEN_EXPIRED)],
    ),
]


@pytest.mark.parametrize("case", [pytest.param(x, id=x.id) for x in CASES])
def test_decide(case: Case) -> None:
    decision = decide(case.inputs)
    assert summary(decision) == case.conditions
    assert [(e.type, e.reason) for e in decision.events] == case.events
    assert case.in_ready_message in cond(decision, c.READY)["message"]
    assert decision.ready is (case.conditions[c.READY][0] == "True")
    assert decision.status["observedGeneration"] == case.inputs.generation
    for event in decision.events:
        assert event.message == cond(decision, c.READY)["message"]


@pytest.mark.parametrize("case", [pytest.param(x, id=x.id) for x in CASES])
def test_status_and_events_never_contain_the_token(case: Case) -> None:
    decision = decide(case.inputs)
    for token in (TOKEN, NEW_TOKEN):
        assert token not in repr(decision)
        assert token not in json.dumps(decision.status)


def test_graph_api_down_past_the_grace_makes_ready_unknown() -> None:
    """Graph API down past the grace -> Ready Unknown GraphApiUnavailable."""
    first_failure = T0 + timedelta(hours=1)
    status = ready_status()
    steps = [
        (first_failure, "True", []),
        (first_failure + GRACE - timedelta(seconds=1), "True", []),
        (first_failure + GRACE, "Unknown", [("Warning", Reason.GRAPH_API_UNAVAILABLE)]),
        (first_failure + GRACE + timedelta(minutes=5), "Unknown", []),
    ]
    for now, ready, events in steps:
        decision = decide(inputs(status=status, check=down_check(), now=now))
        assert cond(decision, c.READY)["status"] == ready, now
        assert [(e.type, e.reason) for e in decision.events] == events, now
        status = decision.status
    assert cond(decision, c.READY)["reason"] == Reason.GRAPH_API_UNAVAILABLE
    assert cond(decision, c.TOKEN_VALID)["lastTransitionTime"] == c.rfc3339(first_failure)
    recovered = decide(inputs(status=status, check=good_check(now), now=now))
    assert [(e.type, e.reason) for e in recovered.events] == [("Normal", Reason.READY)]


def test_grace_starts_over_after_a_recovery() -> None:
    status = ready_status()
    first = T0 + timedelta(hours=1)
    status = decide(inputs(status=status, check=down_check(), now=first)).status
    back = first + timedelta(minutes=10)
    status = decide(inputs(status=status, check=good_check(back), now=back)).status
    again = back + timedelta(minutes=10)  # 20 min after the first failure, 10 after the second
    decision = decide(inputs(status=status, check=down_check(), now=again))
    assert decision.ready


def test_no_check_this_time_keeps_the_stored_token_and_phone_facts() -> None:
    status = ready_status()
    decision = decide(inputs(status=status, now=T0 + timedelta(minutes=30)))
    assert decision.status["token"] == status["token"]
    assert decision.status["phone"] == status["phone"]
    assert decision.status["conditions"] == status["conditions"]


def test_failed_check_keeps_the_stored_phone_facts() -> None:
    status = ready_status()
    decision = decide(inputs(status=status, check=down_check(), now=T0 + timedelta(hours=1)))
    assert decision.status["phone"] == PHONE_FACTS.to_status()
    assert decision.status["token"] == status["token"]


def test_token_changed_drops_stale_token_facts() -> None:
    status = ready_status()
    assert status["token"]["expiresAt"]
    decision = decide(
        inputs(status=status, secret_outcome=secret(NEW_TOKEN), now=T0 + timedelta(minutes=5))
    )
    assert decision.status["token"] == {"fingerprint": fingerprint(NEW_TOKEN)}


def test_check_writes_fresh_token_facts() -> None:
    at = T0 + timedelta(hours=2)
    decision = decide(inputs(status=ready_status(), check=good_check(at), now=at))
    token = decision.status["token"]
    assert token["fingerprint"] == fingerprint(TOKEN)
    assert token["lastValidatedAt"] == c.rfc3339(at)
    assert token["type"] == "SYSTEM_USER"


def test_events_only_on_ready_transitions_none_on_a_repeat() -> None:
    """events only on Ready transitions: none on a repeat."""
    sequence = [
        (inputs(secret_outcome=secret(None)), [("Warning", Reason.SECRET_NOT_FOUND)]),
        (inputs(secret_outcome=secret(None)), []),
        (inputs(check=good_check(T0)), [("Normal", Reason.READY)]),
        (inputs(check=good_check(T0 + timedelta(hours=1))), []),
        (inputs(), []),
        (inputs(check=expired_check(T0)), [("Warning", Reason.TOKEN_EXPIRED)]),
        (inputs(check=expired_check(T0)), []),
    ]
    status: Mapping[str, Any] = {}
    for step, (partial, expected) in enumerate(sequence):
        decision = decide(replace(partial, status=status))
        assert [(e.type, e.reason) for e in decision.events] == expected, step
        status = decision.status


def test_repeat_keeps_transition_times() -> None:
    status = ready_status()
    later = T0 + timedelta(hours=3)
    decision = decide(inputs(status=status, check=good_check(later), now=later))
    assert [x["lastTransitionTime"] for x in decision.status["conditions"]] == [c.rfc3339(T0)] * 4


def test_generation_is_observed() -> None:
    decision = decide(inputs(check=good_check(T0), generation=5))
    assert decision.status["observedGeneration"] == 5
    assert {x["observedGeneration"] for x in decision.status["conditions"]} == {5}


def user_check(at: datetime, kind: str | None = "USER", ok: bool = True) -> CheckResult:
    facts = replace(TOKEN_FACTS, type=kind)
    verdict = Verdict("True", Reason.TOKEN_VALID, "token valid (USER)")
    if not ok:
        verdict = Verdict("False", Reason.WABA_NOT_IN_SCOPE, "another WABA")
    return replace(good_check(at), token_verdict=verdict, token=facts)


def stored_type(kind: str | None) -> dict[str, Any]:
    status = ready_status()
    if kind is None:
        status["token"].pop("type", None)
    else:
        status["token"]["type"] = kind
    return status


@dataclass(frozen=True)
class UserTokenCase:
    id: str
    stored: str | None  # status.token.type before the pass (None: no stored type)
    check: CheckResult | None
    warned: bool


LATER = T0 + timedelta(hours=1)
USER_TOKEN_CASES = [
    UserTokenCase("first check finds a USER token", "SYSTEM_USER", user_check(LATER), True),
    UserTokenCase("a new tenant's first check", None, user_check(LATER), True),
    UserTokenCase("still a USER token: no second Event", "USER", user_check(LATER), False),
    UserTokenCase("no check this pass", "SYSTEM_USER", None, False),
    UserTokenCase("a system user token", "USER", user_check(LATER, "SYSTEM_USER"), False),
    UserTokenCase("failed check without facts", "SYSTEM_USER", down_check(), False),
    UserTokenCase(
        "a USER token that fails for another reason", None, user_check(LATER, ok=False), True
    ),
]


@pytest.mark.parametrize("case", USER_TOKEN_CASES, ids=lambda case: case.id)
def test_a_user_token_warns_once(case: UserTokenCase) -> None:
    decision = decide(inputs(status=stored_type(case.stored), check=case.check, now=LATER))
    warnings = [e for e in decision.events if e.reason == Reason.USER_TOKEN]
    assert len(warnings) == (1 if case.warned else 0)
    for event in warnings:
        assert event.type == "Warning"
        assert "system-user tokens in production" in event.message
        assert TOKEN not in event.message


def test_a_user_token_keeps_the_tenant_ready() -> None:
    first = decide(inputs(check=user_check(T0)))
    assert first.ready
    assert first.status["token"]["type"] == "USER"
    later = decide(inputs(status=first.status, check=user_check(LATER), now=LATER))
    assert later.ready
    assert [e.reason for e in later.events] == []
