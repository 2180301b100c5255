"""A signup's loop against in-memory fakes of the Kubernetes API and the Graph API: the
paths the integration tests cannot force (lost writes, conflicts, the audit hook)."""

from __future__ import annotations

import base64
import copy
from collections import Counter
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from whatsapp_graph.client import appsecret_proof
from whatsapp_graph.errors import GraphApiError, GraphApiErrorInfo, GraphUnavailable
from whatsapp_operator.meta.budget import RequestBudget
from whatsapp_operator.model.patches import merge_patch
from whatsapp_operator.model.spec import PLURAL
from whatsapp_operator.model.tenant_policy import parse_policy
from whatsapp_operator.runtime.kube import KubeConflict, KubeUnavailable, SecretSnapshot
from whatsapp_operator.runtime.services import Runtime
from whatsapp_operator.signup.model import SIGNUP_ANNOTATION, SIGNUP_PLURAL
from whatsapp_operator.signup.runner import SignupRunner

NS = "shop"
TOKEN = "EAAG" + "t" * 60
CODE = "AQBcode0123456789"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def apply_merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            apply_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeKube:
    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, Any]] = {}
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.fail_status_writes = 0
        self.before_create_secret: Any = None
        self.rv = 0

    def put_secret(
        self, name: str, data: dict[str, str], annotations: dict[str, str] | None = None
    ) -> None:
        self.rv += 1
        meta = {"name": name, "annotations": annotations or {}, "resourceVersion": str(self.rv)}
        self.secrets[name] = {"metadata": meta, "data": {k: b64(v) for k, v in data.items()}}

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self.secrets.get(name)
        return dict(found["data"]) if found else None

    async def read_secret(self, namespace: str, name: str) -> SecretSnapshot | None:
        found = self.secrets.get(name)
        if found is None:
            return None
        meta = found["metadata"]
        return SecretSnapshot(
            dict(found["data"]), meta["resourceVersion"], dict(meta["annotations"])
        )

    async def create_secret(self, namespace: str, body: dict[str, Any]) -> bool:
        if self.before_create_secret is not None:
            hook, self.before_create_secret = self.before_create_secret, None
            hook()
        name = body["metadata"]["name"]
        if name in self.secrets:
            return False
        self.rv += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.rv)
        self.secrets[name] = stored
        return True

    async def patch_secret(
        self, namespace: str, name: str, patch: dict[str, Any], resource_version: str | None
    ) -> None:
        current = self.secrets[name]
        if resource_version and current["metadata"]["resourceVersion"] != resource_version:
            raise KubeConflict("changed")
        apply_merge(current, patch)
        self.rv += 1
        current["metadata"]["resourceVersion"] = str(self.rv)

    async def get_custom(
        self, namespace: str, name: str, plural: str = PLURAL
    ) -> dict[str, Any] | None:
        found = self.objects.get((plural, name))
        return copy.deepcopy(found) if found else None

    async def create_custom(
        self, namespace: str, body: dict[str, Any], plural: str = PLURAL
    ) -> bool:
        key = (plural, body["metadata"]["name"])
        if key in self.objects:
            return False
        self.objects[key] = copy.deepcopy(body)
        return True

    async def patch_custom(
        self, namespace: str, name: str, patch: dict[str, Any], *, plural: str = PLURAL,
        status: bool = False,
    ) -> str | None:  # fmt: skip
        if status and self.fail_status_writes:
            self.fail_status_writes -= 1
            raise KubeUnavailable("patching status: HTTP 503")
        obj = self.objects.get((plural, name))
        if obj is None:
            return None
        apply_merge(obj, patch)
        return "1"


def graph_error(code: int, subcode: int | None = None) -> GraphApiError:
    return GraphApiError(GraphApiErrorInfo(code, subcode, "OAuthException", "m", None, None, 400))


