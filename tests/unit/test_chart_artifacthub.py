"""The chart's Artifact Hub annotations (Chart.yaml) against what they describe: the CRDs in
crds/, the examples in examples/, the images the chart renders, the changes' kinds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from test_chart_render import CHART, needs_helm, render

ROOT = CHART.parents[1]
PREFIX = "artifacthub.io/"
# https://artifacthub.io/docs/topics/annotations/helm/
KNOWN = {
    "alternativeName", "category", "changes", "containsSecurityUpdates", "crds",
    "crdsExamples", "images", "license", "links", "maintainers", "operator",
    "operatorCapabilities", "prerelease", "recommendations", "screenshots", "signKey",
}  # fmt: skip
CATEGORIES = {
    "ai-machine-learning", "database", "integration-delivery", "monitoring-logging",
    "networking", "security", "storage", "streaming-messaging",
}  # fmt: skip
CAPABILITIES = {
    "basic install",
    "seamless upgrades",
    "full lifecycle",
    "deep insights",
    "auto pilot",
}
CHANGE_KINDS = {"added", "changed", "deprecated", "removed", "fixed", "security"}


def annotations() -> dict[str, str]:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    found = {k[len(PREFIX) :]: v for k, v in chart["annotations"].items() if k.startswith(PREFIX)}
    assert all(isinstance(v, str) for v in found.values())  # YAML strings, as Artifact Hub reads
    return found


def listed(name: str) -> list[dict[str, Any]]:
    value = yaml.safe_load(annotations()[name])
    assert isinstance(value, list)
    return value


def test_only_known_annotations_with_valid_values() -> None:
    found = annotations()
    assert set(found) <= KNOWN
    assert found["license"] == "Apache-2.0"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").lstrip().startswith("Apache License")
    assert found["category"] in CATEGORIES
    assert found["operator"] == "true"
    assert found["operatorCapabilities"].lower() in CAPABILITIES
    for link in listed("links"):
        assert set(link) == {"name", "url"}
        assert link["url"].startswith("https://")


def test_the_crds_are_the_repository_crds() -> None:
    def crd(path: Path) -> tuple[str, str, str]:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        (version,) = (v["name"] for v in doc["spec"]["versions"] if v.get("storage"))
        return doc["spec"]["names"]["kind"], version, doc["metadata"]["name"]

    expected = {crd(p) for p in (ROOT / "crds").glob("*.yaml")}
    entries = listed("crds")
    assert {(c["kind"], c["version"], c["name"]) for c in entries} == expected
    assert all(c["displayName"] and c["description"] for c in entries)


def test_the_crd_examples_are_the_shipped_examples() -> None:
    """Each is a document of examples/ (applied by `make demo` and the tests), as is."""
    shipped = [
        doc
        for path in sorted((ROOT / "examples").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if doc and doc.get("apiVersion", "").startswith("whatsapp.operator.dev/")
    ]
    examples = listed("crdsExamples")
    assert examples
    for example in examples:
        assert example in shipped, example["kind"]
    kinds = {c["kind"] for c in listed("crds")}
    assert {e["kind"] for e in examples} <= kinds


@needs_helm
def test_the_images_are_those_the_chart_renders() -> None:
    docs = render(tests=True)
    rendered = {
        c["image"]
        for d in docs
        for spec in [
            d["spec"] if d["kind"] == "Pod" else d.get("spec", {}).get("template", {}).get("spec")
        ]
        if spec
        for c in spec.get("containers", [])
    }
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert f"whatsapp-operator:{chart['appVersion']}" in rendered
    assert {i["image"] for i in listed("images")} == rendered


@pytest.mark.parametrize("entry", listed("changes"))
def test_each_change_has_a_known_kind(entry: dict[str, Any]) -> None:
    assert entry["kind"] in CHANGE_KINDS
    assert entry["description"]
