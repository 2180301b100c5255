"""The Grafana dashboard against the live processes: every metric its queries (panels and
variables) read is exported by the operator, a worker or the webhook receiver, as scraped by
tests/conftest.py's `exported_metrics` (whatsapp_testkit/scrape.py)."""

from __future__ import annotations

import pytest

from whatsapp_testkit import dashboard
from whatsapp_testkit.scrape import documented

pytestmark = pytest.mark.integration


def test_every_dashboard_query_reads_only_exported_metrics(
    exported_metrics: dict[str, set[str]],
) -> None:
    exported = set().union(*exported_metrics.values())
    types = {name: row.type for name, row in documented().items()}
    families = {name: types.get(name, "") for name in exported}  # type: a sample's suffixes
    data = dashboard.load()
    assert dashboard.queries(data)  # the check reads something
    assert dashboard.unexported(data, families) == {}


def test_the_check_reports_a_metric_the_processes_do_not_export(
    exported_metrics: dict[str, set[str]],
) -> None:
    """The same check, on a dashboard with one query more, names the query and the metric."""
    exported = set().union(*exported_metrics.values())
    data = dashboard.load()
    extra = {"title": "X", "targets": [{"refId": "A", "expr": "rate(whatsapp_not_a_metric[5m])"}]}
    data["panels"] = [*data["panels"], extra]
    missing = dashboard.unexported(data, dict.fromkeys(exported, ""))
    assert missing == {"panel 'X' A": {"whatsapp_not_a_metric"}}
