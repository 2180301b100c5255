"""Embedded Signup end to end: WhatsAppSignup -> code exchange, WABA and number discovery,
app subscription, registration, token Secret and WhatsAppTenant, against the real API
server, the simulator over HTTP and the session's operator process (whose OAuth callback
endpoint is on: see the `operator` fixture)."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from conftest import (
    APP_ID,
    APP_SECRET,
    ISSUED_TOKENS,
    SIGNUP_CALLBACK_SECRET,
    SIGNUP_NAMESPACE,
    Kubectl,
    open_namespace,
)
from whatsapp_operator.signup.callback import sign
from whatsapp_testkit.world import SCOPES, dump, new_id, new_token, secret, wait_for

pytestmark = pytest.mark.integration

# Everything secret a signup test handed out: the last test scans for each one.
SECRETS: list[str] = [APP_SECRET, SIGNUP_CALLBACK_SECRET]
PIN = "135791"
MANAGEMENT = "whatsapp_business_management"


@dataclass(frozen=True)
class Onboarding:
    """What a customer brings out of Embedded Signup: a WABA, its numbers, a code."""

    waba_id: str
    phones: tuple[str, ...]
    code: str
    token: str  # what the simulator mints for the code


@pytest.fixture
def onboarding(sim: Any) -> Callable[..., Onboarding]:
    def make(
        *, numbers: int = 1, ttl: float | None = None, waba_id: str | None = None,
        targets: bool = True, scopes: tuple[str, ...] = SCOPES, app_id: str = APP_ID,
    ) -> Onboarding:  # fmt: skip
        """`targets` False: a token whose granular scopes list no target_ids (Meta's
        mid-2026 signup tokens). `app_id`: the Meta app the code is for."""
        waba = waba_id or new_id("2")
        if waba_id is None:
            sim.add_waba(waba)
        phones = tuple(new_id("3") for _ in range(numbers))
        for n, phone in enumerate(phones):
            sim.add_phone(
                phone,
                waba_id=waba,
                display_phone_number=f"+1 555-01{n:02d}",
                verified_name="Acme Signup",
            )
        code, token = "AQB" + uuid.uuid4().hex + uuid.uuid4().hex, new_token()
        SECRETS.extend([code, token])
        ISSUED_TOKENS.append(token)  # the session's final scan looks for it too
        grants = {s: [waba] for s in scopes if s.startswith("whatsapp")} if targets else None
        sim.add_code(code, app_id=app_id, scopes=scopes, targets=grants, ttl=ttl, token=token)
        return Onboarding(waba, phones, code, token)

    return make


def signup(name: str, tenant_id: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "whatsapp.operator.dev/v1alpha1",
        "kind": "WhatsAppSignup",
        "metadata": {"name": name},
        "spec": {
            "codeSecretRef": {"name": f"{name}-code"},
            "appCredentialsSecretRef": {"name": "meta-app"},
            "tenant": {"tenantId": tenant_id},
            **spec,
        },
    }


def apply_signup(
    kubectl: Kubectl, ns: str, ob: Onboarding, name: str = "acme", *, pin: str | None = None,
    **spec: Any,
) -> str:  # fmt: skip
    """Apply the app Secret, the code Secret and the signup; returns the tenant id."""
    tenant_id = f"t_{name}_{ns}"
    code = {"code": ob.code, **({"pin": pin} if pin else {})}
    kubectl.apply(
        dump(
            secret("meta-app", {"appId": APP_ID, "appSecret": APP_SECRET}),
            secret(f"{name}-code", code),
            signup(name, tenant_id, **spec),
        ),
        ns,
    )
    return tenant_id


def get(kubectl: Kubectl, kind: str, ns: str, name: str) -> dict[str, Any]:
    out: dict[str, Any] = kubectl.json("get", kind, "-n", ns, name)
    return out


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


def wait_condition(
    kubectl: Kubectl, ns: str, name: str, type_: str, status: str, timeout: float = 30
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get(kubectl, "was", ns, name)
        return obj if conditions(obj).get(type_, {}).get("status") == status else None

    try:
        return wait_for(probe, timeout, 0.2, f"{type_}={status}")
    except AssertionError:
        obj = get(kubectl, "was", ns, name)
        raise AssertionError(f"{ns}/{name}: {json.dumps(obj.get('status'))}") from None


def events(kubectl: Kubectl, ns: str, name: str) -> list[tuple[str, str]]:
    items = kubectl.json("get", "events", "-n", ns)["items"]
    return [(e["type"], e["reason"]) for e in items if e["involvedObject"].get("name") == name]


def token_in(kubectl: Kubectl, ns: str, name: str) -> str:
    data = get(kubectl, "secret", ns, name)["data"]
    return base64.b64decode(data["accessToken"]).decode()


def tenants(kubectl: Kubectl, ns: str) -> list[str]:
    return [o["metadata"]["name"] for o in kubectl.json("get", "wat", "-n", ns)["items"]]


def calls_by_token(sim: Any, kind: str, token: str) -> int:
    from whatsapp_simulator.state import fingerprint

    return int(sim.calls()["by_kind_token"].get(kind, {}).get(fingerprint(token), 0))


def graph(graph_sim: Any, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.request(method, f"{graph_sim.url}/v25.0/{path}", headers=headers, **kwargs)


def test_signup_end_to_end(
    kubectl: Kubectl,
    namespace: str,
    operator: Any,
    sim: Any,
    graph_sim: Any,
    onboarding: Any,
    sql: Any,
) -> None:
    ob = onboarding()
    tenant_id = apply_signup(kubectl, namespace, ob, pin=PIN, register=True)
    kubectl("wait", "--for=condition=Ready", "was/acme", "-n", namespace, "--timeout=30s")
    obj = get(kubectl, "was", namespace, "acme")
    status = obj["status"]
    assert {t: c["status"] for t, c in conditions(obj).items()} == {
        "CodeExchanged": "True",
        "WabaDiscovered": "True",
        "PhoneNumberSelected": "True",
        "AppSubscribed": "True",
        "NumberRegistered": "True",
        "TenantCreated": "True",
        "Ready": "True",
    }
    assert (status["wabaId"], status["phoneNumberId"]) == (ob.waba_id, ob.phones[0])
    assert status["tokenSecretName"] == "acme-meta-token"
    assert status["tokenFingerprint"].startswith("sha256:")
    assert (status["exchangeAttempts"], status["registerAttempts"]) == (1, 1)
    assert "completedAt" in status
    # The token Secret, and the tenant, which goes Ready through the ordinary reconcile.
    assert token_in(kubectl, namespace, "acme-meta-token") == ob.token
    token_secret = get(kubectl, "secret", namespace, "acme-meta-token")
    assert token_secret["metadata"]["labels"]["whatsapp.operator.dev/signup"] == "acme"
    kubectl("wait", "--for=condition=Ready", "wat/acme", "-n", namespace, "--timeout=30s")
    tenant = get(kubectl, "wat", namespace, "acme")
    assert tenant["metadata"]["annotations"]["whatsapp.operator.dev/signup"] == "acme"
    assert tenant["spec"]["tenantId"] == tenant_id
    assert (tenant["spec"]["wabaId"], tenant["spec"]["phoneNumberId"]) == status_ids(status)
    assert tenant["spec"]["tokenSecretRef"]["name"] == "acme-meta-token"
    # the signup's app credentials: the tenant's calls (and its workers') carry the proof
    assert tenant["spec"]["rotation"]["appCredentialsSecretRef"]["name"] == "meta-app"
    resolved = next(c for c in tenant["status"]["conditions"] if c["type"] == "SecretResolved")
    assert "appsecret_proof from Secret 'meta-app'" in resolved["message"]
    # Meta's side: the app is subscribed to the WABA and the number is registered.
    subscribed = graph(graph_sim, "GET", f"{ob.waba_id}/subscribed_apps", ob.token).json()
    assert [a["whatsapp_business_api_data"]["id"] for a in subscribed["data"]] == [APP_ID]
    phone = graph(graph_sim, "GET", ob.phones[0], ob.token, params={"fields": "status"}).json()
    assert phone["status"] == "CONNECTED"
    table = kubectl("get", "was", "-n", namespace).stdout
    for column in (tenant_id, ob.waba_id, ob.phones[0], "True", "Ready"):
        assert column in table
    happened = events(kubectl, namespace, "acme")
    assert ("Normal", "SignupComplete") in happened
    assert not [e for e in happened if e[0] == "Warning"]
    # the lead's audit trail, through the operator's audit writer (background, in batches)
    trail = wait_for(
        lambda: sql(
            "SELECT detail, token_fingerprint FROM whatsapp_operator_audit "
            "WHERE tenant_id = %s AND event = 'signup' ORDER BY id",
            tenant_id,
        ),
        10,
        0.2,
        "the signup's audit entries",
    )
    assert trail[0]["detail"].startswith("code exchanged")
    assert trail[0]["token_fingerprint"] == status["tokenFingerprint"]
    assert ob.token not in repr(trail)


def status_ids(status: dict[str, Any]) -> tuple[str, str]:
    return status["wabaId"], status["phoneNumberId"]


def test_signup_with_a_used_code_fails_clearly(
    kubectl: Kubectl, namespace: str, operator: Any, graph_sim: Any, onboarding: Any
) -> None:
    ob = onboarding()
    params = {"client_id": APP_ID, "client_secret": APP_SECRET, "code": ob.code}
    used = httpx.get(f"{graph_sim.url}/v25.0/oauth/access_token", params=params)
    assert used.status_code == 200  # someone else exchanged it first
    apply_signup(kubectl, namespace, ob)
    obj = wait_condition(kubectl, namespace, "acme", "Ready", "False")
    cond = conditions(obj)["CodeExchanged"]
    assert (cond["status"], cond["reason"]) == ("False", "CodeUsed")
    assert "new WhatsAppSignup" in cond["message"]
    assert conditions(obj)["Ready"]["reason"] == "CodeUsed"
    assert tenants(kubectl, namespace) == []
    assert kubectl("get", "secret", "-n", namespace, "acme-meta-token", check=False).returncode
    assert ("Warning", "CodeUsed") in events(kubectl, namespace, "acme")


def test_signup_with_an_expired_code_fails_clearly(
    kubectl: Kubectl, namespace: str, operator: Any, onboarding: Any
) -> None:
    ob = onboarding(ttl=0.0)
    apply_signup(kubectl, namespace, ob)
    obj = wait_condition(kubectl, namespace, "acme", "Ready", "False")
    cond = conditions(obj)["CodeExchanged"]
    assert (cond["status"], cond["reason"]) == ("False", "CodeExpired")
    assert "right away" in cond["message"]
    assert obj["status"]["exchangeAttempts"] == 1
    assert tenants(kubectl, namespace) == []


def test_retried_signup_never_creates_two_tenants(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, graph_sim: Any, onboarding: Any
) -> None:
    ob = onboarding()
    tenant_id = apply_signup(kubectl, namespace, ob)
    wait_condition(kubectl, namespace, "acme", "Ready", "True")
    # The same signup again (deleted and re-created): it finds its token and its tenant.
    kubectl("delete", "was", "acme", "-n", namespace)
    kubectl.apply(dump(signup("acme", tenant_id)), namespace)
    obj = wait_condition(kubectl, namespace, "acme", "Ready", "True")
    assert "reused" in conditions(obj)["CodeExchanged"]["message"]
    assert obj["status"].get("exchangeAttempts", 0) == 0  # the code was not sent again
    assert tenants(kubectl, namespace) == ["acme"]
    # Another signup for the same tenant name stops before it spends its code.
    other = onboarding()
    apply_signup(kubectl, namespace, other, "acme2", tenant={"tenantId": tenant_id, "name": "acme"})
    obj = wait_condition(kubectl, namespace, "acme2", "Ready", "False")
    assert conditions(obj)["TenantCreated"]["reason"] == "TenantExists"
    assert "CodeExchanged" not in conditions(obj)
    assert tenants(kubectl, namespace) == ["acme"]
    assert token_in(kubectl, namespace, "acme-meta-token") == ob.token
    # And one for the same tenant id under another name (the operator's tenantId index).
    third = onboarding()
    apply_signup(kubectl, namespace, third, "acme3", tenant={"tenantId": tenant_id})
    obj = wait_condition(kubectl, namespace, "acme3", "Ready", "False")
    assert conditions(obj)["TenantCreated"]["reason"] == "DuplicateTenantId"
    assert f"{namespace}/acme" in conditions(obj)["TenantCreated"]["message"]
    assert tenants(kubectl, namespace) == ["acme"]
    for refused in (other, third):
        params = {"client_id": APP_ID, "client_secret": APP_SECRET, "code": refused.code}
        unused = httpx.get(f"{graph_sim.url}/v25.0/oauth/access_token", params=params)
        assert unused.status_code == 200, "a refused signup must not have used its code"


def test_operator_restart_mid_signup_resumes_without_a_second_exchange(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, onboarding: Any
) -> None:
    ob = onboarding()
    sim.set_latency(0, {"subscribed_apps": 4000})
    try:
        apply_signup(kubectl, namespace, ob)
        wait_condition(kubectl, namespace, "acme", "PhoneNumberSelected", "True")
        operator.restart()
    finally:
        sim.set_latency(0)
    obj = wait_condition(kubectl, namespace, "acme", "Ready", "True", timeout=60)
    assert obj["status"]["exchangeAttempts"] == 1
    assert conditions(obj)["CodeExchanged"]["reason"] == "Exchanged"
    assert token_in(kubectl, namespace, "acme-meta-token") == ob.token
    assert tenants(kubectl, namespace) == ["acme"]
    kubectl("wait", "--for=condition=Ready", "wat/acme", "-n", namespace, "--timeout=30s")


def test_several_numbers_need_a_selector_and_a_fixed_retry_reuses_the_token(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, onboarding: Any
) -> None:
    ob = onboarding(numbers=2)
    tenant_id = apply_signup(kubectl, namespace, ob)
    obj = wait_condition(kubectl, namespace, "acme", "Ready", "False")
    cond = conditions(obj)["PhoneNumberSelected"]
    assert cond["reason"] == "PhoneNumberSelectorRequired"
    assert ob.phones[0] in cond["message"]
    assert ob.phones[1] in cond["message"]
    assert tenants(kubectl, namespace) == []
    # Spec is immutable: the user re-creates the signup with a selector (no new code needed).
    refused = kubectl(
        "patch", "was", "acme", "-n", namespace, "--type=merge",
        "-p", '{"spec": {"subscribeApp": false}}', check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "immutable" in refused.stderr
    kubectl("delete", "was", "acme", "-n", namespace)
    selector = {"displayPhoneNumber": "+15550101"}  # the second number, digits compared
    kubectl.apply(
        dump(signup("acme", tenant_id, phoneNumberSelector=selector, subscribeApp=False)),
        namespace,
    )
    obj = wait_condition(kubectl, namespace, "acme", "Ready", "True")
    assert obj["status"]["phoneNumberId"] == ob.phones[1]
    assert "AppSubscribed" not in conditions(obj)
    assert calls_by_token(sim, "subscribed_apps", ob.token) == 0
    assert get(kubectl, "wat", namespace, "acme")["spec"]["phoneNumberId"] == ob.phones[1]


def test_registration_limit_is_never_looped_on(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, graph_sim: Any, onboarding: Any
) -> None:
    ob = onboarding()
    helper = new_token()
    SECRETS.append(helper)
    ISSUED_TOKENS.append(helper)
    sim.add_token(helper, app_id=APP_ID, scopes=SCOPES, targets={MANAGEMENT: [ob.waba_id]})
    body = {"messaging_product": "whatsapp", "pin": PIN}
    for _ in range(10):  # Meta's 10 per number per 72 h, spent by someone else
        assert graph(graph_sim, "POST", f"{ob.phones[0]}/register", helper, json=body).is_success
    apply_signup(kubectl, namespace, ob, pin=PIN, register=True)
    obj = wait_condition(kubectl, namespace, "acme", "Ready", "False")
    cond = conditions(obj)["NumberRegistered"]
    assert (cond["status"], cond["reason"]) == ("False", "RegistrationLimitReached")
    assert "will not call register again" in cond["message"]
    assert calls_by_token(sim, "register", ob.token) == 1
    time.sleep(5)
    assert calls_by_token(sim, "register", ob.token) == 1, "register was called again"
    assert get(kubectl, "was", namespace, "acme")["status"]["registerAttempts"] == 1
    assert tenants(kubectl, namespace) == []
    assert ("Warning", "RegistrationLimitReached") in events(kubectl, namespace, "acme")


# --- spec.appRef: a WhatsAppApp instead of the app credentials Secret (issue 18) ----------


def apply_app_signup(kubectl: Kubectl, ns: str, ob: Onboarding, app: str) -> str:
    """The code Secret and a signup naming WhatsAppApp `app` (no app credentials Secret)."""
    tenant_id = f"t_app_{ns}"
    body = signup("acme", tenant_id, appRef={"name": app})
    del body["spec"]["appCredentialsSecretRef"]
    kubectl.apply(dump(secret("acme-code", {"code": ob.code}), body), ns)
    return tenant_id


def test_signup_with_a_whatsapp_app_makes_a_tenant_naming_it(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, graph_sim: Any, onboarding: Any
) -> None:
    from test_apps import App

    app = App(kubectl, sim, selector={})  # every namespace
    try:
        app.apply()
        app.wait("Ready", "Ready")
        ob = onboarding(app_id=app.app_id)  # a code for the shared app, not the session's
        tenant_id = apply_app_signup(kubectl, namespace, ob, app.name)
        obj = wait_condition(kubectl, namespace, "acme", "Ready", "True")
        assert obj["status"]["exchangeAttempts"] == 1
        assert calls_by_token(sim, "subscribed_apps", ob.token) == 1
        subscribed = graph(graph_sim, "GET", f"{ob.waba_id}/subscribed_apps", ob.token).json()
        assert [a["whatsapp_business_api_data"]["id"] for a in subscribed["data"]] == [app.app_id]
        tenant = get(kubectl, "wat", namespace, "acme")
        assert tenant["spec"]["tenantId"] == tenant_id
        assert tenant["spec"]["appRef"] == {"name": app.name}
        # the app is the appRef's; `rotation` holds only what the CRD defaults, no credentials
        assert "appCredentialsSecretRef" not in tenant["spec"].get("rotation", {})
        kubectl("wait", "--for=condition=Ready", "wat/acme", "-n", namespace, "--timeout=30s")
        assert "meta-app" not in kubectl("get", "secret", "-n", namespace, "-o", "name").stdout
    finally:
        app.delete()


def test_signup_in_a_namespace_the_app_does_not_select_stops_before_the_exchange(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, onboarding: Any
) -> None:
    from test_apps import App

    app = App(kubectl, sim, selector={"matchLabels": {"apps.test/never": "yes"}})
    try:
        app.apply()
        ob = onboarding(app_id=app.app_id)
        apply_app_signup(kubectl, namespace, ob, app.name)
        obj = wait_condition(kubectl, namespace, "acme", "Ready", "False")
        cond = conditions(obj)["CodeExchanged"]
        assert (cond["status"], cond["reason"]) == ("False", "AppNotAllowed")
        assert f"namespace {namespace!r}" in cond["message"]
        assert "exchangeAttempts" not in obj["status"]  # the code was never sent
        assert tenants(kubectl, namespace) == []
        assert ("Warning", "AppNotAllowed") in events(kubectl, namespace, "acme")
    finally:
        app.delete()


# --- the OAuth callback endpoint ----------------------------------------------------------


@pytest.fixture
def callback_namespace(kubectl: Kubectl, open_policy: str) -> str:
    open_namespace(kubectl, SIGNUP_NAMESPACE)  # the session policy allows its tenant ids
    creds = secret("meta-app", {"appId": APP_ID, "appSecret": APP_SECRET})
    kubectl.apply(dump(creds), SIGNUP_NAMESPACE)
    return SIGNUP_NAMESPACE


def post_callback(operator: Any, body: bytes, headers: dict[str, str]) -> httpx.Response:
    url = f"http://127.0.0.1:{operator.signup_port}/signup"
    return httpx.post(url, content=body, headers={"Content-Type": "application/json", **headers})


def signed(body: bytes, key: str = SIGNUP_CALLBACK_SECRET) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {"X-Timestamp": stamp, "X-Signature-256": sign(key, stamp, body)}


def signup_names(kubectl: Kubectl, ns: str) -> set[str]:
    return {o["metadata"]["name"] for o in kubectl.json("get", "was", "-n", ns)["items"]}


def test_callback_creates_a_signup_that_makes_a_ready_tenant(
    kubectl: Kubectl, callback_namespace: str, operator: Any, onboarding: Any
) -> None:
    ob = onboarding()
    tenant_id = f"t_{uuid.uuid4().hex[:16]}"
    body = json.dumps({"code": ob.code, "state": tenant_id}).encode()
    answer = post_callback(operator, body, signed(body))
    assert answer.status_code == 202, answer.text
    name = answer.json()["signup"]
    assert answer.json()["namespace"] == callback_namespace
    obj = wait_condition(kubectl, callback_namespace, name, "Ready", "True")
    tenant = obj["status"]["tenantName"]
    kubectl("wait", "--for=condition=Ready", f"wat/{tenant}", "-n", callback_namespace,
            "--timeout=30s")  # fmt: skip
    assert get(kubectl, "wat", callback_namespace, tenant)["spec"]["tenantId"] == tenant_id
    code_secret = get(kubectl, "secret", callback_namespace, f"{name}-code")
    assert code_secret["metadata"]["ownerReferences"][0]["name"] == name


MID_2026_SCOPES = (*SCOPES, "whatsapp_business_manage_events")


def test_a_mid_2026_token_takes_waba_and_number_from_the_session(
    kubectl: Kubectl, namespace: str, operator: Any, onboarding: Any
) -> None:
    """The token's grants name no WABA: the session's ids, confirmed by the WABA's list."""
    ob = onboarding(numbers=2, targets=False, scopes=MID_2026_SCOPES)
    session = {"wabaId": ob.waba_id, "phoneNumberId": ob.phones[1]}
    apply_signup(kubectl, namespace, ob, session=session)
    obj = wait_condition(kubectl, namespace, "acme", "Ready", "True")
    assert status_ids(obj["status"]) == (ob.waba_id, ob.phones[1])
    assert "from the signup session" in conditions(obj)["WabaDiscovered"]["message"]
    kubectl("wait", "--for=condition=Ready", "wat/acme", "-n", namespace, "--timeout=30s")
    tenant = get(kubectl, "wat", namespace, "acme")
    assert (tenant["spec"]["wabaId"], tenant["spec"]["phoneNumberId"]) == status_ids(obj["status"])


