"""The operator's /metrics server (metrics_http.py): the same samples as prometheus-client's
exposition of the registry, in both text formats, gzip when asked, tenant families once."""

from __future__ import annotations

import gzip
import socket
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from whatsapp_operator.runtime import metrics, metrics_http

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
STATUS = {
    "token": {"expiresAt": "2026-10-31T12:00:00Z", "renewalTime": "2026-10-11T12:00:00Z"},
    "conditions": [
        {"type": "TokenValid", "status": "False", "reason": 'Odd"re\\ason\nx'},
        {"type": "Ready", "status": "False", "reason": "TokenExpired"},
    ],
    "sendingBlock": {"code": 131048},
}


@pytest.fixture
def tenants() -> Iterator[list[tuple[str, str, str]]]:
    keys = [(f"ns-{uuid.uuid4().hex[:8]}", f"t{i}", f'id-{i}"\\') for i in range(3)]
    for key in keys:
        metrics.observe(*key, STATUS)
    yield keys
    for namespace, name, _ in keys:
        metrics.forget(namespace, name)


def samples(families: Iterable[Any]) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for f in families
        for s in f.samples
        if s.name.startswith("whatsapp_") and not s.name.endswith("_created")  # process_*, and
        # the _created times, change between two expositions
    }


def test_the_text_format_has_the_samples_of_prometheus_clients(tenants: object) -> None:
    served, content_type = metrics_http.exposition(None)
    assert content_type.startswith("text/plain")
    ours = samples(text_string_to_metric_families(served.decode()))
    theirs = samples(text_string_to_metric_families(generate_latest(REGISTRY).decode()))
    assert ours == theirs
    assert any(name == metrics.CONDITION for name, _, _ in ours)
    assert served.count(f"# TYPE {metrics.CONDITION} gauge".encode()) == 1


def test_openmetrics_keeps_its_eof_last_and_parses(tenants: list[tuple[str, str, str]]) -> None:
    served, content_type = metrics_http.exposition(OPENMETRICS)
    assert content_type.startswith("application/openmetrics-text")
    assert served.endswith(b"\n# EOF\n")
    assert served.count(b"# EOF") == 1
    families = {f.name: f for f in openmetrics_families(served.decode())}  # type: ignore[no-untyped-call]
    namespace, name, tenant_id = tenants[0]
    reasons = {
        s.labels["reason"]
        for s in families[metrics.CONDITION].samples
        if s.labels["namespace"] == namespace and s.labels["name"] == name
    }
    assert reasons == {'Odd"re\\ason\nx', "TokenExpired"}
    blocked = families[metrics.SENDING_BLOCKED].samples
    assert {"namespace": namespace, "name": name, "tenant_id": tenant_id, "code": "131048"} in [
        s.labels for s in blocked
    ]


def test_the_collector_is_whole_again_after_a_served_scrape(tenants: object) -> None:
    metrics_http.exposition(None)
    assert any(f.samples for f in metrics.TENANTS.collect())


def test_the_server_answers_gzip_when_asked(tenants: object) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = metrics_http.serve(port, "127.0.0.1")
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            assert response.headers["Content-Encoding"] == "gzip"
            text = gzip.decompress(response.read()).decode()
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.headers.get("Content-Encoding") is None
            assert response.read().decode().count(f"# TYPE {metrics.READY} gauge") == 1
    finally:
        server.shutdown()
        server.server_close()
    assert f"# TYPE {metrics.CONDITION} gauge" in text
    assert "whatsapp_operator_reconcile_duration_seconds_bucket" in text
