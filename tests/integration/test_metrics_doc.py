"""docs/metrics.md's table against the live processes: every family the operator, a worker and
the webhook receiver export is in the table, with its type and process, and every row of the
table is exported by the processes it names (tests/conftest.py `exported_metrics`)."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import Kubectl, make_world
from whatsapp_testkit.scrape import PROCESSES, by_process, documented
from whatsapp_testkit.world import dump, secret, tenant, wait_for

pytestmark = pytest.mark.integration

# Rows whose family is registered only once something happened (name -> the event); the table
# still documents them. prometheus-client lists a registered family with no samples, so this
# stays short: only metrics created lazily belong here.
ONLY_AFTER_AN_EVENT: dict[str, str] = {}


def test_every_exported_family_is_in_the_table(exported_metrics: dict[str, set[str]]) -> None:
    table = by_process(documented())
    missing = {process: sorted(exported_metrics[process] - table[process]) for process in PROCESSES}
    assert missing == {p: [] for p in PROCESSES}, "exported, not in docs/metrics.md"


def test_every_row_of_the_table_is_exported(exported_metrics: dict[str, set[str]]) -> None:
    table = by_process(documented())
    never = {
        process: sorted(table[process] - exported_metrics[process] - set(ONLY_AFTER_AN_EVENT))
        for process in PROCESSES
    }
    assert never == {p: [] for p in PROCESSES}, "in docs/metrics.md, never exported"


def test_the_issue_20_metrics_are_exported_where_the_alerts_expect_them(
    exported_metrics: dict[str, set[str]],
) -> None:
    assert "whatsapp_tenant_condition" in exported_metrics["operator"]
    assert "whatsapp_operator_reconcile_duration_seconds" in exported_metrics["operator"]
    assert "whatsapp_operator_reconcile_queue_wait_seconds" in exported_metrics["operator"]
    for process in ("operator", "worker"):
        assert "whatsapp_graph_requests_total" in exported_metrics[process]
        assert "whatsapp_graph_request_duration_seconds" in exported_metrics[process]


def samples(port: int, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples called `name` (a sample's name: `..._total`, `..._count`) on the page."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    return [
        (s.labels, s.value)
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name
    ]


def test_a_ready_tenant_has_its_conditions_its_graph_calls_and_its_passes_counted(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any
) -> None:
    """The operator's live page after one tenant became Ready: a condition series each, its
    Graph API calls counted by operation and code and timed, its passes timed."""
    port = operator.metrics_port
    passes = "whatsapp_operator_reconcile_duration_seconds_count"
    before = sum(v for _, v in samples(port, passes))
    w = make_world(sim)
    kubectl.apply(
        dump(secret("acme-token", {"accessToken": w.token}),
             tenant("acme", f"t_metrics_{namespace}", w, "acme-token")),
        namespace,
    )  # fmt: skip

    def conditions() -> dict[str, tuple[str, str]] | None:
        found = {
            labels["type"]: (labels["status"], labels["reason"])
            for labels, value in samples(port, "whatsapp_tenant_condition")
            if labels["namespace"] == namespace and labels["name"] == "acme" and value == 1
        }
        return found if found.get("Ready", ("",))[0] == "True" else None

    found = wait_for(conditions, 60, 0.5, "the tenant's Ready condition series")
    assert found["TokenValid"][0] == "True"
    assert found["Ready"] == ("True", "Ready")
    calls = {
        (labels["operation"], labels["code"]): value
        for labels, value in samples(port, "whatsapp_graph_requests_total")
    }
    assert calls.get(("debug_token", "ok"), 0) >= 1
    assert calls.get(("phone_number", "ok"), 0) >= 1
    timed = {
        labels["operation"]: value
        for labels, value in samples(port, "whatsapp_graph_request_duration_seconds_count")
    }
    assert timed.get("debug_token", 0) >= 1
    assert sum(v for _, v in samples(port, passes)) > before
    assert (
        sum(v for _, v in samples(port, "whatsapp_operator_reconcile_queue_wait_seconds_count"))
        >= 1
    )