class FakeGraph:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.failures: dict[str, list[Exception]] = {}
        self.numbers = [{"id": "300", "display_phone_number": "+1 555-0100"}]
        self.grants: list[dict[str, Any]] = [
            {"scope": "whatsapp_business_management", "target_ids": ["200"]}
        ]
        self.proofs: dict[str, str | None] = {}  # call -> the appsecret_proof it carried
        self.log: list[str] = []  # the calls and the budget's waits, in order

    def _call(self, name: str, proof: str | None = None) -> None:
        self.calls[name] += 1
        self.proofs[name] = proof
        self.log.append(name)
        queue = self.failures.get(name)
        if queue:
            raise queue.pop(0)

    async def exchange_code(self, app_id: str, app_secret: str, code: str) -> dict[str, Any]:
        assert (app_id, app_secret, code) == ("42", "app-secret-value", CODE)
        self._call("exchange_code")
        return {"access_token": TOKEN, "token_type": "bearer"}

    async def debug_token(self, token: str, *, proof: str | None = None) -> dict[str, Any]:
        self._call("debug_token", proof)
        return {"is_valid": True, "granular_scopes": self.grants}

    async def waba_phone_numbers(
        self, token: str, waba: str, *, pace: Any = None, proof: str | None = None
    ) -> list[dict[str, Any]]:
        assert waba == self.waba
        for _ in range(2):  # two pages, each paced through the budget
            await pace()
        self._call("phone_numbers", proof)
        return self.numbers

    waba = "200"

    async def subscribe_app(self, token: str, waba: str, *, proof: str | None = None) -> None:
        self._call("subscribe_app", proof)

    async def register_number(
        self, token: str, phone: str, pin: str, *, proof: str | None = None
    ) -> None:
        assert pin == "123456"
        self._call("register_number", proof)


class FakeAudit:
    def __init__(self) -> None:
        self.entries: list[tuple[Any, ...]] = []

    def submit(self, *args: Any) -> None:  # AuditWriter's interface, as the runtime holds it
        self.entries.append(args)


OPEN = parse_policy("open", {"namespaceSelector": {}, "tenantIds": ["*"]})


class World:
    def __init__(self, **spec: Any) -> None:
        self.kube, self.graph, self.audit = FakeKube(), FakeGraph(), FakeAudit()
        self.events: list[tuple[str, str]] = []
        self.sleeps: list[float] = []
        self.kube.put_secret("acme-code", {"code": CODE, "pin": "123456"})
        self.kube.put_secret("meta-app", {"appId": "42", "appSecret": "app-secret-value"})
        body = {
            "metadata": {"namespace": NS, "name": "acme", "generation": 1},
            "spec": {
                "codeSecretRef": {"name": "acme-code"},
                "appCredentialsSecretRef": {"name": "meta-app"},
                "tenant": {"tenantId": "t_acme"},
                **spec,
            },
        }
        self.kube.objects[(SIGNUP_PLURAL, "acme")] = body
        self.rt = SimpleNamespace(
            kube=self.kube,
            validator=SimpleNamespace(graph=self.graph, budget=RequestBudget(1000, 1000)),
            clock=lambda: datetime(2026, 11, 1, tzinfo=UTC),
            post_event=lambda body, event: self.events.append((event.type, event.reason)),
            audit=self.audit,
            # --tenant-policy enforce (the default), with a policy allowing every id everywhere
            tenant_policy="enforce",
            tenant_policies={"open": [OPEN]},
            namespace_labels={NS: [{}]},
        )
        self.rt.labels_of = lambda ns: Runtime.labels_of(self.rt, ns)  # type: ignore[arg-type]
        self.rt.policy_verdict = lambda t, ns: Runtime.policy_verdict(self.rt, t, ns)  # type: ignore[arg-type]

    @property
    def signup(self) -> dict[str, Any]:
        return self.kube.objects[(SIGNUP_PLURAL, "acme")]

    def conditions(self) -> dict[str, tuple[str, str]]:
        conds = self.signup.get("status", {}).get("conditions", [])
        return {c["type"]: (c["status"], c["reason"]) for c in conds}

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if len(self.sleeps) > 20:
            raise AssertionError("the runner loops")

    async def run(self, claims: tuple[str, ...] = ()) -> None:
        body = copy.deepcopy(self.signup)
        runner = SignupRunner(self.rt, body, claimed_by=lambda _: claims, sleep=self.sleep)  # type: ignore[arg-type]
        await runner.run()


async def test_complete_signup_with_audit_entries_that_never_hold_the_token() -> None:
    w = World(register=True)
    await w.run()
    assert w.conditions()["Ready"] == ("True", "Ready")
    assert w.graph.calls == Counter(
        exchange_code=1, debug_token=1, phone_numbers=1, subscribe_app=1, register_number=1
    )
    tenant = w.kube.objects[(PLURAL, "acme")]
    assert tenant["spec"]["phoneNumberId"] == "300"
    assert tenant["metadata"]["annotations"] == {SIGNUP_ANNOTATION: "acme"}
    assert w.kube.secrets["acme-meta-token"]["data"]["accessToken"] == b64(TOKEN)
    assert [e[1] for e in w.audit.entries] == ["signup", "signup"]
    assert all(e[0] == "t_acme" and e[3].startswith("sha256:") for e in w.audit.entries)
    assert TOKEN not in repr(w.audit.entries) + repr(w.events) + repr(w.signup)
    assert ("Normal", "SignupComplete") in w.events
    assert w.sleeps == []


