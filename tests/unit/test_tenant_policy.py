"""Which namespaces may hold which tenant ids (issue 19): the pure judge of
operator/whatsapp_operator/model/tenant_policy.py, the Runtime's use of it under
--tenant-policy enforce|off, the setting, and the WhatsAppTenantPolicy CRD (static checks;
tests/integration/test_tenancy.py applies it for real)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_crd import walk

from whatsapp_operator.cli import load_config
from whatsapp_operator.model.tenant_policy import (
    ALLOW_ALL,
    TenantPolicy,
    judge_tenant_id,
    parse_policy,
)
from whatsapp_operator.runtime.registry import Registry
from whatsapp_operator.runtime.services import Runtime

ROOT = Path(__file__).resolve().parents[2]
POLICY_CRD = ROOT / "crds" / "whatsapptenantpolicies.whatsapp.operator.dev.yaml"
TEAM_A = {"team": "a"}


def policy(
    name: str, selector: dict[str, Any], ids: list[str], adopt: bool = False
) -> TenantPolicy:
    parsed = parse_policy(
        name, {"namespaceSelector": selector, "tenantIds": ids, "adoptExistingRows": adopt}
    )
    assert parsed is not None
    return parsed


A_ONLY = policy("team-a", {"matchLabels": TEAM_A}, ["acme", "acme-*"])
A_ADOPT = policy("team-a-move", {"matchLabels": TEAM_A}, ["acme"], adopt=True)
EVERYWHERE_T = policy("shared", {}, ["t_??"])
NOT_PROD = policy(
    "not-prod",
    {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]},
    ["sandbox-*"],
)


@pytest.mark.parametrize(
    ("tenant_id", "labels", "policies", "allowed", "approved", "said"),
    [
        pytest.param("acme", TEAM_A, [], False, False, "no WhatsAppTenantPolicy selects it",
                     id="no policy at all: nothing is allowed"),
        pytest.param("acme", TEAM_A, [A_ONLY], True, False, "by WhatsAppTenantPolicy team-a",
                     id="exact id in a policy selecting the namespace"),
        pytest.param("acme-eu", TEAM_A, [A_ONLY], True, False, "team-a",
                     id="shell-style pattern"),
        pytest.param("ACME", TEAM_A, [A_ONLY], False, False, "allow 'acme', 'acme-*'",
                     id="patterns are case-sensitive"),
        pytest.param("acme", {"team": "b"}, [A_ONLY], False, False, "no WhatsAppTenantPolicy",
                     id="another namespace's id: not allowed"),
        pytest.param("other", TEAM_A, [A_ONLY], False, False, "(team-a) allow 'acme', 'acme-*'",
                     id="selected, no pattern matches: the message names the patterns"),
        pytest.param("acme", None, [A_ONLY], False, False, "labels are not known yet",
                     id="namespace labels not known: not allowed"),
        pytest.param("t_42", {"any": "thing"}, [EVERYWHERE_T], True, False, "shared",
                     id="empty selector: every namespace"),
        pytest.param("t_420", {}, [EVERYWHERE_T], False, False, "'t_??'",
                     id="? is one character"),
        pytest.param("sandbox-1", {"env": "dev"}, [NOT_PROD], True, False, "not-prod",
                     id="matchExpressions NotIn"),
        pytest.param("sandbox-1", {"env": "prod"}, [NOT_PROD], False, False, "no WhatsAppTenant",
                     id="matchExpressions excludes prod"),
        pytest.param("acme", TEAM_A, [A_ONLY, A_ADOPT], True, True, "approved by team-a-move",
                     id="adoption approved by a policy allowing the id"),
        pytest.param("acme-eu", TEAM_A, [A_ONLY, A_ADOPT], True, False, "team-a",
                     id="the approving policy does not allow this id: no approval"),
        pytest.param("acme", {"team": "b"}, [A_ADOPT], False, False, "no WhatsAppTenantPolicy",
                     id="approval for one namespace is not for another"),
    ],
)  # fmt: skip
def test_judge_tenant_id(
    tenant_id: str,
    labels: dict[str, str] | None,
    policies: list[TenantPolicy],
    allowed: bool,
    approved: bool,
    said: str,
) -> None:
    verdict = judge_tenant_id(tenant_id, "shop", labels, policies)
    assert (verdict.allowed, verdict.adoption_approved) == (allowed, approved)
    assert said in verdict.message
    if not allowed:
        assert "ask the platform team" in verdict.message or labels is None
        assert "namespace 'shop'" in verdict.message


def test_the_message_names_only_the_policies_selecting_the_namespace() -> None:
    elsewhere = policy("team-b-secret", {"matchLabels": {"team": "b"}}, ["bigcorp-*"])
    verdict = judge_tenant_id("x", "shop", TEAM_A, [A_ONLY, elsewhere])
    assert "team-b" not in verdict.message
    assert "bigcorp" not in verdict.message


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"tenantIds": ["a"]}, id="no selector"),
        pytest.param({"namespaceSelector": {}}, id="no tenant ids"),
        pytest.param({"namespaceSelector": {}, "tenantIds": []}, id="empty tenant ids"),
        pytest.param(
            {
                "namespaceSelector": {"matchExpressions": [{"key": "k", "operator": "In"}]},
                "tenantIds": ["a"],
            },
            id="In without values",
        ),
        pytest.param(None, id="no spec"),
    ],
)
def test_a_policy_that_is_not_one_allows_nothing(spec: Any) -> None:
    assert parse_policy("bad", spec) is None


def runtime(mode: str, policies: list[TenantPolicy], labels: dict[str, dict[str, str]]) -> Runtime:
    return Runtime(
        kube=None,  # type: ignore[arg-type]
        validator=None,  # type: ignore[arg-type]
        registry=Registry(),
        clock=lambda: None,  # type: ignore[arg-type, return-value]
        post_event=lambda body, event: None,
        grace=timedelta(minutes=15),
        tenant_policy=mode,  # type: ignore[arg-type]
        tenant_policies={p.name: [p] for p in policies},
        namespace_labels={ns: [found] for ns, found in labels.items()},
    )


def test_the_runtime_judges_with_kopfs_indexes() -> None:
    rt = runtime("enforce", [A_ONLY, A_ADOPT], {"a": TEAM_A, "b": {"team": "b"}})
    assert rt.policy_verdict("acme", "a").allowed
    assert rt.policy_verdict("acme", "a").adoption_approved
    assert not rt.policy_verdict("acme", "b").allowed
    assert not rt.policy_verdict("acme", "unknown-ns").allowed


def test_off_allows_everything_and_approves_adoption() -> None:
    rt = runtime("off", [], {})
    assert rt.policy_verdict("acme", "anywhere") == ALLOW_ALL
    assert ALLOW_ALL.allowed
    assert ALLOW_ALL.adoption_approved


def test_the_setting_defaults_to_enforce(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WHATSAPP_OPERATOR_TENANT_POLICY", raising=False)
    assert load_config([]).tenant_policy == "enforce"
    assert load_config(["--tenant-policy", "off"]).tenant_policy == "off"
    monkeypatch.setenv("WHATSAPP_OPERATOR_TENANT_POLICY", "off")
    assert load_config([]).tenant_policy == "off"
    with pytest.raises(SystemExit):
        load_config(["--tenant-policy", "lax"])
    field = Runtime.__dataclass_fields__["tenant_policy"]
    assert field.default == "enforce", "a Runtime built without the setting enforces"


# --- the CRD --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    (doc,) = [d for d in yaml.safe_load_all(POLICY_CRD.read_text()) if d]
    return dict(doc)


def test_crd_names_scope_and_columns(crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "whatsapptenantpolicies.whatsapp.operator.dev"
    assert spec["group"] == "whatsapp.operator.dev"
    assert spec["scope"] == "Cluster"
    assert spec["names"]["kind"] == "WhatsAppTenantPolicy"
    assert spec["names"]["plural"] == "whatsapptenantpolicies"
    assert spec["names"]["shortNames"] == ["watpol"]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert "subresources" not in version, "no status: the operator writes nothing here"
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Tenant-IDs", "Adopt", "Age"]
    copy = ROOT / "charts" / "whatsapp-operator" / "crds" / POLICY_CRD.name
    assert copy.read_text() == POLICY_CRD.read_text(), "make chart-crds"


def test_crd_schema_is_structural_closed_and_described(crd: dict[str, Any]) -> None:
    (version,) = crd["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]
    for path, node in walk(schema, ""):
        assert "type" in node, path
        assert "x-kubernetes-preserve-unknown-fields" not in node, path
        if path == ".spec.namespaceSelector.matchLabels":
            assert node["additionalProperties"] == {"type": "string"}
            continue
        assert "additionalProperties" not in node, path
        if path.startswith(".spec"):
            assert node.get("description"), f"{path}: no description"
    spec = schema["properties"]["spec"]
    assert spec["required"] == ["namespaceSelector", "tenantIds"]
    ids = spec["properties"]["tenantIds"]
    assert ids["minItems"] == 1
    assert spec["properties"]["adoptExistingRows"]["default"] is False
    pattern = ids["items"]["pattern"]
    for good in ("acme", "acme-*", "t_??", "*", "[!x]*", "a.b"):
        assert re.fullmatch(pattern, good), good
    for bad in ("a b", "a/b", "", "é"):
        assert not re.fullmatch(pattern, bad), bad
