"""The operator's checks as Meta documents them (issue 16), end to end against the strict
simulator: the number's documented fields, ownership proven by the WABA's paged
`phone_numbers`, `appsecret_proof` for apps that require it (and for the workers), and user
tokens (working, with Meta's advice and one Warning)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from test_operator import apply_tenant, cond, events, get, wait_reason

from conftest import APP_ID, ISSUED_TOKENS, WORKERS_NAMESPACE, Kubectl
from whatsapp_contract.resolved import parse_document
from whatsapp_graph.client import appsecret_proof
from whatsapp_simulator.state import fingerprint as sim_fingerprint
from whatsapp_testkit.world import SCOPES, World, dump, new_id, new_token, secret, wait_for

pytestmark = pytest.mark.integration


def calls_of(sim: Any, token: str) -> dict[str, int]:
    """Requests the simulator answered for this token, by endpoint kind."""
    fp = sim_fingerprint(token)
    return {k: v[fp] for k, v in sim.calls()["by_kind_token"].items() if v.get(fp)}


def world_of(sim: Any, app_id: str = APP_ID, numbers: int = 1, **token: Any) -> World:
    """A WABA with `numbers` numbers (the tenant's is the last one created) and a token."""
    waba = new_id("2")
    sim.add_waba(waba)
    phones = [new_id("3") for _ in range(numbers)]
    sim.seed({
        "phones": [{"id": p, "waba_id": waba, "display_phone_number": f"+1 555 {i:04d}",
                    "verified_name": "Acme", "status": "CONNECTED"} for i, p in enumerate(phones)],
    })  # fmt: skip
    value = new_token()
    ISSUED_TOKENS.append(value)
    targets = {s: [waba] for s in SCOPES if s.startswith("whatsapp")}
    sim.add_token(value, app_id=app_id, scopes=SCOPES, targets=targets, **token)
    return World(waba, phones[-1], value, f"+1 555 {numbers - 1:04d}")


def test_a_valid_tenant_is_ready_with_documented_reads_only(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any
) -> None:
    w = world_of(sim)
    apply_tenant(kubectl, namespace, w)
    obj = wait_reason(kubectl, namespace, "acme", "Ready")
    phone = obj["status"]["phone"]
    assert phone["status"] == "CONNECTED"
    assert phone["canSendMessage"] == "AVAILABLE"
    assert phone["displayPhoneNumber"] == w.display
    calls = calls_of(sim, w.token)
    assert set(calls) == {"debug_token", "phone", "phone_numbers"}  # the ownership read
    assert calls["phone_numbers"] == 1


def test_ownership_found_on_a_later_page(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any
) -> None:
    """The WABA holds 150 numbers and pages hold 100: the tenant's is on page 2."""
    w = world_of(sim, numbers=150)
    apply_tenant(kubectl, namespace, w)
    wait_reason(kubectl, namespace, "acme", "Ready", timeout=30)
    assert calls_of(sim, w.token)["phone_numbers"] == 2


def test_a_number_of_another_waba_is_not_in_the_tenants_waba(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any
) -> None:
    """The token reaches both WABAs; the number is the other one's: read to the last page."""
    mine, theirs = world_of(sim, numbers=3), world_of(sim)
    value = new_token()
    ISSUED_TOKENS.append(value)
    sim.add_token(value, app_id=APP_ID, scopes=SCOPES)  # untargeted: both WABAs
    apply_tenant(kubectl, namespace, World(mine.waba_id, theirs.phone_number_id, value, ""))
    obj = wait_reason(kubectl, namespace, "acme", "PhoneNumberNotInWaba")
    assert f"not among the 3 numbers of WABA {mine.waba_id}" in cond(obj, "Ready")["message"]


def test_a_user_token_works_with_one_warning(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any
) -> None:
    w = world_of(sim, type="USER", expires_in=7200)
    apply_tenant(kubectl, namespace, w)
    obj = wait_reason(kubectl, namespace, "acme", "Ready")
    assert "Meta recommends system-user tokens" in cond(obj, "TokenValid")["message"]
    assert obj["status"]["token"]["type"] == "USER"
    kubectl("annotate", "wat", "acme", "-n", namespace, "whatsapp.operator.dev/revalidate=1")
    wait_for(
        lambda: "whatsapp.operator.dev/revalidate"
        not in (get(kubectl, namespace, "acme")["metadata"].get("annotations") or {}),
        20, 0.2, "the second check",
    )  # fmt: skip
    warnings = [e for e in events(kubectl, namespace, "acme") if e["reason"] == "UserToken"]
    assert [(e["type"], e.get("count", 1)) for e in warnings] == [("Warning", 1)]


def proof_app(sim: Any) -> tuple[str, str]:
    """A Meta app with "Require App Secret" on (its own: the session's app stays as it is)."""
    app_id, app_secret = new_id("5"), "proof-app-secret-" + new_token()[4:20]
    ISSUED_TOKENS.append(app_secret)
    sim.add_app(app_id, app_secret, require_app_secret_proof=True)
    return app_id, app_secret


def published_entry(kubectl: Kubectl, tenant_id: str) -> Any:
    items = kubectl.json("get", "secrets", "-n", WORKERS_NAMESPACE)["items"]
    for item in items:
        for raw in (item.get("data") or {}).values():
            try:
                document = parse_document(base64.b64decode(raw))
            except ValueError:
                continue
            for entry in document.tenants:
                if entry.tenant_id == tenant_id:
                    return entry
    return None


def test_an_app_that_requires_the_proof_gets_it_everywhere(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any
) -> None:
    app_id, app_secret = proof_app(sim)
    w = world_of(sim, app_id=app_id)
    proof = appsecret_proof(w.token, app_secret)
    ISSUED_TOKENS.append(proof)  # never in a log, an Event or a status either
    kubectl.apply(dump(secret("meta-app", {"appId": app_id, "appSecret": app_secret})), namespace)
    apply_tenant(kubectl, namespace, w, rotation={"appCredentialsSecretRef": {"name": "meta-app"}})
    obj = wait_reason(kubectl, namespace, "acme", "Ready")
    assert "appsecret_proof from Secret 'meta-app'" in cond(obj, "SecretResolved")["message"]
    tenant_id = f"t_acme_{namespace}"
    entry = wait_for(lambda: published_entry(kubectl, tenant_id), 20, 0.2, "published")
    assert entry.appsecret_proof is not None
    assert entry.appsecret_proof.get_secret_value() == proof  # the workers send it too
    assert set(calls_of(sim, w.token)) == {"debug_token", "phone", "phone_numbers"}


@pytest.mark.parametrize("credentials", ["none named", "Secret missing"])
def test_an_app_that_requires_the_proof_refuses_calls_without_it(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, credentials: str
) -> None:
    app_id, _ = proof_app(sim)
    w = world_of(sim, app_id=app_id)
    spec: dict[str, Any] = {}
    if credentials == "Secret missing":
        spec["rotation"] = {"appCredentialsSecretRef": {"name": "no-such-app"}}
    apply_tenant(kubectl, namespace, w, **spec)
    obj = wait_reason(kubectl, namespace, "acme", "AppSecretProofRequired")
    assert "spec.rotation.appCredentialsSecretRef" in cond(obj, "TokenValid")["message"]
    resolved = cond(obj, "SecretResolved")
    assert resolved["status"] == "True"  # the token is there; only the proof is missing
    if credentials == "Secret missing":
        assert "'no-such-app' not found" in resolved["message"]


def test_an_unreadable_app_secret_does_not_block_an_app_without_the_requirement(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any
) -> None:
    w = world_of(sim)
    apply_tenant(
        kubectl, namespace, w, rotation={"appCredentialsSecretRef": {"name": "no-such-app"}}
    )
    obj = wait_reason(kubectl, namespace, "acme", "Ready")
    message = cond(obj, "SecretResolved")["message"]
    assert "Secret 'no-such-app' not found: Graph calls go without appsecret_proof" in message