async def test_registration_limit_stops_for_good_even_after_a_restart() -> None:
    w = World(register=True)
    w.graph.failures["register_number"] = [graph_error(133016)]
    await w.run()
    assert w.conditions()["NumberRegistered"] == ("False", "RegistrationLimitReached")
    assert w.conditions()["Ready"] == ("False", "RegistrationLimitReached")
    await w.run()  # the operator restarted: the daemon runs again from the stored status
    assert w.graph.calls["register_number"] == 1
    assert w.signup["status"]["registerAttempts"] == 1
    assert (PLURAL, "acme") not in w.kube.objects


async def test_transient_register_failures_spend_at_most_three_calls() -> None:
    w = World(register=True)
    w.graph.failures["register_number"] = [graph_error(131000)] * 5
    await w.run()
    assert w.graph.calls["register_number"] == 3
    assert w.conditions()["NumberRegistered"] == ("False", "RegistrationFailed")


async def test_graph_unavailable_during_the_exchange_is_retried_with_backoff() -> None:
    w = World()
    w.graph.failures["exchange_code"] = [GraphUnavailable("down"), GraphUnavailable("down")]
    await w.run()
    assert w.conditions()["Ready"] == ("True", "Ready")
    assert w.signup["status"]["exchangeAttempts"] == 3
    assert len(w.sleeps) == 2
    assert w.sleeps[1] >= 2.0  # doubling backoff
    assert ("Warning", "GraphApiUnavailable") in w.events


async def test_a_token_obtained_is_never_lost_to_a_secret_conflict() -> None:
    w = World()

    def someone_creates_the_secret() -> None:  # another signup's leftover, stopped
        w.kube.put_secret("acme-meta-token", {"accessToken": "EAAold"}, {SIGNUP_ANNOTATION: "x"})

    w.kube.before_create_secret = someone_creates_the_secret
    await w.run()
    assert w.graph.calls["exchange_code"] == 1  # the code is single-use: never sent twice
    assert w.kube.secrets["acme-meta-token"]["data"]["accessToken"] == b64(TOKEN)
    assert w.kube.secrets["acme-meta-token"]["metadata"]["annotations"][SIGNUP_ANNOTATION] == "acme"
    assert w.conditions()["Ready"] == ("True", "Ready")


async def test_lost_status_write_is_retried() -> None:
    w = World()
    w.kube.fail_status_writes = 2
    await w.run()
    assert w.conditions()["Ready"] == ("True", "Ready")
    assert w.graph.calls["exchange_code"] == 1
    assert len(w.sleeps) >= 1


async def test_invalid_spec_is_reported() -> None:
    w = World(tenant={"tenantId": "-bad"})
    await w.run()
    assert w.conditions() == {"Ready": ("False", "InvalidSpec")}
    assert w.graph.calls == Counter()


async def test_signup_deleted_while_running_ends_the_loop() -> None:
    w = World()
    del w.kube.objects[(SIGNUP_PLURAL, "acme")]
    w.kube.objects[(SIGNUP_PLURAL, "gone")] = {}
    body = {
        "metadata": {"namespace": NS, "name": "acme", "generation": 1},
        "spec": {
            "codeSecretRef": {"name": "acme-code"},
            "appCredentialsSecretRef": {"name": "meta-app"},
            "tenant": {"tenantId": "t_acme"},
        },
    }
    await SignupRunner(w.rt, body, sleep=w.sleep).run()  # type: ignore[arg-type]
    assert w.graph.calls["exchange_code"] == 0  # the first status write found it gone


@pytest.mark.parametrize("owner_active", [True, False])
async def test_another_signups_secret(owner_active: bool) -> None:
    w = World()
    w.kube.put_secret("acme-meta-token", {"accessToken": "EAAother"}, {SIGNUP_ANNOTATION: "other"})
    other_status = {} if owner_active else {"conditions": [{"type": "Ready", "status": "True"}]}
    w.kube.objects[(SIGNUP_PLURAL, "other")] = {
        "metadata": {"name": "other"},
        "status": other_status,
    }
    if owner_active:
        w.sleeps = [0.0] * 15  # stop after a few waits
        with pytest.raises(AssertionError, match="loops"):
            await w.run()
        assert w.conditions()["CodeExchanged"] == ("Unknown", "SignupInProgress")
        assert w.graph.calls["exchange_code"] == 0
    else:
        await w.run()
        assert w.conditions()["Ready"] == ("True", "Ready")


