"""Embedded Signup's pure decisions: the spec, the step order, conditions and judges."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from whatsapp_graph.errors import ErrorClass, GraphApiErrorInfo, classify
from whatsapp_operator.signup import flow, judge
from whatsapp_operator.signup.flow import (
    APP_SUBSCRIBED,
    CODE_EXCHANGED,
    NUMBER_REGISTERED,
    PHONE_NUMBER_SELECTED,
    READY,
    TENANT_CREATED,
    WABA_DISCOVERED,
    Reason,
    StepResult,
    apply_result,
    next_step,
    notices,
    planned_steps,
)
from whatsapp_operator.signup.model import (
    CODE_FINGERPRINT_ANNOTATION,
    SIGNUP_ANNOTATION,
    PhoneNumberSelector,
    SecretValue,
    SessionInfo,
    SignupSpec,
    dns_name,
    parse_signup_spec,
    secret_value,
    signup_body,
    tenant_body,
    token_secret_body,
    valid_tenant_id,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
BASE_SPEC = {
    "codeSecretRef": {"name": "acme-code"},
    "appCredentialsSecretRef": {"name": "meta-app"},
    "tenant": {"tenantId": "t_acme"},
}


def spec(**extra: Any) -> SignupSpec:
    parsed, error = parse_signup_spec({**BASE_SPEC, **extra})
    assert parsed is not None, error
    return parsed


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def cond(type_: str, status: str, reason: str = "R", message: str = "m") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-11-01T11:00:00Z",
    }


def status_of(*conditions: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"conditions": list(conditions), **fields}


def info(code: int, subcode: int | None = None, message: str = "msg") -> GraphApiErrorInfo:
    return GraphApiErrorInfo(code, subcode, "OAuthException", message, None, None, 400)


# --- the spec -----------------------------------------------------------------------------


def test_spec_defaults() -> None:
    s = spec()
    assert s.code_secret_ref.code_key == "code"
    assert s.code_secret_ref.pin_key == "pin"
    assert s.app_credentials_secret_ref.app_id_key == "appId"
    assert s.app_credentials_secret_ref.app_secret_key == "appSecret"
    assert s.tenant.sender_pool == "default"
    assert s.tenant.deletion_policy == "Deactivate"
    assert s.subscribe_app is True
    assert s.register_number is False
    assert s.tenant_name("signup-a") == "signup-a"
    assert spec(tenant={"tenantId": "t", "name": "shop"}).tenant_name("signup-a") == "shop"


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        pytest.param(
            {"tenant": {"tenantId": "x" * 51}}, "tenant.tenantId", id="tenant id too long"
        ),
        pytest.param({"tenant": {"tenantId": "_x"}}, "tenant.tenantId", id="tenant id pattern"),
        pytest.param({"codeSecretRef": None}, "codeSecretRef", id="no code secret"),
        pytest.param({"session": {"wabaId": "12a"}}, "session.wabaId", id="session WABA id"),
        pytest.param(
            {"session": {"phoneNumberId": "1" * 31}}, "session.phoneNumberId", id="long id"
        ),
    ],
)
def test_spec_invalid(bad: dict[str, Any], needle: str) -> None:
    parsed, error = parse_signup_spec({**BASE_SPEC, **bad})
    assert parsed is None
    assert needle in error


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("t_a3eecb94bb822a92", True),
        ("A.b-c_1", True),
        ("x" * 50, True),
        ("x" * 51, False),
        ("-x", False),
        ("t a", False),
        ("", False),
        ("é", False),
    ],
)
def test_tenant_id_rule_matches_the_crd(value: str, ok: bool) -> None:
    assert valid_tenant_id(value) is ok


@pytest.mark.parametrize(
    ("data", "ok", "missing", "needle"),
    [
        pytest.param(None, False, True, "not found", id="no Secret"),
        pytest.param({"other": b64("x")}, False, False, "keys present: other", id="no key"),
        pytest.param({"code": "!!!"}, False, False, "base64", id="not base64"),
        pytest.param({"code": b64("  ")}, False, False, "empty", id="blank"),
        pytest.param({"code": b64("a b")}, False, False, "single printable", id="inner space"),
        pytest.param({"code": b64("AQBxyz\n")}, True, False, "", id="trailing newline ok"),
    ],
)
def test_secret_value(data: dict[str, str] | None, ok: bool, missing: bool, needle: str) -> None:
    got = secret_value(data, "acme-code", "code")
    assert got.ok is ok
    assert got.missing is missing
    assert needle in got.message
    if ok:
        assert got.value == "AQBxyz"
    assert "AQBxyz" not in repr(got)


# --- preflight ----------------------------------------------------------------------------

GOOD = SecretValue("v")


@pytest.mark.parametrize(
    ("code", "pin", "app_id", "app_secret", "outcome", "reason"),
    [
        pytest.param(GOOD, None, GOOD, GOOD, None, None, id="all there"),
        pytest.param(
            SecretValue("123456"), SecretValue("123456"), GOOD, GOOD, None, None, id="with a PIN"
        ),
        pytest.param(
            SecretValue(None, "gone", missing=True),
            None,
            GOOD,
            GOOD,
            "retry",
            Reason.CODE_SECRET_NOT_FOUND,
            id="code Secret not yet there",
        ),
        pytest.param(
            SecretValue(None, "no key"),
            None,
            GOOD,
            GOOD,
            "stop",
            Reason.CODE_SECRET_INVALID,
            id="code key missing",
        ),
        pytest.param(
            GOOD,
            SecretValue(None, "no key"),
            GOOD,
            GOOD,
            "stop",
            Reason.PIN_INVALID,
            id="register without a PIN",
        ),
        pytest.param(
            GOOD,
            SecretValue("12345"),
            GOOD,
            GOOD,
            "stop",
            Reason.PIN_INVALID,
            id="PIN not 6 digits",
        ),
        pytest.param(
            GOOD,
            None,
            SecretValue(None, "gone", missing=True),
            GOOD,
            "retry",
            Reason.APP_CREDENTIALS_NOT_FOUND,
            id="app Secret not yet there",
        ),
        pytest.param(
            GOOD,
            None,
            GOOD,
            SecretValue(None, "no key"),
            "stop",
            Reason.APP_CREDENTIALS_INVALID,
            id="app secret key missing",
        ),
    ],
)
def test_preflight(
    code: SecretValue,
    pin: SecretValue | None,
    app_id: SecretValue,
    app_secret: SecretValue,
    outcome: str | None,
    reason: str | None,
) -> None:
    result = judge.preflight(code, pin, app_id, app_secret)
    if outcome is None:
        assert result is None
        return
    assert result is not None
    assert result.outcome == outcome
    assert [(c.type, c.reason) for c in result.conditions] == [(CODE_EXCHANGED, reason)]


# --- the step order -----------------------------------------------------------------------


def test_planned_steps_follow_the_spec() -> None:
    assert planned_steps(spec()) == (
        CODE_EXCHANGED,
        WABA_DISCOVERED,
        PHONE_NUMBER_SELECTED,
        APP_SUBSCRIBED,
        TENANT_CREATED,
    )
    assert NUMBER_REGISTERED in planned_steps(spec(register=True))
    assert APP_SUBSCRIBED not in planned_steps(spec(subscribeApp=False))


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        pytest.param([], CODE_EXCHANGED, id="new signup starts with the exchange"),
        pytest.param([cond(CODE_EXCHANGED, "Unknown")], CODE_EXCHANGED, id="transient: again"),
        pytest.param([cond(CODE_EXCHANGED, "True")], WABA_DISCOVERED, id="continues after"),
        pytest.param([cond(s, "True") for s in flow.STEPS], None, id="complete: nothing left"),
        pytest.param([cond(CODE_EXCHANGED, "False")], None, id="stopped: never again"),
        pytest.param(
            [cond(TENANT_CREATED, "False", Reason.TENANT_EXISTS)],
            None,
            id="a later step's stop also stops",
        ),
        pytest.param(
            [*(cond(s, "True") for s in flow.STEPS[:4]), cond(NUMBER_REGISTERED, "False")],
            None,
            id="registration limit: never calls register again",
        ),
    ],
)
def test_next_step(conditions: list[dict[str, Any]], expected: str | None) -> None:
    assert next_step(spec(register=True), status_of(*conditions)) == expected


def test_signup_active() -> None:
    assert flow.signup_active(None) is False
    assert flow.signup_active({"status": {}}) is True
    assert flow.signup_active({"status": status_of(cond(READY, "True"))}) is False
    assert flow.signup_active({"status": status_of(cond(CODE_EXCHANGED, "False"))}) is False


# --- conditions and status ----------------------------------------------------------------


def apply(status: dict[str, Any], result: StepResult, **spec_extra: Any) -> dict[str, Any]:
    return apply_result(status, result, spec(**spec_extra), tenant="ns/acme", generation=1, now=NOW)


def by_type(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_a_done_step_is_recorded_and_ready_waits_for_the_next() -> None:
    result = flow.done(CODE_EXCHANGED, Reason.EXCHANGED, "ok", tokenFingerprint="sha256:ab")
    new = apply({}, result)
    assert new["tokenFingerprint"] == "sha256:ab"
    assert new["observedGeneration"] == 1
    conds = by_type(new)
    assert conds[CODE_EXCHANGED]["status"] == "True"
    assert conds[READY]["status"] == "Unknown"
    assert conds[READY]["reason"] == Reason.IN_PROGRESS
    assert WABA_DISCOVERED in conds[READY]["message"]
    assert "completedAt" not in new


def test_a_stop_makes_ready_false_with_its_reason() -> None:
    result = flow.stop(CODE_EXCHANGED, Reason.CODE_USED, "used")
    new = apply({}, result)
    ready = by_type(new)[READY]
    assert (ready["status"], ready["reason"]) == ("False", Reason.CODE_USED)
    assert "completedAt" not in new


def test_a_transient_failure_makes_ready_unknown() -> None:
    new = apply({}, flow.retry(CODE_EXCHANGED, Reason.GRAPH_API_UNAVAILABLE, "down"))
    ready = by_type(new)[READY]
    assert (ready["status"], ready["reason"]) == ("Unknown", Reason.GRAPH_API_UNAVAILABLE)


def test_complete_signup_is_ready_in_step_order() -> None:
    status = status_of(*(cond(s, "True") for s in flow.STEPS if s != TENANT_CREATED))
    new = apply(status, flow.done(TENANT_CREATED, Reason.CREATED, "made"), register=True)
    assert [c["type"] for c in new["conditions"]] == list(flow.ORDER)
    ready = by_type(new)[READY]
    assert (ready["status"], ready["reason"]) == ("True", Reason.READY)
    assert "ns/acme" in ready["message"]
    assert new["completedAt"] == "2026-11-01T12:00:00Z"


def test_transition_time_kept_when_status_does_not_flip() -> None:
    first = apply({}, flow.retry(CODE_EXCHANGED, Reason.GRAPH_API_UNAVAILABLE, "down"))
    later = apply_result(
        first,
        flow.retry(CODE_EXCHANGED, Reason.GRAPH_API_THROTTLED, "slow"),
        spec(),
        tenant="ns/acme",
        generation=1,
        now=NOW + timedelta(minutes=5),
    )
    assert (
        by_type(later)[CODE_EXCHANGED]["lastTransitionTime"]
        == by_type(first)[CODE_EXCHANGED]["lastTransitionTime"]
    )


def test_notices_on_changes_only() -> None:
    first = apply({}, flow.done(CODE_EXCHANGED, Reason.EXCHANGED, "token sha256:1"))
    assert [(n.type, n.reason) for n in notices({}, first)] == [("Normal", CODE_EXCHANGED)]
    again = apply(first, StepResult("next", ()))
    assert notices(first, again) == []
    failed = apply(first, flow.stop(WABA_DISCOVERED, Reason.WABA_NOT_FOUND, "none"))
    assert [(n.type, n.reason) for n in notices(first, failed)] == [
        ("Warning", Reason.WABA_NOT_FOUND)
    ]
    flaky = apply(first, flow.retry(WABA_DISCOVERED, Reason.GRAPH_API_UNAVAILABLE, "x"))
    assert [n.reason for n in notices(first, flaky)] == [Reason.GRAPH_API_UNAVAILABLE]
    same = apply(flaky, flow.retry(WABA_DISCOVERED, Reason.GRAPH_API_UNAVAILABLE, "y"))
    assert notices(flaky, same) == []


def test_complete_signup_posts_signup_complete() -> None:
    status = status_of(*(cond(s, "True") for s in flow.STEPS if s != TENANT_CREATED))
    new = apply(status, flow.done(TENANT_CREATED, Reason.CREATED, "made"), register=True)
    assert ("Normal", "SignupComplete") in [(n.type, n.reason) for n in notices(status, new)]


# --- judges -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "subcode", "attempts", "outcome", "reason"),
    [
        pytest.param(100, 36009, 1, "stop", Reason.CODE_USED, id="used code"),
        pytest.param(100, 36007, 1, "stop", Reason.CODE_EXPIRED, id="expired code"),
        pytest.param(100, 36008, 1, "stop", Reason.CODE_INVALID, id="code of another app"),
        pytest.param(100, None, 1, "stop", Reason.CODE_INVALID, id="malformed code"),
        pytest.param(101, None, 1, "stop", Reason.APP_CREDENTIALS_REJECTED, id="unknown app"),
        pytest.param(190, None, 1, "stop", Reason.APP_CREDENTIALS_REJECTED, id="credential"),
        pytest.param(2, None, 1, "retry", Reason.GRAPH_API_UNAVAILABLE, id="transient"),
        pytest.param(4, None, 2, "retry", Reason.GRAPH_API_UNAVAILABLE, id="throttled"),
        pytest.param(1, None, 5, "stop", Reason.EXCHANGE_FAILED, id="transient, attempts spent"),
        pytest.param(368, None, 1, "stop", Reason.EXCHANGE_FAILED, id="blocked"),
    ],
)
def test_exchange_error(
    code: int, subcode: int | None, attempts: int, outcome: str, reason: str
) -> None:
    result = judge.exchange_error(info(code, subcode), classify(code).error_class, attempts)
    assert result.outcome == outcome
    assert [(c.type, c.reason) for c in result.conditions] == [(CODE_EXCHANGED, reason)]


def test_used_code_message_tells_what_to_do() -> None:
    first = judge.exchange_error(info(100, 36009), ErrorClass.PERMANENT, 1).conditions[0]
    assert "new WhatsAppSignup" in first.message
    assert "earlier attempt" not in first.message
    retried = judge.exchange_error(info(100, 36009), ErrorClass.PERMANENT, 2).conditions[0]
    assert "earlier attempt" in retried.message


@pytest.mark.parametrize(
    ("code", "outcome", "reason"),
    [
        (4, "retry", Reason.GRAPH_API_THROTTLED),
        (80007, "retry", Reason.GRAPH_API_THROTTLED),
        (2, "retry", Reason.GRAPH_API_UNAVAILABLE),
        (200, "stop", Reason.PERMISSION_DENIED),
        (190, "stop", Reason.TOKEN_REJECTED),
        (100, "stop", Reason.GRAPH_API_ERROR),
    ],
)
def test_graph_error(code: int, outcome: str, reason: str) -> None:
    result = judge.graph_error(WABA_DISCOVERED, info(code), classify(code).error_class)
    assert (result.outcome, result.conditions[0].reason) == (outcome, reason)


@pytest.mark.parametrize(
    ("data", "waba", "reason"),
    [
        pytest.param(
            {
                "is_valid": True,
                "granular_scopes": [
                    {"scope": "whatsapp_business_management", "target_ids": ["222", "111"]},
                    {"scope": "whatsapp_business_messaging", "target_ids": ["999"]},
                ],
            },
            "222",
            Reason.DISCOVERED,
            id="newest management target first",
        ),
        pytest.param(
            {
                "is_valid": True,
                "granular_scopes": [
                    {"scope": "whatsapp_business_management"},
                    {"scope": "whatsapp_business_messaging", "target_ids": ["999"]},
                ],
            },
            "999",
            Reason.DISCOVERED,
            id="falls back to the messaging targets",
        ),
        pytest.param(
            {"is_valid": True, "granular_scopes": [{"scope": "business_management"}]},
            None,
            Reason.WABA_NOT_FOUND,
            id="no WABA shared",
        ),
        pytest.param(
            {"is_valid": False, "error": {"message": "expired"}},
            None,
            Reason.TOKEN_REJECTED,
            id="token not valid",
        ),
    ],
)
def test_discover_waba(data: dict[str, Any], waba: str | None, reason: str) -> None:
    result = judge.discover_waba(data)
    assert result.conditions[0].reason == reason
    assert result.status.get("wabaId") == waba
    assert result.outcome == ("next" if waba else "stop")


MID_2026 = {  # Meta's mid-2026 signup tokens: manage_events, granular scopes without targets
    "is_valid": True,
    "scopes": [
        "whatsapp_business_management",
        "whatsapp_business_messaging",
        "whatsapp_business_manage_events",
    ],
    "granular_scopes": [
        {"scope": "whatsapp_business_management"},
        {"scope": "whatsapp_business_messaging"},
        {"scope": "whatsapp_business_manage_events"},
    ],
}
TARGETED = {
    "is_valid": True,
    "granular_scopes": [
        {"scope": "whatsapp_business_management", "target_ids": ["222", "111"]},
    ],
}


@pytest.mark.parametrize(
    ("data", "session", "waba", "reason", "needle"),
    [
        pytest.param(
            MID_2026, {"wabaId": "555"}, "555", Reason.DISCOVERED, "grants name no WABA",
            id="no target ids: the session's WABA",
        ),
        pytest.param(
            MID_2026, None, None, Reason.WABA_NOT_FOUND, "spec.session.wabaId",
            id="no target ids and no session: stop",
        ),
        pytest.param(
            MID_2026, {"phoneNumberId": "300"}, None, Reason.WABA_NOT_FOUND, "spec.session",
            id="a session without a WABA id",
        ),
        pytest.param(
            TARGETED, {"wabaId": "111"}, "111", Reason.DISCOVERED, "in the token's grants",
            id="the session picks one of the targets (not the newest)",
        ),
        pytest.param(
            TARGETED, {"wabaId": "999"}, None, Reason.WABA_NOT_FOUND, "222, 111",
            id="the session's WABA is not among the targets: stop",
        ),
        pytest.param(
            {"is_valid": True, "granular_scopes": [
                {"scope": "whatsapp_business_manage_events", "target_ids": ["777"]}]},
            None, "777", Reason.DISCOVERED, "777",
            id="only manage_events names the WABA",
        ),
    ],
)  # fmt: skip
def test_discover_waba_with_the_session(
    data: dict[str, Any],
    session: dict[str, str] | None,
    waba: str | None,
    reason: str,
    needle: str,
) -> None:
    info = SessionInfo.model_validate(session) if session is not None else None
    result = judge.discover_waba(data, info)
    assert (result.conditions[0].reason, result.status.get("wabaId")) == (reason, waba)
    assert needle in result.conditions[0].message
    assert result.outcome == ("next" if waba else "stop")


NUMBERS = [
    {"id": "301", "display_phone_number": "+1 555-0101"},
    {"id": "302", "display_phone_number": "+1 555-0102"},
]


@pytest.mark.parametrize(
    ("numbers", "selector", "chosen", "reason"),
    [
        pytest.param(NUMBERS[:1], None, "301", Reason.SELECTED, id="one number, no selector"),
        pytest.param([], None, None, Reason.NO_PHONE_NUMBERS, id="no numbers"),
        pytest.param(
            NUMBERS,
            None,
            None,
            Reason.PHONE_NUMBER_SELECTOR_REQUIRED,
            id="several numbers need a selector",
        ),
        pytest.param(
            NUMBERS, {"phoneNumberId": "302"}, "302", Reason.SELECTED, id="selector by id"
        ),
        pytest.param(
            NUMBERS,
            {"displayPhoneNumber": "+15550101"},
            "301",
            Reason.SELECTED,
            id="selector by display number, digits compared",
        ),
        pytest.param(
            NUMBERS,
            {"phoneNumberId": "303"},
            None,
            Reason.PHONE_NUMBER_NOT_FOUND,
            id="selector matches none",
        ),
        pytest.param(
            NUMBERS[:1],
            {"phoneNumberId": "302"},
            None,
            Reason.PHONE_NUMBER_NOT_FOUND,
            id="selector must match a single number",
        ),
        pytest.param(
            NUMBERS,
            {"phoneNumberId": "301", "displayPhoneNumber": "+1 555-0102"},
            None,
            Reason.PHONE_NUMBER_NOT_FOUND,
            id="all selector fields must match",
        ),
    ],
)
def test_select_phone(
    numbers: list[dict[str, Any]], selector: dict[str, str] | None, chosen: str | None, reason: str
) -> None:
    sel = PhoneNumberSelector.model_validate(selector) if selector is not None else None
    result = judge.select_phone(numbers, sel, "200")
    assert result.conditions[0].reason == reason
    assert result.status.get("phoneNumberId") == chosen
    if reason == Reason.PHONE_NUMBER_SELECTOR_REQUIRED:
        assert "301" in result.conditions[0].message
        assert "302" in result.conditions[0].message


@pytest.mark.parametrize(
    ("numbers", "selector", "session", "chosen", "reason"),
    [
        pytest.param(NUMBERS, None, "302", "302", Reason.SELECTED, id="the session's number"),
        pytest.param(
            NUMBERS[:1], None, "302", None, Reason.PHONE_NUMBER_NOT_FOUND,
            id="the session's number is not the WABA's: stop",
        ),
        pytest.param(
            NUMBERS, {"phoneNumberId": "302"}, "302", "302", Reason.SELECTED,
            id="selector and session agree",
        ),
        pytest.param(
            NUMBERS, {"phoneNumberId": "301"}, "302", None, Reason.PHONE_NUMBER_NOT_FOUND,
            id="selector and session disagree: stop",
        ),
        pytest.param(
            NUMBERS, {"displayPhoneNumber": "+1 555-0102"}, "302", "302", Reason.SELECTED,
            id="a display selector and the session's id, both matching",
        ),
        pytest.param(
            NUMBERS, {"displayPhoneNumber": "+1 555-0101"}, "302", None,
            Reason.PHONE_NUMBER_NOT_FOUND, id="a display selector naming another number",
        ),
        pytest.param([], None, "302", None, Reason.NO_PHONE_NUMBERS, id="no numbers at all"),
    ],
)  # fmt: skip
def test_select_phone_with_the_session(
    numbers: list[dict[str, Any]],
    selector: dict[str, str] | None,
    session: str,
    chosen: str | None,
    reason: str,
) -> None:
    sel = PhoneNumberSelector.model_validate(selector) if selector is not None else None
    result = judge.select_phone(numbers, sel, "200", session)
    assert (result.conditions[0].reason, result.status.get("phoneNumberId")) == (reason, chosen)
    if reason == Reason.PHONE_NUMBER_NOT_FOUND:
        assert "session" in result.conditions[0].message


@pytest.mark.parametrize(
    ("code", "attempts", "outcome", "reason"),
    [
        pytest.param(133016, 1, "stop", Reason.REGISTRATION_LIMIT_REACHED, id="limit: stop"),
        pytest.param(133005, 1, "stop", Reason.PIN_MISMATCH, id="wrong PIN"),
        pytest.param(131000, 1, "retry", Reason.GRAPH_API_UNAVAILABLE, id="transient"),
        pytest.param(131000, 3, "stop", Reason.REGISTRATION_FAILED, id="transient, spent"),
        pytest.param(133010, 1, "stop", Reason.REGISTRATION_FAILED, id="other registration"),
    ],
)
def test_register_error(code: int, attempts: int, outcome: str, reason: str) -> None:
    result = judge.register_error(info(code), classify(code).error_class, attempts)
    assert (result.outcome, result.conditions[0].reason) == (outcome, reason)
    assert result.conditions[0].type == NUMBER_REGISTERED


def tenant_obj(owner: str | None) -> dict[str, Any]:
    annotations = {SIGNUP_ANNOTATION: owner} if owner else {}
    return {"metadata": {"name": "acme", "annotations": annotations}}


@pytest.mark.parametrize(
    ("tenant", "conflict"),
    [
        pytest.param(None, False, id="no tenant yet"),
        pytest.param(tenant_obj("me"), False, id="ours: a retry"),
        pytest.param(tenant_obj("other"), True, id="another signup's"),
        pytest.param(tenant_obj(None), True, id="made by hand"),
    ],
)
def test_tenant_conflict(tenant: dict[str, Any] | None, conflict: bool) -> None:
    result = judge.tenant_conflict(tenant, "me", "acme")
    assert (result is not None) is conflict
    if result is not None:
        assert result.outcome == "stop"
        assert result.conditions[0].reason == Reason.TENANT_EXISTS


def ann(owner: str | None, code_fp: str = "sha256:c1") -> dict[str, str]:
    out = {CODE_FINGERPRINT_ANNOTATION: code_fp}
    if owner:
        out[SIGNUP_ANNOTATION] = owner
    return out


@pytest.mark.parametrize(
    ("annotations", "tenant_exists", "other_active", "claim"),
    [
        pytest.param(None, False, False, "free", id="no Secret: create it"),
        pytest.param(ann("me"), False, False, "reuse", id="ours, same code: reuse the token"),
        pytest.param(ann("me", "sha256:c2"), True, False, "replace", id="ours, new code"),
        pytest.param(ann(None), False, False, "foreign", id="someone's own Secret"),
        pytest.param(ann("other"), False, True, "busy", id="another signup still running"),
        pytest.param(ann("other"), False, False, "replace", id="a stopped signup's leftover"),
        pytest.param(ann("other"), True, False, "foreign", id="another signup's tenant"),
    ],
)
def test_token_secret_claim(
    annotations: dict[str, str] | None, tenant_exists: bool, other_active: bool, claim: str
) -> None:
    got = judge.token_secret_claim(
        annotations, "me", "sha256:c1", tenant_exists=tenant_exists, other_active=other_active
    )
    assert got == claim


# --- what a signup creates ----------------------------------------------------------------


def test_token_secret_body_names_the_signup_and_code_never_the_values() -> None:
    body = token_secret_body("acme-meta-token", "acme", "EAAtoken", "sha256:c1")
    assert body["metadata"]["annotations"] == {
        SIGNUP_ANNOTATION: "acme",
        CODE_FINGERPRINT_ANNOTATION: "sha256:c1",
    }
    assert body["metadata"]["labels"][SIGNUP_ANNOTATION] == "acme"
    assert base64.b64decode(body["data"]["accessToken"]).decode() == "EAAtoken"
    assert "EAAtoken" not in json.dumps(body["metadata"])


def test_tenant_body() -> None:
    s = spec(tenant={"tenantId": "t_1", "senderPool": "eu", "deletionPolicy": "Retain"})
    body = tenant_body("shop", "signup-1", s, "200", "300")
    assert body["kind"] == "WhatsAppTenant"
    assert body["metadata"] == {"name": "shop", "annotations": {SIGNUP_ANNOTATION: "signup-1"}}
    assert body["spec"] == {
        "tenantId": "t_1",
        "wabaId": "200",
        "phoneNumberId": "300",
        "tokenSecretRef": {"name": "shop-meta-token", "key": "accessToken"},
        "senderPool": "eu",
        "deletionPolicy": "Retain",
        # the signup's app credentials: the tenant's calls carry appsecret_proof
        "rotation": {
            "appCredentialsSecretRef": {
                "name": "meta-app",
                "appIdKey": "appId",
                "appSecretKey": "appSecret",
            }
        },
    }


def test_signup_body_carries_the_session_it_is_given() -> None:
    made = signup_body(
        "s-1", code_secret="c", app_credentials_secret="meta-app", tenant_id="t_1",
        tenant_name="t-1", session={"wabaId": "200", "phoneNumberId": "300"},
    )  # fmt: skip
    parsed, error = parse_signup_spec(made["spec"])
    assert parsed is not None, error
    assert parsed.session == SessionInfo(wabaId="200", phoneNumberId="300")
    plain = signup_body(
        "s-2", code_secret="c", app_credentials_secret="a", tenant_id="t", tenant_name="t"
    )
    assert "session" not in plain["spec"]


def test_tenant_body_takes_the_sessions_business_id() -> None:
    s = spec(session={"wabaId": "200", "phoneNumberId": "300", "businessId": "400"})
    assert tenant_body("shop", "signup-1", s, "200", "300")["spec"]["businessId"] == "400"
    assert "businessId" not in tenant_body("shop", "signup-1", spec(), "200", "300")["spec"]


@pytest.mark.parametrize("tenant_id", ["t_a3eecb94bb822a92", "T_A3EECB94BB822A92", "_", "x" * 50])
def test_dns_name_is_a_label_and_unique_per_tenant_id(tenant_id: str) -> None:
    name = dns_name(tenant_id)
    assert len(name) <= 49
    assert name == name.lower()
    assert name[0].isalnum()
    assert name[-1].isalnum()
    assert all(ch.isalnum() or ch == "-" for ch in name)
    assert dns_name(tenant_id) == name
    assert dns_name(tenant_id + "x") != name


@pytest.mark.parametrize(
    ("claims", "taken"),
    [
        pytest.param([], False, id="nobody has the id"),
        pytest.param(["ns/acme"], False, id="our own tenant (a retry)"),
        pytest.param(["other/shop"], True, id="another tenant, any namespace"),
        pytest.param(["ns/acme", "ns/shop"], True, id="ours and another"),
    ],
)
def test_tenant_id_taken(claims: list[str], taken: bool) -> None:
    result = judge.tenant_id_taken("t_1", claims, "ns/acme")
    assert (result is not None) is taken
    if result is not None:
        assert result.outcome == "stop"
        assert result.conditions[0].reason == Reason.DUPLICATE_TENANT_ID
        assert next(c for c in claims if c != "ns/acme") in result.conditions[0].message
