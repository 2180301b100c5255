"""A WhatsAppSignup under --tenant-policy enforce (issue 19): a tenant id no
WhatsAppTenantPolicy allows in the signup's namespace stops the signup before the single-use
code is spent, and a tenant of a namespace not allowed the id does not block it. Against the
fakes of test_signup_runner."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from test_signup_runner import NS, World

from whatsapp_operator.model.tenant_policy import PolicyVerdict, parse_policy
from whatsapp_operator.signup import judge
from whatsapp_operator.signup.flow import CODE_EXCHANGED


def policy(labels: dict[str, str], ids: list[str]) -> Any:
    return parse_policy("p", {"namespaceSelector": {"matchLabels": labels}, "tenantIds": ids})


def world(policies: list[Any], labels: dict[str, dict[str, str]]) -> World:
    w = World()
    w.rt.tenant_policies = {f"p{i}": [p] for i, p in enumerate(policies)}
    w.rt.namespace_labels = {ns: [found] for ns, found in labels.items()}
    return w


@pytest.mark.parametrize(
    ("policies", "labels"),
    [
        pytest.param([], {NS: {}}, id="no policy"),
        pytest.param([policy({"team": "b"}, ["*"])], {NS: {"team": "a"}}, id="other namespaces"),
        pytest.param([policy({"team": "a"}, ["u_*"])], {NS: {"team": "a"}}, id="other ids"),
    ],
)
async def test_a_tenant_id_not_allowed_stops_before_the_code_is_spent(
    policies: list[Any], labels: dict[str, dict[str, str]]
) -> None:
    w = world(policies, labels)
    await w.run()
    assert w.conditions()["CodeExchanged"] == ("False", "TenantIdNotAllowed")
    assert w.conditions()["Ready"] == ("False", "TenantIdNotAllowed")
    assert w.graph.calls == Counter()  # the single-use code is not spent
    assert ("Warning", "TenantIdNotAllowed") in w.events
    assert w.sleeps == []  # stopped for good
    assert "acme-meta-token" not in w.kube.secrets
    await w.run()  # a restart: a stopped signup stays stopped
    assert w.graph.calls == Counter()


async def test_allowed_by_a_policy_the_signup_completes() -> None:
    w = world([policy({"team": "a"}, ["t_*"])], {NS: {"team": "a"}})
    await w.run()
    assert w.conditions()["Ready"] == ("True", "Ready")
    assert w.graph.calls["exchange_code"] == 1


async def test_a_holder_in_a_namespace_not_allowed_the_id_does_not_block_the_signup() -> None:
    w = world([policy({"team": "a"}, ["t_*"])], {NS: {"team": "a"}, "squat": {}})
    await w.run(claims=("squat/shop",))
    assert w.conditions()["Ready"] == ("True", "Ready")
    held = world([policy({"team": "a"}, ["t_*"])], {NS: {"team": "a"}, "other": {"team": "a"}})
    await held.run(claims=("other/shop",))  # a holder the policy allows still blocks it
    assert held.conditions()["TenantCreated"] == ("False", "DuplicateTenantId")
    assert held.graph.calls["exchange_code"] == 0


@pytest.mark.parametrize(
    ("verdict", "known", "outcome"),
    [
        pytest.param(PolicyVerdict(True, False, "ok"), True, None, id="allowed"),
        pytest.param(PolicyVerdict(False, False, "no"), True, "stop", id="not allowed: stop"),
        pytest.param(PolicyVerdict(False, False, "no"), False, "retry", id="labels unknown: wait"),
    ],
)
def test_tenant_id_policy(verdict: PolicyVerdict, known: bool, outcome: str | None) -> None:
    result = judge.tenant_id_policy(verdict, known)
    if outcome is None:
        assert result is None
        return
    assert result is not None
    assert result.outcome == outcome
    (cond,) = result.conditions
    assert (cond.type, cond.reason) == (CODE_EXCHANGED, "TenantIdNotAllowed")
    assert cond.message.startswith("no")
