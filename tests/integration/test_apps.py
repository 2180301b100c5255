"""Shared Meta apps end to end (issue 18): a cluster-scoped WhatsAppApp checked at Meta (the
simulator) with its app access token, tenants using it through spec.appRef from the namespaces
it selects, and what the app gives them: appsecret_proof and webhook_app_id in the published
config, the row's verify_token, their number in the webhook receiver's config.

The session operator runs with --webhook-receiver; outside a pod its own namespace (where the
apps' Secrets are read and the receiver's config is written) is --workers-namespace.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_meta_checks import calls_of, published_entry, world_of
from test_operator import apply_tenant, cond, events, wait_reason

from conftest import ISSUED_TOKENS, WORKERS_NAMESPACE, Kubectl
from whatsapp_contract.webhook import CONFIG_KEY, CONFIG_SECRET, parse_receiver_config
from whatsapp_graph.client import appsecret_proof
from whatsapp_operator.postgres.crypto import Keyring, TokenCipher
from whatsapp_testkit.world import dump, new_id, secret, tenant, wait_for

pytestmark = pytest.mark.integration
OPERATOR_NAMESPACE = WORKERS_NAMESPACE


class App:
    """A Meta app in the simulator and its WhatsAppApp (with its Secret) in the cluster."""

    def __init__(self, kubectl: Kubectl, sim: Any, *, selector: dict[str, Any] | None) -> None:
        self.kubectl = kubectl
        tag = uuid.uuid4().hex[:8]
        self.name = f"app-{tag}"
        self.label = f"apps.test/{self.name}"
        self.app_id = new_id("6")
        self.secret = f"app-secret-{tag}-{uuid.uuid4().hex}"
        self.verify = f"verify-{tag}-{uuid.uuid4().hex[:12]}"
        self.meta_name = f"Acme Hooks {tag}"
        ISSUED_TOKENS.extend([self.secret, self.verify, f"{self.app_id}|{self.secret}"])
        sim.add_app(self.app_id, self.secret, self.meta_name)
        self.selector = selector

    def apply(self, *, secret_value: str | None = None, with_secret: bool = True) -> None:
        if with_secret:
            data: dict[str, str | bytes] = {
                "appSecret": secret_value or self.secret,
                "verifyToken": self.verify,
            }
            self.kubectl.apply(dump(secret(self.name, data)), OPERATOR_NAMESPACE)
        spec: dict[str, Any] = {
            "appId": self.app_id,
            "appSecretRef": {"name": self.name},
            "verifyTokenRef": {"name": self.name},
        }
        if self.selector is not None:
            spec["namespaceSelector"] = self.selector
        body = {"apiVersion": "whatsapp.operator.dev/v1alpha1", "kind": "WhatsAppApp",
                "metadata": {"name": self.name}, "spec": spec}  # fmt: skip
        self.kubectl.apply(dump(body))

    def get(self) -> dict[str, Any]:
        out: dict[str, Any] = self.kubectl.json("get", "waapp", self.name)
        return out

    def wait(self, type_: str, reason: str, timeout: float = 20) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            obj = self.get()
            return obj if cond(obj, type_).get("reason") == reason else None

        return wait_for(probe, timeout, 0.2, f"WhatsAppApp {self.name} {type_} {reason}")

    def delete(self) -> None:
        self.kubectl("delete", "waapp", self.name, "--wait=false", check=False)
        self.kubectl("delete", "secret", self.name, "-n", OPERATOR_NAMESPACE, check=False)


@pytest.fixture
def make_app(kubectl: Kubectl, sim: Any, operator: Any) -> Iterator[Any]:
    made: list[App] = []

    def make(selector: dict[str, Any] | None = None) -> App:
        app = App(kubectl, sim, selector=selector)
        made.append(app)
        return app

    yield make
    for app in made:
        app.delete()


def app_events(kubectl: Kubectl, name: str) -> list[tuple[str, str]]:
    items = kubectl.json("get", "events", "-A")["items"]
    return [(e["type"], e["reason"]) for e in items
            if e["involvedObject"].get("kind") == "WhatsAppApp"
            and e["involvedObject"].get("name") == name]  # fmt: skip


def receiver_config(kubectl: Kubectl) -> Any:
    found = kubectl.json("get", "secret", CONFIG_SECRET, "-n", OPERATOR_NAMESPACE)
    return parse_receiver_config(base64.b64decode(found["data"][CONFIG_KEY]))


def test_an_app_goes_ready_with_its_conditions(kubectl: Kubectl, sim: Any, make_app: Any) -> None:
    app = make_app()
    app.apply()
    kubectl("wait", "--for=condition=Ready", f"waapp/{app.name}", "--timeout=30s")
    obj = app.get()
    status = obj["status"]
    assert {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]} == {
        "SecretResolved": ("True", "Resolved"),
        "AppVerified": ("True", "Verified"),
        "Ready": ("True", "Ready"),
    }
    assert status["appName"] == app.meta_name
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert "lastVerifiedAt" in status
    assert calls_of(sim, f"{app.app_id}|{app.secret}"), "Meta (the simulator) was asked"
    wide = kubectl("get", "waapp", app.name, "-o", "wide").stdout
    assert app.app_id in wide
    assert app.meta_name in wide
    wait_for(lambda: ("Normal", "Ready") in app_events(kubectl, app.name), 10, 0.2, "the Event")
    # the receiver's config follows, debounced (and after the empty one a fresh operator wrote)
    wait_for(lambda: _app_entry(kubectl, app.app_id) is not None, 15, 0.2, "the app published")
    entry = _app_entry(kubectl, app.app_id)
    assert entry is not None
    assert entry.name == app.name
    assert entry.verify_token.get_secret_value() == app.verify


def test_a_wrong_secret_fails_the_check_until_the_secret_is_fixed(
    kubectl: Kubectl, sim: Any, make_app: Any
) -> None:
    app = make_app()
    app.apply(secret_value="not-the-apps-secret")
    obj = app.wait("AppVerified", "AppSecretInvalid")
    assert cond(obj, "AppVerified")["status"] == "False"
    assert (cond(obj, "Ready")["status"], cond(obj, "Ready")["reason"]) == (
        "False", "AppSecretInvalid",
    )  # fmt: skip
    assert "not-the-apps-secret" not in str(obj)
    wait_for(
        lambda: ("Warning", "AppSecretInvalid") in app_events(kubectl, app.name), 10, 0.2,
        "the Warning",
    )  # fmt: skip
    assert not any(a.app_id == app.app_id for a in receiver_config(kubectl).apps)
    kubectl.apply(dump(secret(app.name, {"appSecret": app.secret, "verifyToken": app.verify})),
                  OPERATOR_NAMESPACE)  # fmt: skip
    app.wait("Ready", "Ready", timeout=10)  # the Secret's change woke the app


def test_a_tenant_needs_its_namespace_selected_by_the_app(
    kubectl: Kubectl,
    namespace: str,
    sim: Any,
    make_app: Any,
    sql: Any,
    keys_dir: Path,
) -> None:
    app = make_app(selector={"matchLabels": {"apps.test/enabled": "yes"}})
    app.apply()
    app.wait("Ready", "Ready")
    w = world_of(sim, app_id=app.app_id)
    tenant_id = f"t_app_{namespace}"
    apply_tenant(kubectl, namespace, w, tenant_id=tenant_id, appRef={"name": app.name})
    obj = wait_reason(kubectl, namespace, "acme", "AppNotAllowed")
    assert cond(obj, "AppResolved")["status"] == "False"
    assert f"namespace {namespace!r}" in cond(obj, "Ready")["message"]
    assert published_entry(kubectl, tenant_id) is None
    assert not _routed(kubectl, w.phone_number_id)

    kubectl("label", "namespace", namespace, "apps.test/enabled=yes")
    obj = wait_reason(kubectl, namespace, "acme", "Ready", timeout=20)
    assert (cond(obj, "AppResolved")["status"], cond(obj, "AppResolved")["reason"]) == (
        "True", "Resolved",
    )  # fmt: skip
    proof = appsecret_proof(w.token, app.secret)
    ISSUED_TOKENS.append(proof)
    entry = wait_for(lambda: published_entry(kubectl, tenant_id), 20, 0.2, "the published entry")
    assert entry.webhook_app_id == app.app_id
    assert entry.appsecret_proof is not None
    assert entry.appsecret_proof.get_secret_value() == proof
    number = wait_for(lambda: _routed(kubectl, w.phone_number_id), 20, 0.2, "the routed number")
    assert (number.app_id, number.namespace, number.name, number.tenant_id, number.pool) == (
        app.app_id, namespace, "acme", tenant_id, "default",
    )  # fmt: skip
    assert number.display_phone_number == w.display
    stored = wait_for(lambda: _verify_column(sql, tenant_id), 20, 0.2, "the verify_token column")
    assert stored.startswith("enc:v1:")
    assert app.verify not in stored
    cipher = TokenCipher("encrypted", Keyring.from_directory(keys_dir))
    assert cipher.open(stored, tenant_id, "verify_token") == app.verify

    kubectl("label", "namespace", namespace, "apps.test/enabled-")
    wait_reason(kubectl, namespace, "acme", "AppNotAllowed", timeout=20)
    wait_for(lambda: not _routed(kubectl, w.phone_number_id), 20, 0.2, "the number withdrawn")


def test_a_missing_app_then_one_not_ready(
    kubectl: Kubectl, namespace: str, sim: Any, make_app: Any
) -> None:
    app = make_app(selector={})  # every namespace
    w = world_of(sim, app_id=app.app_id)
    apply_tenant(kubectl, namespace, w, appRef={"name": app.name})
    wait_reason(kubectl, namespace, "acme", "AppNotFound")
    app.apply(with_secret=False)
    app.wait("Ready", "SecretNotFound")
    obj = wait_reason(kubectl, namespace, "acme", "AppNotReady")
    assert "SecretNotFound" in cond(obj, "Ready")["message"]
    kubectl.apply(dump(secret(app.name, {"appSecret": app.secret, "verifyToken": app.verify})),
                  OPERATOR_NAMESPACE)  # fmt: skip
    wait_reason(kubectl, namespace, "acme", "Ready", timeout=20)


def _app_entry(kubectl: Kubectl, app_id: str) -> Any:
    return next((a for a in receiver_config(kubectl).apps if a.app_id == app_id), None)


def _routed(kubectl: Kubectl, phone_number_id: str) -> Any:
    try:
        config = receiver_config(kubectl)
    except Exception:  # not written yet
        return None
    return next((n for n in config.numbers if n.phone_number_id == phone_number_id), None)


def _verify_column(sql: Any, tenant_id: str) -> str | None:
    rows = sql("SELECT verify_token FROM tenant_whatsapp_config WHERE tenant_id = %s", tenant_id)
    return str(rows[0]["verify_token"]) if rows and rows[0]["verify_token"] else None


def test_admission_guards_apps_and_app_refs(
    kubectl: Kubectl, namespace: str, sim: Any, make_app: Any
) -> None:
    """What the API server refuses before the operator sees it, in the user's words."""
    w = world_of(sim)

    def refused(body: dict[str, Any], ns: str | None = None) -> str:
        extra = ["-n", ns] if ns else []
        proc = kubectl(
            "apply", "--server-side", "--field-manager=tests", *extra, "-f", "-",
            input=dump(body), check=False,
        )  # fmt: skip
        assert proc.returncode != 0, proc.stdout
        return proc.stderr

    both = tenant("acme", "t_both", w, "tok", appRef={"name": "hooks"},
                  rotation={"appCredentialsSecretRef": {"name": "meta-app"}})  # fmt: skip
    assert "spec.appRef and spec.rotation.appCredentialsSecretRef are mutually exclusive" in (
        refused(both, namespace)
    )
    refresh = tenant("acme", "t_refresh", w, "tok", appRef={"name": "hooks"},
                     rotation={"strategy": "Refresh"})  # fmt: skip
    kubectl.apply(dump(refresh), namespace)  # Refresh takes the app's credentials: admitted
    app = make_app(selector={"matchExpressions": [{"key": "a", "operator": "In"}]})
    body = {"apiVersion": "whatsapp.operator.dev/v1alpha1", "kind": "WhatsAppApp",
            "metadata": {"name": app.name},
            "spec": {"appId": app.app_id, "appSecretRef": {"name": app.name},
                     "verifyTokenRef": {"name": app.name},
                     "namespaceSelector": app.selector}}  # fmt: skip
    assert "In and NotIn need values" in refused(body)
    body["spec"]["namespaceSelector"] = {}
    kubectl.apply(dump(body))
    body["spec"]["appId"] = new_id("6")
    assert "appId is immutable" in refused(body)