def test_merge_patch_helper_matches_the_real_one() -> None:
    old = {"a": 1, "b": {"c": 2}}
    new = {"b": {"c": 3}, "d": [1]}
    target = copy.deepcopy(old)
    apply_merge(target, merge_patch(old, new))
    assert target == new


async def test_a_tenant_id_used_elsewhere_stops_before_the_code_is_spent() -> None:
    w = World()
    w.rt.namespace_labels["other-ns"] = [{}]  # the open policy allows it the id too
    await w.run(claims=("other-ns/shop",))
    assert w.conditions()["TenantCreated"] == ("False", "DuplicateTenantId")
    assert w.graph.calls["exchange_code"] == 0


async def test_every_call_after_the_exchange_carries_the_tokens_proof() -> None:
    w = World(register=True)
    await w.run()
    assert w.conditions()["Ready"] == ("True", "Ready")
    proof = appsecret_proof(TOKEN, "app-secret-value")
    assert w.graph.proofs == {
        "exchange_code": None,  # the OAuth exchange authenticates with the app secret itself
        "debug_token": proof,
        "phone_numbers": proof,
        "subscribe_app": proof,
        "register_number": proof,
    }
    tenant = w.kube.objects[(PLURAL, "acme")]
    assert tenant["spec"]["rotation"] == {
        "appCredentialsSecretRef": {
            "name": "meta-app",
            "appIdKey": "appId",
            "appSecretKey": "appSecret",
        }
    }
    shown = repr(w.signup) + repr(w.events) + repr(w.audit.entries) + repr(tenant)
    assert proof not in shown
    assert "app-secret-value" not in shown


async def test_the_code_exchange_never_waits_behind_the_budget() -> None:
    """Meta's code lives about 30 s: a queue of tenant checks (here: 100 s of it) must not
    hold it back. The exchange is counted, and the next caller waits behind it."""
    w = World()
    now = [0.0]

    async def budget_sleep(seconds: float) -> None:
        w.graph.log.append(f"wait {seconds:.0f}s")
        now[0] += seconds

    budget = RequestBudget(0.1, 1, clock=lambda: now[0], sleep=budget_sleep)
    budget.reserve()
    budget.reserve()  # the queue: the next acquire waits 10 s, and so on
    w.rt.validator.budget = budget
    await w.run()
    assert w.conditions()["Ready"] == ("True", "Ready")
    assert w.graph.log[0] == "exchange_code"  # before any wait
    assert w.graph.log[1].startswith("wait ")  # debug_token then waits its turn, and more
    assert budget.granted == 2 + 5  # the queue; exchange, debug_token, two pages, subscribe


async def test_a_mid_2026_token_takes_the_waba_and_number_from_the_session() -> None:
    w = World(session={"wabaId": "201", "phoneNumberId": "302", "businessId": "400"})
    w.graph.grants = [
        {"scope": "whatsapp_business_management"},
        {"scope": "whatsapp_business_manage_events"},
    ]
    w.graph.waba = "201"
    w.graph.numbers = [
        {"id": "301", "display_phone_number": "+1 555-0101"},
        {"id": "302", "display_phone_number": "+1 555-0102"},
    ]
    await w.run()
    assert w.conditions()["Ready"] == ("True", "Ready")
    assert (w.signup["status"]["wabaId"], w.signup["status"]["phoneNumberId"]) == ("201", "302")
    spec = w.kube.objects[(PLURAL, "acme")]["spec"]
    assert (spec["wabaId"], spec["phoneNumberId"], spec["businessId"]) == ("201", "302", "400")
    assert w.graph.calls["phone_numbers"] == 1  # the WABA confirmed by reading its numbers


async def test_a_session_number_the_waba_does_not_have_stops_the_signup() -> None:
    w = World(session={"wabaId": "200", "phoneNumberId": "999"})
    w.graph.grants = [{"scope": "whatsapp_business_management"}]
    await w.run()
    assert w.conditions()["PhoneNumberSelected"] == ("False", "PhoneNumberNotFound")
    assert (PLURAL, "acme") not in w.kube.objects
