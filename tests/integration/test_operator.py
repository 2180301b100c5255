"""The operator end to end: a real API server, the simulator over HTTP, the operator process.

Each test builds its own world (WABA, phone number, token) in the simulator and its own
namespace, so tests never share state except the long-running operator.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest

from conftest import APP_ID, ISSUED_TOKENS, Kubectl
from whatsapp_testkit.world import SCOPES, World, dump, new_id, new_token, secret, tenant, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def world(sim: Any) -> Any:
    def make(
        *,
        scopes: tuple[str, ...] = SCOPES,
        targets: bool = True,
        waba_id: str | None = None,
        register_phone: bool = True,
        display: str = "+1 555-0100",
    ) -> World:
        waba = waba_id or new_id("2")
        if waba_id is None:
            sim.add_waba(waba)
        phone = new_id("3")
        if register_phone:
            sim.add_phone(
                phone,
                waba_id=waba,
                display_phone_number=display,
                verified_name="Acme Test",
                quality_rating="GREEN",
            )
        token = new_token()
        ISSUED_TOKENS.append(token)
        tgt = {s: [waba] for s in SCOPES if s.startswith("whatsapp")} if targets else None
        sim.add_token(token, app_id=APP_ID, scopes=scopes, targets=tgt)
        return World(waba, phone, token, display)

    return make


def get(kubectl: Kubectl, ns: str, name: str) -> dict[str, Any]:
    out: dict[str, Any] = kubectl.json("get", "wat", "-n", ns, name)
    return out


def cond(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == type_:
            return dict(c)
    return {}


def ready_reasons(kubectl: Kubectl, ns: str) -> dict[str, str]:
    """name -> the reason of its Ready condition ("" before it has one), for every tenant."""
    items = kubectl.json("get", "wat", "-n", ns)["items"]
    return {o["metadata"]["name"]: cond(o, "Ready").get("reason", "") for o in items}


def wait_reason(
    kubectl: Kubectl, ns: str, name: str, reason: str, type_: str = "Ready", timeout: float = 20
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get(kubectl, ns, name)
        return obj if cond(obj, type_).get("reason") == reason else None

    try:
        return wait_for(probe, timeout, 0.2, f"{type_} reason {reason}")
    except AssertionError:
        obj = get(kubectl, ns, name)
        raise AssertionError(
            f"{ns}/{name}: {type_} never became {reason}: {json.dumps(obj.get('status'))}"
        ) from None


def apply_tenant(
    kubectl: Kubectl,
    ns: str,
    world: World,
    name: str = "acme",
    *,
    tenant_id: str | None = None,
    with_secret: bool = True,
    **spec: Any,
) -> None:
    objs = [tenant(name, tenant_id or f"t_{name}_{ns}", world, f"{name}-token", **spec)]
    if with_secret:
        objs.insert(0, secret(f"{name}-token", {"accessToken": world.token}))
    kubectl.apply(dump(*objs), ns)


def events(kubectl: Kubectl, ns: str, name: str) -> list[dict[str, Any]]:
    items = kubectl.json("get", "events", "-n", ns)["items"]
    return [e for e in items if e["involvedObject"].get("name") == name]


def test_good_tenant_becomes_ready_and_kubectl_wait_returns(
    kubectl: Kubectl, namespace: str, operator: Any, world: Any
) -> None:
    w = world()
    apply_tenant(kubectl, namespace, w)
    kubectl("wait", "--for=condition=Ready", "wat/acme", "-n", namespace, "--timeout=30s")
    obj = get(kubectl, namespace, "acme")
    status = obj["status"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "SecretResolved": "True",
        "TokenValid": "True",
        "PhoneNumberVerified": "True",
        "Synced": "True",
        "TokenRotation": "True",
        "ApiVersionSupported": "True",
        "Ready": "True",
    }
    assert all(c["observedGeneration"] == 1 for c in status["conditions"])
    assert status["phone"]["displayPhoneNumber"] == w.display
    assert status["phone"]["qualityRating"] == "GREEN"
    assert status["token"]["type"] == "SYSTEM_USER"
    assert status["token"]["fingerprint"].startswith("sha256:")
    assert "expiresAt" not in status["token"]  # never-expiring token
    table = kubectl("get", "wat", "-n", namespace, "-o", "wide").stdout
    for column in (w.display, "True", "Ready", "GREEN"):
        assert column in table
    describe = kubectl("describe", "wat", "acme", "-n", namespace).stdout
    assert "PhoneNumberVerified" in describe
    ready_events = [e for e in events(kubectl, namespace, "acme") if e["reason"] == "Ready"]
    assert [e["type"] for e in ready_events] == ["Normal"]
    # the measured default stack (issue 7): kopf on uvloop, the Graph client on aiohttp
    assert "event loop uvloop, HTTP aiohttp" in operator.log_path.read_text(errors="replace")


def test_secret_missing_then_created(
    kubectl: Kubectl, namespace: str, operator: Any, world: Any
) -> None:
    w = world()
    apply_tenant(kubectl, namespace, w, with_secret=False)
    obj = wait_reason(kubectl, namespace, "acme", "SecretNotFound")
    assert cond(obj, "SecretResolved")["status"] == "False"
    assert "acme-token" in cond(obj, "Ready")["message"]
    warnings = [e for e in events(kubectl, namespace, "acme") if e["reason"] == "SecretNotFound"]
    assert warnings
    assert warnings[0]["type"] == "Warning"
    kubectl.apply(dump(secret("acme-token", {"accessToken": w.token})), namespace)
    wait_reason(kubectl, namespace, "acme", "Ready", timeout=5)


@pytest.mark.parametrize(
    ("data", "reason", "message"),
    [
        pytest.param(
            {"token": "x"}, "SecretKeyMissing", "has no key 'accessToken'", id="key missing"
        ),
        pytest.param({"accessToken": ""}, "TokenEmpty", "is empty", id="empty token"),
        pytest.param(
            {"accessToken": " \n\t"}, "TokenEmpty", "only whitespace", id="whitespace only"
        ),
        pytest.param(
            {"accessToken": "EAA abc"}, "TokenMalformed", "whitespace or control", id="inner space"
        ),
        pytest.param({"accessToken": b"\xff\xfe\x00"}, "TokenMalformed", "binary", id="binary"),
        pytest.param(
            {"accessToken": "x" * 1_000_000}, "TokenMalformed", "at most 4096", id="1 MB value"
        ),
    ],
)
def test_bad_secret_content_is_a_clear_condition(
    kubectl: Kubectl,
    namespace: str,
    operator: Any,
    world: Any,
    data: dict[str, str | bytes],
    reason: str,
    message: str,
) -> None:
    w = world()
    kubectl.apply(dump(secret("acme-token", data)), namespace)
    apply_tenant(kubectl, namespace, w, with_secret=False)
    obj = wait_reason(kubectl, namespace, "acme", reason)
    assert message in cond(obj, "SecretResolved")["message"]
    assert cond(obj, "TokenValid")["reason"] == "NotChecked"


def test_token_with_trailing_newline_is_accepted(
    kubectl: Kubectl, namespace: str, operator: Any, world: Any
) -> None:
    w = world()
    kubectl.apply(dump(secret("acme-token", {"accessToken": w.token + "\n"})), namespace)
    apply_tenant(kubectl, namespace, w, with_secret=False)
    obj = wait_reason(kubectl, namespace, "acme", "Ready")
    assert "surrounding whitespace ignored" in cond(obj, "SecretResolved")["message"]


def test_token_replaced_in_secret_is_revalidated_within_2s(
    kubectl: Kubectl, namespace: str, operator: Any, world: Any, sim: Any
) -> None:
    w = world()
    apply_tenant(kubectl, namespace, w)
    before = wait_reason(kubectl, namespace, "acme", "Ready")
    new = new_token()
    ISSUED_TOKENS.append(new)
    sim.add_token(new, app_id=APP_ID, scopes=SCOPES, targets={s: [w.waba_id] for s in SCOPES})
    validated = sim.calls()["by_kind"].get("debug_token", 0)
    started = time.monotonic()
    kubectl.apply(dump(secret("acme-token", {"accessToken": new})), namespace)

    def switched() -> dict[str, Any] | None:
        obj = get(kubectl, namespace, "acme")
        fp = obj["status"].get("token", {}).get("fingerprint")
        ok = (
            fp != before["status"]["token"]["fingerprint"]
            and cond(obj, "Ready")["status"] == "True"
        )
        return obj if ok and obj["status"]["token"].get("lastValidatedAt") else None

    wait_for(switched, 5, 0.05, "new token validated")
    elapsed = time.monotonic() - started
    print(f"\n[figure] Secret change -> tenant re-validated in {elapsed:.2f} s")
    assert elapsed < 2.0
    assert sim.calls()["by_kind"].get("debug_token", 0) > validated


def test_revoked_token_is_token_valid_false_on_the_next_check(
    kubectl: Kubectl, namespace: str, operator: Any, world: Any, sim: Any
) -> None:
    w = world()
    apply_tenant(kubectl, namespace, w)
    wait_reason(kubectl, namespace, "acme", "Ready")
    sim.revoke_token(w.token)
    kubectl("annotate", "wat", "acme", "-n", namespace, "whatsapp.operator.dev/revalidate=now")
    obj = wait_reason(kubectl, namespace, "acme", "TokenInvalidated", "TokenValid")
    assert cond(obj, "Ready")["status"] == "False"
    assert cond(obj, "Ready")["reason"] == "TokenInvalidated"
    # the request annotation is removed once handled
    wait_for(
        lambda: (
            "whatsapp.operator.dev/revalidate"
            not in (get(kubectl, namespace, "acme")["metadata"].get("annotations") or {})
        ),
        10,
        0.2,
        "annotation removed",
    )


def test_expired_token(
    kubectl: Kubectl, namespace: str, operator: Any, world: Any, sim: Any
) -> None:
    w = world()
    sim.expire_token(w.token)
    apply_tenant(kubectl, namespace, w)
    wait_reason(kubectl, namespace, "acme", "TokenExpired")


def test_missing_scope(kubectl: Kubectl, namespace: str, operator: Any, world: Any) -> None:
    w = world(scopes=("business_management", "whatsapp_business_management"))
    apply_tenant(kubectl, namespace, w)
    obj = wait_reason(kubectl, namespace, "acme", "MissingScopes")
    assert "whatsapp_business_messaging" in cond(obj, "TokenValid")["message"]


def test_waba_not_covered_by_token(
    kubectl: Kubectl, namespace: str, operator: Any, world: Any, sim: Any
) -> None:
    w = world()
    other_waba = new_id("2")
    sim.add_waba(other_waba)
    moved = World(other_waba, w.phone_number_id, w.token, w.display)
    apply_tenant(kubectl, namespace, moved)
    obj = wait_reason(kubectl, namespace, "acme", "WabaNotInScope")
    assert other_waba in cond(obj, "TokenValid")["message"]


def test_phone_number_not_in_the_waba(
    kubectl: Kubectl, namespace: str, operator: Any, world: Any, sim: Any
) -> None:
    w = world()
    stranger = world(waba_id=None)  # a number of another WABA, readable by its own token
    sim.add_token(w.token + "x", app_id=APP_ID, scopes=SCOPES)  # unrelated, untargeted
    ISSUED_TOKENS.append(w.token + "x")
    mixed = World(w.waba_id, stranger.phone_number_id, w.token + "x", w.display)
    apply_tenant(kubectl, namespace, mixed)
    obj = wait_reason(kubectl, namespace, "acme", "PhoneNumberNotInWaba")
    assert cond(obj, "TokenValid")["status"] == "True"


def test_unknown_phone_number(kubectl: Kubectl, namespace: str, operator: Any, world: Any) -> None:
    w = world(register_phone=False)
    apply_tenant(kubectl, namespace, w)
    wait_reason(kubectl, namespace, "acme", "PhoneNumberNotFound")


@pytest.mark.parametrize("field", ["tenantId", "phoneNumberId"])
def test_duplicate_claims_then_hand_over(
    kubectl: Kubectl, namespace: str, operator: Any, world: Any, field: str
) -> None:
    w = world()
    apply_tenant(kubectl, namespace, w, "first", tenant_id=f"t_dup_{namespace}")
    wait_reason(kubectl, namespace, "first", "Ready")
    time.sleep(1.1)  # creation timestamps have second precision
    second_id = f"t_dup_{namespace}" if field == "tenantId" else f"t_other_{namespace}"
    if field == "tenantId":
        other = world()  # same tenant id, its own number
    else:
        other = World(w.waba_id, w.phone_number_id, w.token, w.display)
    apply_tenant(kubectl, namespace, other, "second", tenant_id=second_id)
    reason = "DuplicateTenantId" if field == "tenantId" else "DuplicatePhoneNumberId"
    obj = wait_reason(kubectl, namespace, "second", reason)
    assert f"{namespace}/first" in cond(obj, "Ready")["message"]
    assert cond(get(kubectl, namespace, "first"), "Ready")["status"] == "True"
    kubectl("delete", "wat", "first", "-n", namespace, "--wait=true", "--timeout=20s")
    wait_reason(kubectl, namespace, "second", "Ready", timeout=10)


def test_graph_api_down_then_back(
    kubectl: Kubectl, namespace: str, operator: Any, world: Any, sim: Any
) -> None:
    w = world()
    fault = sim.add_fault("http_status", http_status=503, token=w.token)
    apply_tenant(kubectl, namespace, w)
    obj = wait_reason(kubectl, namespace, "acme", "GraphApiUnavailable", "TokenValid")
    assert cond(obj, "TokenValid")["status"] == "Unknown"
    assert cond(obj, "Ready")["status"] != "True"
    sim.remove_fault(fault)
    wait_reason(kubectl, namespace, "acme", "Ready", timeout=30)


def test_ready_tenant_stays_ready_through_a_short_outage(
    kubectl: Kubectl, namespace: str, operator: Any, world: Any, sim: Any
) -> None:
    w = world()
    apply_tenant(kubectl, namespace, w)
    ready = cond(wait_reason(kubectl, namespace, "acme", "Ready"), "Ready")
    fault = sim.add_fault("drop", token=w.token)
    try:
        kubectl("annotate", "wat", "acme", "-n", namespace, "whatsapp.operator.dev/revalidate=1")
        obj = wait_reason(kubectl, namespace, "acme", "GraphApiUnavailable", "TokenValid")
        assert cond(obj, "Ready")["status"] == "True"
        assert cond(obj, "Ready")["lastTransitionTime"] == ready["lastTransitionTime"]
        assert "still Ready" in cond(obj, "Ready")["message"]
    finally:
        sim.remove_fault(fault)
    wait_reason(kubectl, namespace, "acme", "TokenValid", "TokenValid", timeout=30)


def test_operator_restart_keeps_conditions_and_posts_no_events(
    kubectl: Kubectl, namespace: str, operator: Any, world: Any, sim: Any
) -> None:
    good, bad = world(), world()
    apply_tenant(kubectl, namespace, good, "good")
    apply_tenant(kubectl, namespace, bad, "bad", with_secret=False)
    wait_reason(kubectl, namespace, "good", "Ready")
    wait_reason(kubectl, namespace, "bad", "SecretNotFound")
    time.sleep(1)  # let the Events land
    before = {n: get(kubectl, namespace, n)["status"] for n in ("good", "bad")}
    events_before = len(kubectl.json("get", "events", "-n", namespace)["items"])
    checks_before = sim.calls()["by_token"]
    operator.restart()
    time.sleep(5)
    after = {n: get(kubectl, namespace, n)["status"] for n in ("good", "bad")}
    for name in before:
        assert (
            json.dumps(after[name], indent=1, sort_keys=True).splitlines()
            == json.dumps(before[name], indent=1, sort_keys=True).splitlines()
        )
    assert len(kubectl.json("get", "events", "-n", namespace)["items"]) == events_before
    # recently validated tokens are not checked again on restart
    key = hashlib.sha256(good.token.encode()).hexdigest()[:12]  # the simulator's fingerprint
    assert sim.calls()["by_token"].get(key) == checks_before.get(key)