def test_the_example_is_admitted(kubectl: Kubectl, operator: Any) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "app.yaml"
    kubectl(
        "apply", "--server-side", "--field-manager=tests", "--dry-run=server",
        "--validate=strict", "-n", OPERATOR_NAMESPACE, "-f", str(example),
    )  # fmt: skip


def test_a_restart_keeps_tenants_on_their_app_without_a_flap(
    kubectl: Kubectl, namespace: str, sim: Any, make_app: Any, operator: Any
) -> None:
    """After a restart a tenant waits for its app's first pass (no AppNotFound in between),
    and the receiver's config, adopted, is not rewritten: its content did not change."""
    app = make_app(selector={})
    app.apply()
    app.wait("Ready", "Ready")
    w = world_of(sim, app_id=app.app_id)
    apply_tenant(kubectl, namespace, w, appRef={"name": app.name})
    ready = cond(wait_reason(kubectl, namespace, "acme", "Ready"), "Ready")
    wait_for(lambda: _routed(kubectl, w.phone_number_id), 20, 0.2, "the routed number")
    config_before = kubectl.json("get", "secret", CONFIG_SECRET, "-n", OPERATOR_NAMESPACE)
    checks_before = sum(calls_of(sim, f"{app.app_id}|{app.secret}").values())
    operator.kill()
    operator.start()
    wait_for(
        lambda: sum(calls_of(sim, f"{app.app_id}|{app.secret}").values()) > checks_before,
        30, 0.2, "the app checked again after the restart",
    )  # fmt: skip
    kubectl("annotate", "wat", "acme", "-n", namespace, "whatsapp.operator.dev/revalidate=1")
    wait_for(
        lambda: "whatsapp.operator.dev/revalidate"
        not in (kubectl.json("get", "wat", "acme", "-n", namespace)["metadata"].get("annotations")
                or {}),
        30, 0.2, "a pass after the restart",
    )  # fmt: skip
    obj = kubectl.json("get", "wat", "acme", "-n", namespace)
    assert cond(obj, "Ready") == ready  # same status, same lastTransitionTime
    reasons = [e["reason"] for e in events(kubectl, namespace, "acme")]
    assert reasons.count("Ready") == 1
    assert not {"AppNotFound", "AppNotReady"} & set(reasons)
    config_after = kubectl.json("get", "secret", CONFIG_SECRET, "-n", OPERATOR_NAMESPACE)
    assert (
        config_after["metadata"]["resourceVersion"]
        == (config_before["metadata"]["resourceVersion"])
    )
