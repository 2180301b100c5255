"""A WhatsAppApp's pure decisions (operator/whatsapp_operator/apps/): its namespace selector,
its Secrets, Meta's answers, its conditions and Events, when Meta is asked again, and the
index the tenants' passes read."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from whatsapp_graph.errors import ErrorClass, GraphApiErrorInfo, classify
from whatsapp_operator.apps.decide import (
    AppFacts,
    AppReason,
    MetaCheck,
    SecretsOutcome,
    Verified,
    check_due,
    decide_app,
    judge_answer,
    judge_error,
    judge_unavailable,
    read_secrets,
    resolved_app,
)
from whatsapp_operator.apps.index import AppIndex
from whatsapp_operator.apps.model import AppSpec, parse_app_spec
from whatsapp_operator.apps.selector import LabelSelector, selects
from whatsapp_operator.apps.tenant_ref import ResolvedApp
from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.conditions import Reason
from whatsapp_operator.runtime.registry import Flag, Registry

T0 = datetime(2026, 9, 1, 12, 0, 0, tzinfo=UTC)
APP_ID = "424242424242"
APP_SECRET = "0123456789abcdef0123456789abcdef"
VERIFY = "hooks-verify-token-1"
SPEC: dict[str, Any] = {
    "appId": APP_ID,
    "appSecretRef": {"name": "meta-app"},
    "verifyTokenRef": {"name": "meta-app"},
    "namespaceSelector": {"matchLabels": {"whatsapp": "allowed"}},
}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def spec(**changes: Any) -> AppSpec:
    parsed, error = parse_app_spec({**SPEC, **changes})
    assert parsed is not None, error
    return parsed


# --- the namespace selector -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        pytest.param(None, {"a": "b"}, False, id="no selector: no namespace may use the app"),
        pytest.param({}, {}, True, id="empty selector: every namespace"),
        pytest.param({"matchLabels": {"a": "b"}}, {"a": "b", "c": "d"}, True, id="labels match"),
        pytest.param({"matchLabels": {"a": "b"}}, {"a": "x"}, False, id="label value differs"),
        pytest.param({"matchLabels": {"a": "b"}}, {}, False, id="label missing"),
        pytest.param({"matchLabels": {"a": "b"}}, None, False, id="labels unknown: no"),
        pytest.param(
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold", "x"]}]},
            {"tier": "gold"}, True, id="In matches",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]},
            {}, False, id="In needs the label",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["free"]}]},
            {}, True, id="NotIn admits a missing label",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["free"]}]},
            {"tier": "free"}, False, id="NotIn refuses the value",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "team", "operator": "Exists"}]},
            {"team": ""}, True, id="Exists with an empty value",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "legacy", "operator": "DoesNotExist"}]},
            {"legacy": "1"}, False, id="DoesNotExist refuses",
        ),
        pytest.param(
            {"matchLabels": {"a": "b"},
             "matchExpressions": [{"key": "legacy", "operator": "DoesNotExist"}]},
            {"a": "b"}, True, id="labels and expressions together",
        ),
    ],
)  # fmt: skip
def test_selector(
    selector: dict[str, Any] | None, labels: dict[str, str] | None, expected: bool
) -> None:
    parsed = LabelSelector.model_validate(selector) if selector is not None else None
    assert selects(parsed, labels) is expected


@pytest.mark.parametrize(
    ("requirement", "error"),
    [
        pytest.param({"key": "a", "operator": "In"}, "needs values", id="In without values"),
        pytest.param(
            {"key": "a", "operator": "Exists", "values": ["x"]}, "takes no values",
            id="Exists with values",
        ),
        pytest.param({"key": "a", "operator": "Gt", "values": ["1"]}, "operator", id="Gt"),
    ],
)  # fmt: skip
def test_a_bad_requirement_makes_the_spec_invalid(requirement: dict[str, Any], error: str) -> None:
    parsed, why = parse_app_spec({**SPEC, "namespaceSelector": {"matchExpressions": [requirement]}})
    assert parsed is None
    assert error in why


def test_describe_says_what_the_selector_admits() -> None:
    selector = LabelSelector.model_validate(
        {"matchLabels": {"a": "b"},
         "matchExpressions": [{"key": "t", "operator": "NotIn", "values": ["x", "y"]},
                              {"key": "e", "operator": "Exists"}]}
    )  # fmt: skip
    assert selector.describe() == "a=b,t notin (x,y),e"
    assert LabelSelector().describe() == "{} (every namespace)"


def test_spec_defaults_and_secret_names() -> None:
    parsed = spec()
    assert parsed.app_secret_ref.key == "appSecret"
    assert parsed.verify_token_ref.key == "verifyToken"
    assert parsed.secret_names == ("meta-app",)  # one Secret, read once
    assert spec(verifyTokenRef={"name": "hooks"}).secret_names == ("meta-app", "hooks")
    assert parse_app_spec({**SPEC, "appId": "12ab"})[0] is None


# --- the Secrets ----------------------------------------------------------------------------
@dataclass
class SecretCase:
    id: str
    data: Mapping[str, Mapping[str, str] | None]
    reason: str
    message: str = ""
    forbidden: Mapping[str, str] | None = None


GOOD = {"appSecret": b64(APP_SECRET), "verifyToken": b64(VERIFY)}
SECRET_CASES = [
    SecretCase("both values read", {"meta-app": GOOD}, "Resolved", "app secret from ops/meta-app"),
    SecretCase("no Secret", {"meta-app": None}, Reason.SECRET_NOT_FOUND, "'meta-app' not found"),
    SecretCase(
        "no app secret key", {"meta-app": {"verifyToken": b64(VERIFY)}},
        Reason.SECRET_KEY_MISSING, "has no key 'appSecret'",
    ),
    SecretCase(
        "no verify token key", {"meta-app": {"appSecret": b64(APP_SECRET)}},
        Reason.SECRET_KEY_MISSING, "has no key 'verifyToken'",
    ),
    SecretCase(
        "empty app secret", {"meta-app": {**GOOD, "appSecret": ""}},
        AppReason.SECRET_VALUE_INVALID, "not one printable value",
    ),
    SecretCase(
        "verify token with a space inside", {"meta-app": {**GOOD, "verifyToken": b64("a b")}},
        AppReason.SECRET_VALUE_INVALID, "not one printable value",
    ),
    SecretCase(
        "verify token too long for the seed's column",
        {"meta-app": {**GOOD, "verifyToken": b64("v" * 101)}},
        AppReason.SECRET_VALUE_INVALID, "101 characters; at most 100",
    ),
    SecretCase(
        "not base64", {"meta-app": {**GOOD, "appSecret": "%%%"}},
        AppReason.SECRET_VALUE_INVALID, "not one printable value",
    ),
    SecretCase(
        "forbidden", {}, Reason.SECRET_FORBIDDEN, "may not read Secret ops/meta-app",
        forbidden={"meta-app": "HTTP 403"},
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", SECRET_CASES, ids=lambda c: c.id)
def test_read_secrets(case: SecretCase) -> None:
    outcome = read_secrets(spec(), "ops", case.data, case.forbidden)
    assert outcome.verdict.reason == case.reason
    assert case.message in outcome.verdict.message
    assert (outcome.secrets is not None) is (case.reason == "Resolved")
    for secret in (APP_SECRET, VERIFY):
        assert secret not in outcome.verdict.message
        assert secret not in repr(outcome)


def test_the_fingerprint_follows_the_app_secret_not_the_verify_token() -> None:
    one = read_secrets(spec(), "ops", {"meta-app": GOOD}).secrets
    other_verify = {"meta-app": {**GOOD, "verifyToken": b64("another")}}
    two = read_secrets(spec(), "ops", other_verify).secrets
    other_secret = {"meta-app": {**GOOD, "appSecret": b64("f" * 32)}}
    three = read_secrets(spec(), "ops", other_secret).secrets
    assert one is not None
    assert two is not None
    assert three is not None
    assert one.fingerprint == two.fingerprint != three.fingerprint


# --- Meta's answers ---------------------------------------------------------------------------
def info(code: int, subcode: int | None = None, status: int = 400) -> GraphApiErrorInfo:
    return GraphApiErrorInfo(code, subcode, "OAuthException", f"message {code}", None, None, status)


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        pytest.param(info(190), "False", AppReason.APP_SECRET_INVALID,
                     id="190 bad signature: the secret is wrong"),
        pytest.param(info(104), "False", AppReason.APP_SECRET_INVALID, id="104 unreadable token"),
        pytest.param(info(101), "False", Reason.APP_NOT_FOUND, id="101 invalid application id"),
        pytest.param(info(803), "False", Reason.APP_NOT_FOUND, id="803 no such object"),
        pytest.param(info(100, 33), "False", Reason.APP_NOT_FOUND, id="100/33 does not exist"),
        pytest.param(info(4), "Unknown", Reason.GRAPH_API_THROTTLED, id="4 throttled"),
        pytest.param(info(2, status=500), "Unknown", Reason.GRAPH_API_UNAVAILABLE,
                     id="2 temporarily unavailable"),
        pytest.param(info(12345, status=503), "Unknown", Reason.GRAPH_API_UNAVAILABLE,
                     id="unknown code on a 5xx"),
        pytest.param(info(100), "False", AppReason.APP_REJECTED, id="100 another refusal"),
    ],
)  # fmt: skip
def test_judge_error(error: GraphApiErrorInfo, status: str, reason: str) -> None:
    check = judge_error(APP_ID, error, classify(error.code).error_class, T0)
    assert (check.verdict.status, check.verdict.reason) == (status, reason)
    assert check.transient is (status == "Unknown")


def test_judge_answer() -> None:
    good = judge_answer(APP_ID, {"id": APP_ID, "name": "Acme Hooks"}, T0)
    assert (good.verdict.status, good.verdict.reason, good.name) == (
        "True",
        "Verified",
        "Acme Hooks",
    )
    other = judge_answer(APP_ID, {"id": "1", "name": "x"}, T0)
    assert (other.verdict.status, other.verdict.reason) == ("False", AppReason.APP_ID_MISMATCH)
    assert judge_error(APP_ID, info(190), ErrorClass.CREDENTIAL, T0).checked_at == T0


# --- the pass's decision ----------------------------------------------------------------------
RESOLVED = read_secrets(spec(), "ops", {"meta-app": GOOD})
MISSING = read_secrets(spec(), "ops", {"meta-app": None})
VERIFIED = judge_answer(APP_ID, {"id": APP_ID, "name": "Acme Hooks"}, T0)
WRONG_SECRET = judge_error(APP_ID, info(190), ErrorClass.CREDENTIAL, T0)
DOWN = judge_unavailable("app: Graph API timed out")


def cond(type_: str, status: str, reason: str, since: datetime = T0) -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": "",
            "lastTransitionTime": c.rfc3339(since), "observedGeneration": 1}  # fmt: skip


READY_BEFORE = {
    "observedGeneration": 1,
    "appName": "Acme Hooks",
    "lastVerifiedAt": "2026-09-01T11:00:00Z",
    "conditions": [
        cond(c.SECRET_RESOLVED, "True", "Resolved"),
        cond(c.APP_VERIFIED, "True", "Verified"),
        cond(c.READY, "True", Reason.READY),
    ],
}


@dataclass
class PassCase:
    id: str
    secrets: SecretsOutcome | None
    check: MetaCheck | None
    ready: tuple[str, str]
    verified: tuple[str, str]
    status: Mapping[str, Any]
    events: list[tuple[str, str]]
    now: datetime = T0
    spec_ok: bool = True


PASS_CASES = [
    PassCase("Ready once Meta knows the app and its secret", RESOLVED, VERIFIED,
             ("True", "Ready"), ("True", "Verified"), {}, [("Normal", "Ready")]),
    PassCase("a wrong secret: AppVerified False, not Ready", RESOLVED, WRONG_SECRET,
             ("False", AppReason.APP_SECRET_INVALID), ("False", AppReason.APP_SECRET_INVALID),
             {}, [("Warning", AppReason.APP_SECRET_INVALID)]),
    PassCase("no Secret: not checked, not Ready", MISSING, None,
             ("False", Reason.SECRET_NOT_FOUND), ("Unknown", Reason.NOT_CHECKED), {},
             [("Warning", Reason.SECRET_NOT_FOUND)]),
    PassCase("nothing due: the stored verdict is kept, no Event", RESOLVED, None,
             ("True", "Ready"), ("True", "Verified"), READY_BEFORE, []),
    PassCase("an outage keeps a Ready app Ready within the grace", RESOLVED, DOWN,
             ("True", "Ready"), ("Unknown", Reason.GRAPH_API_UNAVAILABLE), READY_BEFORE, []),
    PassCase("an outage beyond the grace: Ready Unknown",
             RESOLVED, DOWN, ("Unknown", Reason.GRAPH_API_UNAVAILABLE),
             ("Unknown", Reason.GRAPH_API_UNAVAILABLE),
             {**READY_BEFORE, "conditions": [
                 cond(c.SECRET_RESOLVED, "True", "Resolved"),
                 cond(c.APP_VERIFIED, "Unknown", Reason.GRAPH_API_UNAVAILABLE,
                      T0 - timedelta(minutes=20)),
                 cond(c.READY, "True", Reason.READY)]},
             [("Warning", Reason.GRAPH_API_UNAVAILABLE)]),
    PassCase("an outage before any verdict: Ready Unknown", RESOLVED, DOWN,
             ("Unknown", Reason.GRAPH_API_UNAVAILABLE), ("Unknown", Reason.GRAPH_API_UNAVAILABLE),
             {}, [("Warning", Reason.GRAPH_API_UNAVAILABLE)]),
    PassCase("an invalid spec", None, None, ("False", Reason.INVALID_SPEC),
             ("Unknown", Reason.NOT_CHECKED), {}, [("Warning", Reason.INVALID_SPEC)],
             spec_ok=False),
]  # fmt: skip


@pytest.mark.parametrize("case", PASS_CASES, ids=lambda c: c.id)
def test_decide_app(case: PassCase) -> None:
    facts = AppFacts(
        1, spec() if case.spec_ok else None, "" if case.spec_ok else "spec is invalid: appId",
        case.secrets, case.check, case.status, case.now,
    )  # fmt: skip
    decision = decide_app(facts)
    conditions = {x["type"]: x for x in decision.status["conditions"]}
    assert (conditions[c.READY]["status"], conditions[c.READY]["reason"]) == case.ready
    verified = conditions[c.APP_VERIFIED]
    assert (verified["status"], verified["reason"]) == case.verified
    assert [(e.type, e.reason) for e in decision.events] == case.events
    assert [x["type"] for x in decision.status["conditions"]] == [
        t for t in (c.SECRET_RESOLVED, c.APP_VERIFIED, c.READY) if t in conditions
    ]
    assert decision.usable is (case.ready[0] == "True")
    text = repr(decision.status) + repr(decision.events)
    assert APP_SECRET not in text
    assert VERIFY not in text


def test_the_status_names_the_app_and_when_it_was_verified() -> None:
    decision = decide_app(AppFacts(1, spec(), "", RESOLVED, VERIFIED, {}, T0))
    assert decision.status["appName"] == "Acme Hooks"
    assert decision.status["lastVerifiedAt"] == "2026-09-01T12:00:00Z"
    kept = decide_app(AppFacts(2, spec(), "", RESOLVED, None, READY_BEFORE, T0))
    assert kept.status["lastVerifiedAt"] == "2026-09-01T11:00:00Z"
    failed = decide_app(AppFacts(2, spec(), "", RESOLVED, WRONG_SECRET, READY_BEFORE, T0))
    assert "appName" not in failed.status  # merge patch removes what no longer holds


def test_resolved_app_carries_what_tenants_need() -> None:
    decision = decide_app(
        AppFacts(1, spec(graphApiVersion="v24.0"), "", RESOLVED, VERIFIED, {}, T0)
    )
    app = resolved_app("hooks", spec(graphApiVersion="v24.0"), RESOLVED, decision)
    assert app.usable
    assert (app.app_id, app.app_secret, app.verify_token) == (APP_ID, APP_SECRET, VERIFY)
    assert app.graph_api_version == "v24.0"
    assert APP_SECRET not in repr(app)
    assert VERIFY not in repr(app)
    entry = app.receiver_entry()
    assert entry is not None
    assert entry.app_secret.get_secret_value() == APP_SECRET
    down = decide_app(AppFacts(1, spec(), "", MISSING, None, {}, T0))
    unusable = resolved_app("hooks", spec(), MISSING, down)
    assert not unusable.usable
    assert unusable.receiver_entry() is None


# --- when Meta is asked again -------------------------------------------------------------------
FOUND = RESOLVED.secrets
assert FOUND is not None


@pytest.mark.parametrize(
    ("last", "secrets", "generation", "now", "due"),
    [
        pytest.param(None, FOUND, 1, T0, True, id="never checked: now"),
        pytest.param(None, None, 1, T0, False, id="no secrets: never"),
        pytest.param(Verified(FOUND.fingerprint, 1, T0, True), FOUND, 1,
                     T0 + timedelta(minutes=59), False, id="verified 59 min ago: not yet"),
        pytest.param(Verified(FOUND.fingerprint, 1, T0, True), FOUND, 1,
                     T0 + timedelta(hours=1), True, id="an hour later: again"),
        pytest.param(Verified("sha256:other", 1, T0, True), FOUND, 1, T0, True,
                     id="a new secret: at once"),
        pytest.param(Verified(FOUND.fingerprint, 1, T0, True), FOUND, 2, T0, True,
                     id="a new generation: at once"),
        pytest.param(Verified(FOUND.fingerprint, 1, T0, False), FOUND, 1, T0, True,
                     id="after a transient failure: the backoff paces it"),
    ],
)  # fmt: skip
def test_check_due(
    last: Verified | None, secrets: Any, generation: int, now: datetime, due: bool
) -> None:
    assert check_due(last, secrets, generation, now) is due


# --- the index --------------------------------------------------------------------------------
def app(name: str = "hooks", ready: bool = True) -> ResolvedApp:
    return ResolvedApp(name, APP_ID, ready, "Ready", "", APP_SECRET, VERIFY,
                       selector=LabelSelector())  # fmt: skip


def test_the_index_wakes_the_tenants_of_a_changed_app_only() -> None:
    registry = Registry()
    flags = {key: registry.register(key, Flag()) for key in (("a", "t1"), ("a", "t2"), ("b", "t3"))}
    index = AppIndex(registry, "ops")
    index.refer(("a", "t1"), "hooks")
    index.refer(("b", "t3"), "other")
    index.refer(("a", "t2"), "hooks")
    index.refer(("a", "t2"), None)  # it names no app any more
    assert index.put("hooks", "uid-1", app())
    assert [k for k, f in flags.items() if f.is_set()] == [("a", "t1")]
    for flag in flags.values():
        flag.clear()  # type: ignore[attr-defined]
    assert not index.put("hooks", "uid-1", app())  # the same entry: nobody woken
    assert not any(f.is_set() for f in flags.values())
    index.remove("hooks", "uid-1")
    assert index.get("hooks") is None
    assert flags[("a", "t1")].is_set()
    assert not index.put("hooks", "uid-1", app())  # a late pass of the deleted app
    assert index.get("hooks") is None


def test_the_index_wakes_a_namespaces_app_users_and_an_apps_loop() -> None:
    registry = Registry()
    flags = {key: registry.register(key, Flag()) for key in (("a", "t1"), ("b", "t2"))}
    index = AppIndex(registry, "ops")
    index.refer(("a", "t1"), "hooks")
    index.refer(("b", "t2"), "hooks")
    assert index.wake_namespace("a") == 1
    assert [k for k, f in flags.items() if f.is_set()] == [("a", "t1")]
    event = index.loops["hooks"] = asyncio.Event()
    index.secrets["hooks"] = ("meta-app",)
    assert index.wake_secret("other-ns", "meta-app") == 0
    assert not event.is_set()
    assert index.wake_secret("ops", "meta-app") == 1
    assert event.is_set()