@pytest.mark.parametrize(
    ("session", "step", "reason"),
    [
        pytest.param(None, "WabaDiscovered", "WabaNotFound", id="no session"),
        pytest.param({"phoneNumberId": "3999"}, "WabaDiscovered", "WabaNotFound",
                     id="a session without the WABA"),
        pytest.param("wrong number", "PhoneNumberSelected", "PhoneNumberNotFound",
                     id="a number the WABA does not have"),
    ],
)  # fmt: skip
def test_a_mid_2026_token_without_usable_session_ids_stops(
    kubectl: Kubectl, namespace: str, operator: Any, onboarding: Any, session: Any, step: str,
    reason: str,
) -> None:  # fmt: skip
    ob = onboarding(targets=False, scopes=MID_2026_SCOPES)
    if session == "wrong number":
        session = {"wabaId": ob.waba_id, "phoneNumberId": "3999"}
    spec = {"session": session} if session else {}
    apply_signup(kubectl, namespace, ob, **spec)
    obj = wait_condition(kubectl, namespace, "acme", step, "False")
    assert conditions(obj)[step]["reason"] == reason
    assert tenants(kubectl, namespace) == []


def test_callback_carries_the_session_ids(
    kubectl: Kubectl, callback_namespace: str, operator: Any, onboarding: Any
) -> None:
    ob = onboarding(numbers=2, targets=False, scopes=MID_2026_SCOPES)
    tenant_id = f"t_{uuid.uuid4().hex[:16]}"
    body = json.dumps({
        "code": ob.code, "state": tenant_id, "waba_id": ob.waba_id,
        "phone_number_id": ob.phones[0],
    }).encode()  # fmt: skip
    answer = post_callback(operator, body, signed(body))
    assert answer.status_code == 202, answer.text
    name = answer.json()["signup"]
    obj = wait_condition(kubectl, callback_namespace, name, "Ready", "True")
    assert obj["spec"]["session"] == {"wabaId": ob.waba_id, "phoneNumberId": ob.phones[0]}
    assert status_ids(obj["status"]) == (ob.waba_id, ob.phones[0])


