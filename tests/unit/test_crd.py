"""Static checks of the WhatsAppTenant CRD (no API server): structural, closed, documented."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "whatsapptenants.whatsapp.operator.dev.yaml"

Schema = dict[str, Any]


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(CRD_PATH.read_text()) if d]
    assert len(docs) == 1, "the CRD file holds exactly one document"
    doc: dict[str, Any] = docs[0]
    return doc


@pytest.fixture(scope="module")
def version(crd: dict[str, Any]) -> dict[str, Any]:
    versions = crd["spec"]["versions"]
    assert [v["name"] for v in versions] == ["v1alpha1"]
    v: dict[str, Any] = versions[0]
    return v


@pytest.fixture(scope="module")
def schema(version: dict[str, Any]) -> Schema:
    s: Schema = version["schema"]["openAPIV3Schema"]
    return s


def walk(node: Schema, path: str) -> Iterator[tuple[str, Schema]]:
    """Yield (path, schema) for the node and every nested property and array item."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")


def test_names_and_scope(crd: dict[str, Any], version: dict[str, Any]) -> None:
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "whatsapptenants.whatsapp.operator.dev"
    spec = crd["spec"]
    assert spec["group"] == "whatsapp.operator.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "WhatsAppTenant",
        "listKind": "WhatsAppTenantList",
        "plural": "whatsapptenants",
        "singular": "whatsapptenant",
        "shortNames": ["wat"],
        "categories": ["whatsapp"],
    }
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}


def test_schema_is_structural(schema: Schema) -> None:
    for path, node in walk(schema, ""):
        assert "type" in node, f"{path or '<root>'}: every node has a type"
        assert "x-kubernetes-preserve-unknown-fields" not in node, f"{path}: schema is closed"
        assert "additionalProperties" not in node, f"{path}: no free-form maps"
        if node["type"] == "object" and path != ".metadata":
            assert node.get("properties"), f"{path or '<root>'}: objects list their properties"
        if node["type"] == "array":
            assert "items" in node, f"{path}: arrays have an item schema"
        for req in node.get("required", []):
            assert req in node.get("properties", {}), f"{path}: required {req!r} is a property"


def test_metadata_is_plain_object(schema: Schema) -> None:
    assert schema["properties"]["metadata"] == {"type": "object"}


@pytest.mark.parametrize("top", ["spec", "status"])
def test_every_field_is_described(schema: Schema, top: str) -> None:
    missing = [p for p, node in walk(schema["properties"][top], top) if not node.get("description")]
    assert not missing, f"fields without a description: {missing}"


def test_spec_contract(schema: Schema) -> None:
    spec = schema["properties"]["spec"]
    props = spec["properties"]
    assert spec["required"] == ["tenantId", "wabaId", "phoneNumberId", "tokenSecretRef"]
    tenant = props["tenantId"]
    assert (tenant["minLength"], tenant["maxLength"]) == (1, 50)  # the seed's VARCHAR(50)
    assert {
        "rule": "self == oldSelf",
        "message": ("tenantId is immutable; create a new WhatsAppTenant to change it"),
    } in tenant["x-kubernetes-validations"]
    for name in ("wabaId", "phoneNumberId", "businessId"):
        assert props[name]["type"] == "string"
        assert props[name]["pattern"] == "^[0-9]+$"
        assert props[name]["maxLength"] <= 100  # the seed's VARCHAR(100)
    ref = props["tokenSecretRef"]
    assert ref["required"] == ["name"]
    assert set(ref["properties"]) == {"name", "key"}, "no namespace: same-namespace Secrets only"
    assert ref["properties"]["key"]["default"] == "accessToken"
    assert props["active"]["default"] is True
    assert props["suspend"]["default"] is False
    assert props["senderPool"]["default"] == "default"
    assert props["validation"]["default"] == {}
    assert props["validation"]["properties"]["interval"]["default"] == "1h"


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        pytest.param(
            "tenantId",
            ["t_a3eecb94bb822a92", "A", "a.b-c_d"],
            ["_x", "-x", "a b", "é"],
            id="tenantId",
        ),
        pytest.param("wabaId", ["102290129340398"], ["12ab", "-1", "1.5"], id="wabaId"),
        pytest.param(
            "graphApiVersion",
            ["v25.0", "v18.0"],
            ["25.0", "v5.0", "v25", "v25.10"],
            id="graphApiVersion",
        ),
        pytest.param(
            "senderPool", ["default", "pool-a1"], ["Pool", "-a", "a-", "a.b"], id="senderPool"
        ),
    ],
)
def test_patterns(schema: Schema, field: str, good: list[str], bad: list[str]) -> None:
    pattern = re.compile(schema["properties"]["spec"]["properties"][field]["pattern"])
    assert all(pattern.search(v) for v in good)
    assert not any(pattern.search(v) for v in bad)


def test_interval_pattern(schema: Schema) -> None:
    interval = schema["properties"]["spec"]["properties"]["validation"]["properties"]["interval"]
    pattern = re.compile(interval["pattern"])
    for good in ("1h", "30m", "1h30m", "90s", "168h", "1h2m3s"):
        assert pattern.search(good), good
    for bad in ("1d", "1.5h", "-1h", "1m1h", "300ms", "h", "soon"):
        assert not pattern.search(bad), bad
    # every CEL rule first re-checks the pattern, so duration() never sees a malformed value
    for rule in interval["x-kubernetes-validations"]:
        assert interval["pattern"] in rule["rule"]


def test_status_shape(schema: Schema) -> None:
    status = schema["properties"]["status"]
    assert "required" not in status
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert item["required"] == ["type", "status", "lastTransitionTime", "reason", "message"]
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert item["properties"]["lastTransitionTime"]["format"] == "date-time"
    assert status["properties"]["observedGeneration"]["format"] == "int64"
    token = status["properties"]["token"]["properties"]
    assert not {"token", "accessToken", "value"} & set(token), "status never carries the token"


_SEGMENT = re.compile(r'\.(\w+)(?:\[\?\(@\.(\w+)=="[^"]*"\)\])?')


def _resolve(schema: Schema, json_path: str) -> Schema | None:
    """Follow `.a.b[?(@.key=="v")].c` through the schema; None when a step does not exist."""
    node: Schema = schema
    pos = 0
    while pos < len(json_path):
        match = _SEGMENT.match(json_path, pos)
        if match is None:
            return None
        name, filter_key = match.groups()
        if name not in node.get("properties", {}):
            return None
        node = node["properties"][name]
        if filter_key:
            if node.get("type") != "array" or filter_key not in node["items"].get("properties", {}):
                return None
            node = node["items"]
        pos = match.end()
    return node


def test_printer_columns(version: dict[str, Any], schema: Schema) -> None:
    columns = version["additionalPrinterColumns"]
    default = [c["name"] for c in columns if not c.get("priority")]
    wide = [c["name"] for c in columns if c.get("priority") == 1]
    assert default == ["Tenant", "Display", "Pool", "Ready", "Reason", "Token-Expires", "Age"]
    assert wide == ["Workers", "WABA", "Phone-ID", "Quality", "Validated", "Synced", "Blocked"]
    for column in columns:
        path = column["jsonPath"]
        if path == ".metadata.creationTimestamp":
            continue
        assert _resolve(schema, path) is not None, f"{column['name']}: {path} not in the schema"


def test_resolve_rejects_missing_paths(schema: Schema) -> None:
    assert _resolve(schema, ".spec.nope") is None
    assert _resolve(schema, '.status.conditions[?(@.kind=="Ready")].status') is None
    assert _resolve(schema, '.status.conditions[?(@.type=="Ready")].status') is not None
