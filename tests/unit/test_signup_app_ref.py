"""A signup's `spec.appRef` (issue 18): the WhatsAppApp gives the code exchange its id and
secret (no Secret is read) and every later call its appsecret_proof; a namespace the app does
not select stops the signup (AppNotAllowed), a missing or not Ready app is waited for; the
tenant created names the app in its own spec.appRef."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import pytest
from test_signup_runner import NS, TOKEN, World

from whatsapp_graph.client import appsecret_proof
from whatsapp_operator.apps.index import AppIndex
from whatsapp_operator.apps.selector import LabelSelector
from whatsapp_operator.apps.tenant_ref import ResolvedApp
from whatsapp_operator.model.conditions import Reason as TenantReason
from whatsapp_operator.model.spec import PLURAL, parse_spec
from whatsapp_operator.signup import judge
from whatsapp_operator.signup.flow import (
    CODE_EXCHANGED,
    NUMBER_REGISTERED,
    WABA_DISCOVERED,
    Reason,
    StepResult,
)
from whatsapp_operator.signup.model import ONE_APP, parse_signup_spec, tenant_body
from whatsapp_operator.signup.steps import SignupSteps

APP_SECRET = "app-secret-value"  # what test_signup_runner's FakeGraph expects, with id 42
APP = ResolvedApp(
    "shared", "42", True, "Ready", "verified", APP_SECRET, "verify-token",
    selector=LabelSelector.model_validate({"matchLabels": {"wa": "on"}}),
)  # fmt: skip
ALLOWED = {"wa": "on"}


# --- may the signup use the app? ---------------------------------------------------------------
@dataclass
class Case:
    id: str
    app: ResolvedApp | None
    labels: dict[str, str] | None
    outcome: str  # "use", "retry", "stop"
    reason: str | None = None
    message: str = ""
    pending: bool = False


CASES = [
    Case("allowed and Ready: used", APP, ALLOWED, "use"),
    Case("an empty selector allows every namespace", replace(APP, selector=LabelSelector()), {},
         "use"),
    Case("no such app: waited for", None, ALLOWED, "retry", Reason.APP_NOT_FOUND, "not found"),
    Case("its first pass still to come (a restart): waited for", None, ALLOWED, "retry",
         Reason.APP_NOT_READY, "being read", pending=True),
    Case("not Ready: waited for", replace(APP, ready=False, reason="AppSecretInvalid",
                                          message="Meta refused"),
         ALLOWED, "retry", Reason.APP_NOT_READY, "is not Ready (AppSecretInvalid)"),
    Case("Ready but its secret not read: waited for", replace(APP, app_secret=None), ALLOWED,
         "retry", Reason.APP_NOT_READY, "is not Ready"),
    Case("namespace not selected: stops", APP, {"wa": "off"}, "stop", Reason.APP_NOT_ALLOWED,
         "namespace 'shop' is not selected"),
    Case("app without a namespaceSelector: stops", replace(APP, selector=None), ALLOWED, "stop",
         Reason.APP_NOT_ALLOWED, "no spec.namespaceSelector"),
    Case("namespace labels not known yet: waited for", APP, None, "retry",
         Reason.APP_NOT_ALLOWED, "labels are not known yet"),
    Case("not allowed is said before not Ready", replace(APP, ready=False), {}, "stop",
         Reason.APP_NOT_ALLOWED, "not selected"),
]  # fmt: skip


@pytest.mark.parametrize("step", [CODE_EXCHANGED, WABA_DISCOVERED])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_app_ref(case: Case, step: str) -> None:
    got = judge.app_ref(step, "shared", case.app, "shop", case.labels, pending=case.pending)
    if case.outcome == "use":
        assert got == case.app
        return
    assert isinstance(got, StepResult)
    assert got.outcome == case.outcome
    (cond,) = got.conditions
    assert (cond.type, cond.reason) == (step, case.reason)
    assert cond.status == ("False" if case.outcome == "stop" else "Unknown")
    assert case.message in cond.message
    assert "WhatsAppApp 'shared'" in cond.message
    if case.outcome == "stop":
        assert "new WhatsAppSignup" in cond.message  # a stopped signup is never retried
    assert APP_SECRET not in repr(got)


def test_the_reasons_are_the_tenants() -> None:
    assert (Reason.APP_NOT_FOUND, Reason.APP_NOT_ALLOWED, Reason.APP_NOT_READY) == (
        TenantReason.APP_NOT_FOUND, TenantReason.APP_NOT_ALLOWED, TenantReason.APP_NOT_READY,
    )  # fmt: skip


# --- the spec: exactly one app -----------------------------------------------------------------
BASE = {"codeSecretRef": {"name": "acme-code"}, "tenant": {"tenantId": "t_acme"}}
CREDENTIALS = {"appCredentialsSecretRef": {"name": "meta-app"}}
REF = {"appRef": {"name": "shared"}}


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        pytest.param(CREDENTIALS, None, id="app credentials Secret"),
        pytest.param(REF, None, id="WhatsAppApp"),
        pytest.param({**CREDENTIALS, **REF}, ONE_APP, id="both"),
        pytest.param({}, ONE_APP, id="neither"),
        pytest.param({"appRef": {"name": ""}}, "appRef.name: ", id="appRef without a name"),
    ],
)
def test_exactly_one_app(extra: dict[str, Any], problem: str | None) -> None:
    spec, error = parse_signup_spec({**BASE, **extra})
    assert (spec is None) is (problem is not None), error
    if problem is not None:
        assert error.startswith("spec is invalid: ")
        assert problem in error
        assert ": :" not in error  # a spec-wide problem has no field path in front


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        pytest.param(REF, {"appRef": {"name": "shared"}}, id="appRef: the tenant's appRef"),
        pytest.param(
            CREDENTIALS,
            {"rotation": {"appCredentialsSecretRef": {
                "name": "meta-app", "appIdKey": "appId", "appSecretKey": "appSecret"}}},
            id="credentials: the tenant's rotation",
        ),
    ],
)  # fmt: skip
def test_the_tenant_names_the_signups_app(extra: dict[str, Any], names: dict[str, Any]) -> None:
    spec, error = parse_signup_spec({**BASE, **extra})
    assert spec is not None, error
    tenant = tenant_body("shop", "signup-1", spec, "200", "300")["spec"]
    assert {k: tenant[k] for k in ("appRef", "rotation") if k in tenant} == names
    parsed, problem = parse_spec(tenant)  # what the tenant's own model makes of it
    assert parsed is not None, problem
    assert (parsed.app_ref is not None) is ("appRef" in extra)


# --- a signup with appRef, against the fakes of test_signup_runner -----------------------------
def world(app: ResolvedApp | None = APP, labels: dict[str, str] | None = ALLOWED,
          **spec: Any) -> World:  # fmt: skip
    """A signup naming WhatsAppApp 'shared', with no app credentials Secret anywhere."""
    w = World(appRef={"name": "shared"}, **spec)
    del w.signup["spec"]["appCredentialsSecretRef"]
    del w.kube.secrets["meta-app"]
    index = AppIndex()
    if app is not None:
        index.put("shared", "uid-1", app)
    w.rt.apps = index
    w.rt.namespace_labels = {NS: [labels]} if labels is not None else {}
    return w


async def test_the_app_gives_the_exchange_and_every_proof_and_the_tenant_names_it() -> None:
    w = world(register=True)
    await w.run()
    assert w.conditions()["Ready"] == ("True", "Ready")
    proof = appsecret_proof(TOKEN, APP_SECRET)
    assert w.graph.proofs == {
        "exchange_code": None,  # FakeGraph checked the app's id and secret
        "debug_token": proof, "phone_numbers": proof, "subscribe_app": proof,
        "register_number": proof,
    }  # fmt: skip
    tenant = w.kube.objects[(PLURAL, "acme")]["spec"]
    assert tenant["appRef"] == {"name": "shared"}
    assert "rotation" not in tenant
    shown = repr(w.signup) + repr(w.events) + repr(w.audit.entries) + repr(tenant)
    assert APP_SECRET not in shown
    assert proof not in shown


async def test_a_namespace_the_app_does_not_select_stops_before_the_code_is_spent() -> None:
    w = world(labels={"wa": "off"})
    await w.run()
    assert w.conditions()["CodeExchanged"] == ("False", "AppNotAllowed")
    assert w.conditions()["Ready"] == ("False", "AppNotAllowed")
    assert w.graph.calls == Counter()
    assert ("Warning", "AppNotAllowed") in w.events
    assert w.sleeps == []  # stopped for good
    await w.run()  # a restart: a stopped signup stays stopped
    assert w.graph.calls == Counter()


@pytest.mark.parametrize(
    ("app", "pending", "reason"),
    [
        pytest.param(None, False, "AppNotFound", id="not found"),
        pytest.param(None, True, "AppNotReady", id="first pass to come"),
        pytest.param(replace(APP, ready=False), False, "AppNotReady", id="not Ready"),
    ],
)
async def test_a_missing_or_unready_app_is_waited_for(
    app: ResolvedApp | None, pending: bool, reason: str
) -> None:
    w = world(app=app)
    if pending:
        w.rt.apps.listed = {"shared": ["uid-1"]}
    seen: list[tuple[str, str]] = []

    async def sleep(seconds: float) -> None:  # the app is fixed during the second wait
        seen.append(w.conditions()["CodeExchanged"])
        if len(seen) == 2:
            w.rt.apps.put("shared", "uid-1", APP)

    w.sleep = sleep  # type: ignore[method-assign]
    await w.run()
    assert seen == [("Unknown", reason)] * 2
    assert ("Warning", reason) in w.events
    assert w.conditions()["Ready"] == ("True", "Ready")
    assert w.graph.calls["exchange_code"] == 1
    assert w.kube.objects[(PLURAL, "acme")]["spec"]["appRef"] == {"name": "shared"}


async def test_a_missing_code_secret_is_said_before_the_app() -> None:
    w = world(app=None)
    del w.kube.secrets["acme-code"]
    w.sleeps = [0.0] * 20  # World.sleep stops the loop at its first wait
    with pytest.raises(AssertionError, match="loops"):
        await w.run()
    assert w.conditions()["CodeExchanged"] == ("Unknown", "CodeSecretNotFound")


@pytest.mark.parametrize(
    ("app", "labels", "outcome", "reason"),
    [
        pytest.param(None, ALLOWED, "retry", "AppNotFound", id="app gone: wait"),
        pytest.param(APP, {"wa": "off"}, "stop", "AppNotAllowed", id="namespace unlabelled"),
    ],
)
@pytest.mark.parametrize("step", [WABA_DISCOVERED, NUMBER_REGISTERED])
async def test_after_a_restart_no_call_goes_without_the_apps_proof(
    app: ResolvedApp | None, labels: dict[str, str], outcome: str, reason: str, step: str
) -> None:
    """The exchange was done by an earlier operator; the app is not usable now: the step
    waits (or stops) instead of calling Meta without the proof the app may require."""
    w = world(app=app, labels=labels, register=True)
    spec, _ = parse_signup_spec(w.signup["spec"])
    assert spec is not None

    async def record(fields: Any) -> None:
        return None

    steps = SignupSteps(w.rt, NS, "acme", spec, record)  # type: ignore[arg-type]
    steps._token = TOKEN
    status = {"wabaId": "200", "phoneNumberId": "300"}
    result = await steps.run(step, status)
    assert result.outcome == outcome
    assert [(c.type, c.reason) for c in result.conditions] == [(step, reason)]
    assert w.graph.calls == Counter()