def test_callback_rejects_a_bad_hmac_and_a_replay(
    kubectl: Kubectl, callback_namespace: str, operator: Any, onboarding: Any
) -> None:
    ob = onboarding()
    body = json.dumps({"code": ob.code, "state": f"t_{uuid.uuid4().hex[:16]}"}).encode()
    before = signup_names(kubectl, callback_namespace)
    forged = post_callback(operator, body, signed(body, key="not-the-shared-secret-at-all"))
    assert (forged.status_code, forged.json()) == (401, {"error": "unauthorized"})
    unsigned = post_callback(operator, body, {})
    assert unsigned.status_code == 401
    assert signup_names(kubectl, callback_namespace) == before
    headers = signed(body)
    first = post_callback(operator, body, headers)
    assert first.status_code == 202
    replayed = post_callback(operator, body, headers)
    assert (replayed.status_code, replayed.json()) == (401, {"error": "unauthorized"})
    assert signup_names(kubectl, callback_namespace) == before | {first.json()["signup"]}


async def _post_to_a_second_replica(
    cluster: Any, namespace: str, body: bytes, headers: dict[str, str]
) -> tuple[int, Any]:
    """A second replica of the callback endpoint: this process, its own (empty) memory, the
    same API server as the session's operator."""
    from aiohttp import test_utils
    from kubernetes_asyncio import client, config

    from whatsapp_operator.runtime.kube import Kube
    from whatsapp_operator.signup import callback

    cfg = client.Configuration()
    await config.load_kube_config(
        config_file=str(cluster.kubeconfig), context=cluster.context, client_configuration=cfg
    )
    kube = Kube(client.ApiClient(configuration=cfg))
    settings = callback.CallbackSettings(
        secret=SIGNUP_CALLBACK_SECRET, namespace=namespace, app_credentials_secret="meta-app"
    )
    app = callback.build_app(settings, functools.partial(callback.create_signup, kube, settings))
    try:
        async with test_utils.TestClient(test_utils.TestServer(app)) as replica:
            answer = await replica.post(
                "/signup", data=body, headers={"Content-Type": "application/json", **headers}
            )
            return answer.status, await answer.json()
    finally:
        await kube.close()


