"""prometheus-operator objects of the chart: PodMonitors (metrics.podMonitor, off by default),
the ServiceMonitors' label handling, and the choice between the two."""

from __future__ import annotations

from typing import Any

import pytest
from test_chart_render import PRODUCTION, needs_helm, of_kind, render, render_fails

pytestmark = needs_helm

POOLS = (
    "workers.pools[0].name=default",
    "amqp.existingSecret=rabbit",
    "workersNamespace=whatsapp-workers",
)
WEBHOOK = ("webhook.enabled=true",)


def selector(component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "whatsapp-operator",
        "app.kubernetes.io/instance": "rel",
        "app.kubernetes.io/component": component,
    }


def pod_labels(docs: list[dict[str, Any]], component: str) -> list[dict[str, str]]:
    """The pod template labels of every workload of a component."""
    return [
        d["spec"]["template"]["metadata"]["labels"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
        and d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]


def test_pod_monitors_are_off_by_default() -> None:
    assert of_kind(render(*POOLS, *WEBHOOK), "PodMonitor") == []


def test_a_pod_monitor_per_component_selects_its_pods_and_port() -> None:
    docs = render(
        *POOLS,
        *WEBHOOK,
        "metrics.podMonitor.enabled=true",
        "metrics.service.enabled=false",  # no Service needed
        "metrics.podMonitor.labels.release=prometheus",
        "metrics.podMonitor.interval=15s",
    )
    monitors = {m["metadata"]["name"]: m for m in of_kind(docs, "PodMonitor")}
    assert sorted(monitors) == [
        "rel-whatsapp-operator-operator",
        "rel-whatsapp-operator-webhook",
        "rel-whatsapp-operator-worker",
    ]
    namespaces = {"operator": "ops", "worker": "whatsapp-workers", "webhook": "ops"}
    for component, namespace in namespaces.items():
        monitor = monitors[f"rel-whatsapp-operator-{component}"]
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["namespace"] == namespace
        assert monitor["metadata"]["labels"]["release"] == "prometheus"
        spec = monitor["spec"]
        assert spec["selector"] == {"matchLabels": selector(component)}
        assert spec["namespaceSelector"] == {"matchNames": [namespace]}
        assert spec["podMetricsEndpoints"] == [
            {
                "port": "metrics",
                "path": "/metrics",
                "interval": "15s",
                "scrapeTimeout": "10s",
                "honorLabels": True,
            }
        ]
        # the selector matches the component's pods, which name their metrics port
        (labels,) = pod_labels(docs, component)
        assert labels.items() >= selector(component).items()
    ports = [p["name"] for svc in of_kind(docs, "Service") for p in svc["spec"]["ports"]]
    assert "metrics" not in ports  # no metrics Service at all: the pods are scraped directly


def test_without_pools_or_receiver_only_the_operator_is_monitored() -> None:
    docs = render("metrics.podMonitor.enabled=true")
    assert [m["metadata"]["name"] for m in of_kind(docs, "PodMonitor")] == [
        "rel-whatsapp-operator-operator"
    ]


def test_service_and_pod_monitors_together_fail_with_a_reason() -> None:
    error = render_fails("metrics.serviceMonitor.enabled=true", "metrics.podMonitor.enabled=true")
    assert "scraped twice" in error


@pytest.mark.parametrize("kind", ["serviceMonitor", "podMonitor"])
def test_monitors_keep_the_tenant_metrics_namespace_label(kind: str) -> None:
    """whatsapp_tenant_* carry the tenant's `namespace`: with honorLabels false Prometheus
    would overwrite it with the target's and rename the tenant's exported_namespace, and the
    dashboard's and alerts' `namespace` would be the operator's."""
    docs = render(f"metrics.{kind}.enabled=true")
    (monitor,) = of_kind(docs, kind[0].upper() + kind[1:])
    endpoints = monitor["spec"].get("endpoints") or monitor["spec"]["podMetricsEndpoints"]
    assert [e["honorLabels"] for e in endpoints] == [True]


def test_production_values_keep_service_monitors() -> None:
    docs = render(files=[PRODUCTION])
    assert len(of_kind(docs, "ServiceMonitor")) == 3
    assert of_kind(docs, "PodMonitor") == []
