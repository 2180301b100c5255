"""testkit's scrape helpers (whatsapp_testkit/scrape.py) and docs/metrics.md's table."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from whatsapp_testkit import scrape


def test_families_are_the_type_lines_without_prometheus_clients_created_gauges() -> None:
    r = CollectorRegistry()
    Counter("plain", "h", registry=r).inc()
    Counter("labelled", "h", ["x"], registry=r)  # no child yet: HELP and TYPE only
    Histogram("took_seconds", "h", registry=r)
    Gauge("mine_created", "a gauge of that name with no counter behind it", registry=r)
    text = generate_latest(r).decode()
    assert "# TYPE plain_created gauge" in text  # what the helper must leave out
    assert scrape.families(text) == {
        "plain_total": "counter",
        "labelled_total": "counter",
        "took_seconds": "histogram",
        "mine_created": "gauge",
    }


def test_documented_reads_the_rows(tmp_path: Path) -> None:
    doc = tmp_path / "m.md"
    doc.write_text(
        "text `not_a_row`\n| Metric | Type | Processes | Labels | Meaning |\n"
        "|---|---|---|---|---|\n"
        "| `a_total` | counter | operator, worker | `op`, `code` | As, counted |\n"
        "| `b` | gauge | webhook | - | Bs |\n"
    )
    rows = scrape.documented(doc)
    assert rows["a_total"] == scrape.Documented(
        "a_total", "counter", frozenset({"operator", "worker"}), ("op", "code"), "As, counted"
    )
    assert rows["b"].labels == ()
    assert scrape.by_process(rows) == {"operator": {"a_total"}, "worker": {"a_total"},
                                       "webhook": {"b"}}  # fmt: skip


def test_a_row_twice_or_short_is_an_error(tmp_path: Path) -> None:
    doc = tmp_path / "m.md"
    doc.write_text("| `a` | gauge | worker | - | x |\n| `a` | gauge | worker | - | x |\n")
    with pytest.raises(ValueError, match="twice"):
        scrape.documented(doc)
    doc.write_text("| `a` | gauge | worker | x |\n")
    with pytest.raises(ValueError, match="5 cells"):
        scrape.documented(doc)


def test_the_docs_table_is_well_formed() -> None:
    rows = scrape.documented()
    assert len(rows) > 50
    for row in rows.values():
        assert row.type in ("counter", "gauge", "histogram"), row
        assert row.processes <= set(scrape.PROCESSES), row
        assert row.meaning, row
        assert row.name.endswith("_total") == (row.type == "counter"), row
    new = ("whatsapp_tenant_condition", "whatsapp_graph_requests_total",
           "whatsapp_graph_request_duration_seconds",
           "whatsapp_operator_reconcile_duration_seconds",
           "whatsapp_operator_reconcile_queue_wait_seconds")  # fmt: skip
    assert all(name in rows for name in new)
    assert rows["whatsapp_tenant_condition"].labels == (
        "namespace",
        "name",
        "tenant_id",
        "type",
        "status",
        "reason",
    )
    assert rows["whatsapp_graph_requests_total"].processes == {"operator", "worker"}