def test_callback_with_a_random_state_and_a_replay_to_another_replica(
    kubectl: Kubectl, callback_namespace: str, operator: Any, onboarding: Any, sim: Any
) -> None:
    """A random OAuth state beside the tenant id; the same signed request sent again to a
    second replica (or a restarted one: an empty memory) creates nothing: the API server
    holds the signup named after the code."""
    ob = onboarding()
    tenant_id = f"t_{uuid.uuid4().hex[:16]}"
    state = secrets.token_urlsafe(32)
    body = json.dumps({"code": ob.code, "tenantId": tenant_id, "state": state}).encode()
    before = signup_names(kubectl, callback_namespace)
    headers = signed(body)
    first = post_callback(operator, body, headers)
    assert first.status_code == 202, first.text
    name = first.json()["signup"]
    status, answer = asyncio.run(
        _post_to_a_second_replica(kubectl.cluster, callback_namespace, body, headers)
    )
    assert (status, answer["signup"]) == (409, name)
    # a retry, signed anew: a later second, so not the same signature (which this replica's
    # memory of signatures would refuse with 401 before the name is looked at)
    retry = signed(body)
    while retry == headers:
        time.sleep(0.1)
        retry = signed(body)
    again = post_callback(operator, body, retry)
    assert (again.status_code, again.json()["signup"]) == (409, name)
    assert signup_names(kubectl, callback_namespace) == before | {name}
    obj = wait_condition(kubectl, callback_namespace, name, "Ready", "True")
    tenant = get(kubectl, "wat", callback_namespace, obj["status"]["tenantName"])
    assert tenant["spec"]["tenantId"] == tenant_id
    assert state not in json.dumps(obj)  # the state is the integrator's: not kept
    assert calls_by_token(sim, "subscribed_apps", ob.token) == 1  # one signup ran, once


