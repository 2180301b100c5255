"""The Grafana dashboard: its ConfigMap (grafanaDashboard.*, off by default), its JSON, and every
query's metric names against docs/metrics.md's table (which the live scrape keeps true:
tests/integration/test_metrics_doc.py; tests/integration/test_dashboard_metrics.py holds the
dashboard to the live scrape itself)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_chart_render import needs_helm, of_kind, render

from whatsapp_testkit import dashboard
from whatsapp_testkit.scrape import documented

CONFIGMAP = "rel-whatsapp-operator-dashboard"
KEY = "whatsapp-operator.json"


def dashboard_configmaps(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"] == CONFIGMAP]


@needs_helm
def test_the_dashboard_is_off_by_default() -> None:
    assert dashboard_configmaps(render()) == []


@needs_helm
def test_the_dashboard_configmap_carries_the_sidecar_label_and_the_file() -> None:
    (cm,) = dashboard_configmaps(render("grafanaDashboard.enabled=true"))
    assert cm["metadata"]["namespace"] == "ops"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert list(cm["data"]) == [KEY]
    assert json.loads(cm["data"][KEY]) == dashboard.load()


@needs_helm
def test_the_sidecar_label_namespace_and_annotations_are_configurable() -> None:
    (cm,) = dashboard_configmaps(
        render(
            "grafanaDashboard.enabled=true",
            "grafanaDashboard.namespace=monitoring",
            "grafanaDashboard.sidecarLabel=dashboards.example.com/grafana",
            "grafanaDashboard.sidecarLabelValue=whatsapp",
            "grafanaDashboard.annotations.grafana_folder=WhatsApp",
            "grafanaDashboard.labels.team=platform",
        )
    )
    meta = cm["metadata"]
    assert meta["namespace"] == "monitoring"
    assert meta["labels"]["dashboards.example.com/grafana"] == "whatsapp"
    assert "grafana_dashboard" not in meta["labels"]
    assert meta["labels"]["team"] == "platform"
    assert meta["annotations"] == {"grafana_folder": "WhatsApp"}


def test_the_dashboard_uses_a_datasource_variable_everywhere() -> None:
    data = dashboard.load()
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    uses = [p.get("datasource") for p in data["panels"] if p["type"] != "row"]
    uses += [t.get("datasource") for p in data["panels"] for t in p.get("targets", ())]
    uses += [v["datasource"] for v in variables.values() if v["type"] == "query"]
    assert uses
    assert all(u == {"type": "prometheus", "uid": "${datasource}"} for u in uses)


# The issue's panels: a title word each, and the metric (family) it must read.
PANELS = [
    ("condition and reason", "whatsapp_tenant_condition"),
    ("time to expiry", "whatsapp_tenant_token_expiry_timestamp_seconds"),
    ("Sends per second by outcome", "whatsapp_worker_messages_sent_total"),
    ("Sends per second by Meta code", "whatsapp_graph_requests_total"),
    ("Limiter waits", "whatsapp_worker_limiter_wait_seconds_bucket"),
    ("Dead letters by reason", "whatsapp_worker_messages_failed_total"),
    ("Graph API latency", "whatsapp_graph_request_duration_seconds_bucket"),
    ("Operator memory", "process_resident_memory_bytes"),
    ("Pass durations", "whatsapp_operator_reconcile_duration_seconds_bucket"),
    ("config convergence", "whatsapp_operator_pool_workers"),
]


@pytest.mark.parametrize(("title", "metric"), PANELS)
def test_each_panel_of_the_issue_is_there(title: str, metric: str) -> None:
    panels = [p for p in dashboard.load()["panels"] if title in p["title"]]
    assert panels, f"no panel titled ...{title}..."
    read = set().union(*(dashboard.metric_names(t["expr"]) for t in panels[0]["targets"]))
    assert metric in read


def test_every_panel_has_a_unit_and_unique_id() -> None:
    panels = dashboard.load()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        if panel["type"] != "row":
            assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
            assert panel["targets"], panel["title"]


def test_every_query_names_only_documented_metrics() -> None:
    families = {name: row.type for name, row in documented().items()}
    assert dashboard.unexported(dashboard.load(), families) == {}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le) (rate(a_bucket{pool=~"$pool"}[$__rate_interval]))', {"a_bucket"}),
        ("histogram_quantile(0.99, sum by (le, job) (rate(x_bucket[5m])))", {"x_bucket"}),
        ("process_open_fds and on (job, instance) up", {"process_open_fds", "up"}),
        ("count(rate(sum_total[${__range}])) or vector(0)", {"sum_total"}),  # a metric named sum
        ('{__name__="by_name", status!="True"} - time()', {"by_name"}),
        ("bottomk(25, exp_seconds - time())", {"exp_seconds"}),
        ("", set()),
    ],
)  # fmt: skip
def test_metric_names_come_from_selectors_only(expr: str, names: set[str]) -> None:
    assert dashboard.metric_names(expr) == names


@pytest.mark.parametrize(
    "expr",
    ["sum(rate(x[5m])", "no_such_function(x)", '{job="a"}', "rate(x)", "x{"],
)
def test_a_query_that_does_not_parse_or_names_no_metric_fails(expr: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the parser's own messages
        dashboard.metric_names(expr)


@pytest.mark.parametrize(
    ("name", "families", "family"),
    [
        ("a_total", {"a_total": "counter"}, "a_total"),
        ("a", {"a_total": "counter"}, None),  # Prometheus stores a counter as a_total only
        ("h_bucket", {"h": "histogram"}, "h"),
        ("h", {"h": "histogram"}, None),
        ("g_bucket", {"g": "gauge"}, None),
        ("h_sum", {"h": ""}, "h"),  # type unknown: any sample suffix
        ("other", {"h": "histogram"}, None),
    ],
)
def test_a_sample_name_maps_to_its_family(
    name: str, families: dict[str, str], family: str | None
) -> None:
    assert dashboard.family_of(name, families) == family


def test_a_query_on_an_unknown_metric_is_reported() -> None:
    data = {
        "panels": [{"title": "P", "targets": [{"refId": "A", "expr": "rate(gone_total[5m])"}]}],
        "templating": {"list": [{"name": "v", "type": "query", "query": "label_values(nope, l)"}]},
    }
    assert dashboard.unexported(data, {"here_total": "counter"}) == {
        "panel 'P' A": {"gone_total"},
        "variable 'v'": {"nope"},
    }


@pytest.mark.parametrize(
    ("text", "expr"),
    [
        ("label_values(whatsapp_tenant_ready, namespace)", "whatsapp_tenant_ready"),
        ('label_values(up{job="x"}, instance)', 'up{job="x"}'),
        ("label_values(namespace)", ""),
        ("query_result(sum(up))", "sum(up)"),
    ],
)
def test_variable_queries(text: str, expr: str) -> None:
    assert dashboard.variable_expr(text) == expr


def test_a_variable_that_is_not_a_prometheus_query_fails() -> None:
    with pytest.raises(ValueError, match="not a Prometheus query variable"):
        dashboard.variable_expr("SELECT 1")


# Labels Prometheus adds to every scraped series (ServiceMonitor/PodMonitor targets).
TARGET_LABELS = ("job", "instance", "pod", "container", "service", "endpoint")


def test_every_selector_matches_only_labels_its_metric_has() -> None:
    """e.g. operation="send_message" on whatsapp_graph_requests_total: `operation` is one of
    its labels in docs/metrics.md (a label it lacks would match nothing, silently)."""
    labels = {name: row.labels for name, row in documented().items()}
    assert dashboard.unknown_labels(dashboard.load(), labels, TARGET_LABELS) == {}


def test_a_selector_on_a_label_the_metric_lacks_is_reported() -> None:
    data = {
        "panels": [
            {
                "title": "P",
                "targets": [
                    {"refId": "A", "expr": 'rate(a_total{pool="x", job="j"}[5m])'},
                    {"refId": "B", "expr": 'h_bucket{le="1", kind="k"}'},
                ],
            }
        ]
    }
    labels = {"a_total": ("reason",), "h": ()}
    assert dashboard.unknown_labels(data, labels, ("job",)) == {
        "panel 'P' A": {"a_total:pool"},
        "panel 'P' B": {"h_bucket:kind"},
    }


def test_selectors_name_the_labels_matched() -> None:
    expr = 'sum(rate(a_total{pool=~"$pool", code!="ok"}[5m])) / sum(a_total{pool="x"})'
    assert dashboard.selectors(expr) == {"a_total": {"pool", "code"}}
