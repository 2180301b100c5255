"""Static checks of the WhatsAppApp CRD and of the tenant CRD's appRef (no API server):
structural, closed, documented; tests/integration/test_apps.py applies them for real."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_crd import _resolve, walk

ROOT = Path(__file__).resolve().parents[2]
APP_CRD = ROOT / "crds" / "whatsappapps.whatsapp.operator.dev.yaml"
TENANT_CRD = ROOT / "crds" / "whatsapptenants.whatsapp.operator.dev.yaml"
MAPS = {".spec.namespaceSelector.matchLabels"}  # a label map: the one free-form object


def load(path: Path) -> dict[str, Any]:
    (doc,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return dict(doc)


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return load(APP_CRD)


@pytest.fixture(scope="module")
def schema(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"])


def test_names_and_scope(crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "whatsappapps.whatsapp.operator.dev"
    assert spec["scope"] == "Cluster"
    assert spec["names"]["kind"] == "WhatsAppApp"
    assert spec["names"]["shortNames"] == ["waapp"]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_schema_is_structural_and_documented(schema: dict[str, Any]) -> None:
    for path, node in walk(schema, ""):
        assert "type" in node, path
        assert "x-kubernetes-preserve-unknown-fields" not in node, path
        if path in MAPS:
            assert node["additionalProperties"] == {"type": "string"}
            continue
        assert "additionalProperties" not in node, path
        if node["type"] == "object" and path != ".metadata":
            assert node.get("properties"), path
        if path.startswith((".spec", ".status")):
            assert node.get("description"), f"{path}: no description"


def test_spec_contract(schema: dict[str, Any]) -> None:
    spec = schema["properties"]["spec"]
    props = spec["properties"]
    assert spec["required"] == ["appId", "appSecretRef", "verifyTokenRef"]
    assert re.fullmatch(props["appId"]["pattern"], "424242424242")
    assert not re.search(props["appId"]["pattern"], "42a")
    assert {"rule": "self == oldSelf",
            "message": "appId is immutable; create a new WhatsAppApp for another app"
            } in props["appId"]["x-kubernetes-validations"]  # fmt: skip
    for ref, key in (("appSecretRef", "appSecret"), ("verifyTokenRef", "verifyToken")):
        assert set(props[ref]["properties"]) == {"name", "key"}, "no namespace: the operator's"
        assert props[ref]["properties"]["key"]["default"] == key
    assert props["requireAppSecretProof"]["default"] is False
    assert "default" not in props["namespaceSelector"], "unset must mean: no namespace"
    operators = props["namespaceSelector"]["properties"]["matchExpressions"]["items"]
    assert operators["properties"]["operator"]["enum"] == ["In", "NotIn", "Exists", "DoesNotExist"]
    status = schema["properties"]["status"]["properties"]
    assert not {"appSecret", "verifyToken", "secretFingerprint"} & set(status)


def test_printer_columns(crd: dict[str, Any], schema: dict[str, Any]) -> None:
    (version,) = crd["spec"]["versions"]
    columns = version["additionalPrinterColumns"]
    assert [c["name"] for c in columns if not c.get("priority")] == [
        "App-ID", "Meta-Name", "Ready", "Reason", "Age",
    ]  # fmt: skip
    for column in columns:
        if column["jsonPath"] != ".metadata.creationTimestamp":
            assert _resolve(schema, column["jsonPath"]) is not None, column["name"]


def test_the_tenant_names_an_app_by_name_only() -> None:
    (version,) = load(TENANT_CRD)["spec"]["versions"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    ref = spec["properties"]["appRef"]
    assert ref["required"] == ["name"]
    assert set(ref["properties"]) == {"name"}
    rules = {r["fieldPath"]: r for r in spec["x-kubernetes-validations"]}
    assert "has(self.appRef)" in rules[".rotation"]["rule"], "Refresh may use the app"
    assert rules[".rotation"]["message"].startswith(
        "rotation.strategy Refresh needs rotation.appCredentialsSecretRef"
    )
    assert "mutually exclusive" in rules[".appRef"]["message"]