async def _slow_clients(port: int) -> list[tuple[float, bytes]]:
    """Three connections at once: one that sends nothing, one that sends its headers a
    byte at a time, one whose body never finishes; when each was cut off and what it got."""
    body = json.dumps({"code": "never-used", "tenantId": "t_slow"}).encode()
    head = (
        "POST /signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in signed(body).items())
        + f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()

    async def idle(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    async def trickle(writer: asyncio.StreamWriter) -> None:
        for byte in head:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.5)

    async def half_body(writer: asyncio.StreamWriter) -> None:
        writer.write(head + body[:5])
        await writer.drain()
        await asyncio.sleep(3600)

    async def one(send: Any) -> tuple[float, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sender = asyncio.create_task(send(writer))
        started = time.monotonic()
        try:
            data = await asyncio.wait_for(reader.read(), 60)  # until the server closes
            return time.monotonic() - started, data
        finally:
            sender.cancel()
            writer.close()

    return list(await asyncio.gather(one(idle), one(trickle), one(half_body)))


def test_callback_cuts_off_slow_clients(operator: Any) -> None:
    from whatsapp_operator.signup.callback import BODY_TIMEOUT, HEADER_TIMEOUT

    (idle, _), (trickled, _), (half, answer) = asyncio.run(_slow_clients(operator.signup_port))
    bound = HEADER_TIMEOUT + 5  # scheduling slack on a busy machine
    assert idle < bound
    assert trickled < bound
    assert half < BODY_TIMEOUT + HEADER_TIMEOUT + 5  # the body's bound, then the lingering
    assert answer.startswith(b"HTTP/1.1 408")


def test_zz_signup_leaves_no_secret_anywhere(kubectl: Kubectl, operator: Any) -> None:
    """No code, token, PIN-bearing Secret value or app secret in logs, Events or objects."""
    haystacks = {
        "operator log": operator.log_path.read_text(errors="replace"),
        "events": kubectl("get", "events", "-A", "-o", "json").stdout,
        "signups": kubectl("get", "was", "-A", "-o", "json", "--show-managed-fields").stdout,
        "tenants": kubectl("get", "wat", "-A", "-o", "json", "--show-managed-fields").stdout,
    }
    assert "signup" in haystacks["operator log"]
    for value in SECRETS:
        needles = {value, base64.b64encode(value.encode()).decode()}
        for where, text in haystacks.items():
            for needle in needles:
                assert needle not in text, f"a secret value leaked into the {where}"
