"""Static checks of the WhatsAppSignup CRD: structural, closed, documented, immutable spec,
and the same tenantId rule as WhatsAppTenant's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from whatsapp_operator.signup.model import (
    SIGNUP_KIND,
    SIGNUP_PLURAL,
    TENANT_ID_MAX,
    TENANT_ID_PATTERN,
)

CRDS = Path(__file__).resolve().parents[2] / "crds"
Schema = dict[str, Any]


def load(name: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((CRDS / name).read_text()) if d]
    assert len(docs) == 1
    doc: dict[str, Any] = docs[0]
    return doc


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return load("whatsappsignups.whatsapp.operator.dev.yaml")


@pytest.fixture(scope="module")
def schema(crd: dict[str, Any]) -> Schema:
    s: Schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return s


def walk(node: Schema, path: str) -> Iterator[tuple[str, Schema]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")


def test_names(crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    assert spec["group"] == "whatsapp.operator.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == SIGNUP_KIND
    assert spec["names"]["plural"] == SIGNUP_PLURAL
    assert spec["names"]["shortNames"] == ["was"]
    assert spec["names"]["categories"] == ["whatsapp"]
    version = spec["versions"][0]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Tenant", "WABA", "Phone-ID", "Ready", "Reason", "Age"]


def test_schema_is_structural_closed_and_documented(schema: Schema) -> None:
    for path, node in walk(schema, ""):
        assert "type" in node, f"{path or '<root>'}: every node has a type"
        assert "x-kubernetes-preserve-unknown-fields" not in node, path
        assert "additionalProperties" not in node, path
        if node["type"] == "object":
            assert node.get("properties"), f"{path or '<root>'}: objects list their properties"
        for req in node.get("required", []):
            assert req in node.get("properties", {}), f"{path}: required {req!r}"
        if path.startswith(".spec") or path == "":
            assert node.get("description"), f"{path or '<root>'}: needs a description"


def test_spec_is_immutable(schema: Schema) -> None:
    rules = schema["properties"]["spec"]["x-kubernetes-validations"]
    assert rules[0]["rule"] == "self == oldSelf"
    assert "one-shot" in rules[0]["message"]


def test_exactly_one_app(schema: Schema) -> None:
    """appCredentialsSecretRef or appRef (a WhatsAppApp, by name only), never both; without
    either, the API server still says `spec.appCredentialsSecretRef: Required value`."""
    spec = schema["properties"]["spec"]
    assert "appCredentialsSecretRef" not in spec["required"]
    ref = spec["properties"]["appRef"]
    assert ref["required"] == ["name"]
    assert set(ref["properties"]) == {"name"}
    rules = {r.get("fieldPath"): r for r in spec["x-kubernetes-validations"]}
    needed = rules[".appCredentialsSecretRef"]
    assert needed["rule"] == "has(self.appCredentialsSecretRef) || has(self.appRef)"
    assert needed["reason"] == "FieldValueRequired"
    both = rules[".appRef"]
    assert both["rule"] == "!has(self.appCredentialsSecretRef) || !has(self.appRef)"
    assert "mutually exclusive" in both["message"]


def test_tenant_id_rule_is_the_tenants(schema: Schema) -> None:
    tenants = load("whatsapptenants.whatsapp.operator.dev.yaml")
    theirs = tenants["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["tenantId"]
    ours = schema["properties"]["spec"]["properties"]["tenant"]["properties"]["tenantId"]
    for key in ("minLength", "maxLength", "pattern"):
        assert ours[key] == theirs[key]
    assert ours["pattern"] == TENANT_ID_PATTERN.pattern
    assert ours["maxLength"] == TENANT_ID_MAX


def test_no_namespace_fields(schema: Schema) -> None:
    for path, _ in walk(schema["properties"]["spec"], ".spec"):
        assert not path.endswith(".namespace"), f"{path}: cross-namespace references"


def test_session_ids_match_the_model_and_the_tenants_ids(schema: Schema) -> None:
    """spec.session (what Embedded Signup's session message reported): the same digit-string
    ids as WhatsAppTenant's wabaId/phoneNumberId/businessId, as the model reads them."""
    from whatsapp_operator.signup.model import META_ID, SessionInfo

    session = schema["properties"]["spec"]["properties"]["session"]
    assert "required" not in session
    fields = {f.alias: f for f in SessionInfo.model_fields.values()}
    assert set(session["properties"]) == set(fields) == {"wabaId", "phoneNumberId", "businessId"}
    tenant_spec = load("whatsapptenants.whatsapp.operator.dev.yaml")["spec"]["versions"][0][
        "schema"
    ]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    for name, prop in session["properties"].items():
        assert prop["pattern"] == META_ID == tenant_spec[name]["pattern"]
        assert prop["maxLength"] == 30
