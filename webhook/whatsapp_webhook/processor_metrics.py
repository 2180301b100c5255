"""The processor's Prometheus metrics (prefix `whatsapp_webhook_`, the default registry, served
by the receiver's metrics port). Labels are bounded sets: kind, status, reason, outcome,
never a tenant, a number or a message id.

A metric the ingress side registers under the same name (`dropped_total`: it drops unknown
numbers, the processor unrouted fields) is shared, not registered twice.
"""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

PREFIX = "whatsapp_webhook_"
CATCH_UP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0)
M = TypeVar("M", bound=MetricWrapperBase)


def _shared(
    registry: CollectorRegistry,
    kind: type[M],
    name: str,
    doc: str,
    labels: list[str],
    **options: Any,
) -> M:
    """The metric `name` of `registry`: created, or the one another module (or another
    processor in the same process: tests) created."""
    try:
        return kind(PREFIX + name, doc, labels, registry=registry, **options)
    except ValueError:  # already registered (prometheus_client: "Duplicated timeseries")
        existing = registry._names_to_collectors.get(PREFIX + name)
        if not isinstance(existing, kind):
            raise
        return existing


class ProcessorMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        r = registry
        self.published = _shared(
            r, Counter, "published_total",
            "Messages published by the processor: status (result events), message (inbound "
            "envelopes), window (service-window records), notice", ["kind"],
        )  # fmt: skip
        self.duplicates = _shared(
            r, Counter, "duplicates_total",
            "Statuses (duplicate or out of order) and inbound messages not published again",
            ["kind"],
        )  # fmt: skip
        self.publish_failures = _shared(
            r, Counter, "publish_failures_total",
            "Publishes the broker did not confirm (the change is requeued)", [],
        )  # fmt: skip
        self.results = _shared(
            r, Counter, "results_total", "Result events published, by status", ["status"]
        )
        self.dropped = _shared(
            r, Counter, "dropped_total",
            "Webhook changes or parts of them not handed on, by reason (processor: "
            "unrouted_field, unknown_status, no_route, invalid_change)", ["reason"],
        )  # fmt: skip
        self.catch_ups = _shared(
            r, Counter, "status_log_catch_ups_total",
            "Reads of the status log up to a marker before a redelivered or first delivery, "
            "by outcome (ok, timeout, error)", ["outcome"],
        )  # fmt: skip
        self.catch_up_seconds = _shared(
            r, Histogram, "status_log_catch_up_seconds",
            "Time from writing a marker into the status log to reading it back", [],
            buckets=CATCH_UP_BUCKETS,
        )  # fmt: skip
        self.log_records = _shared(
            r, Counter, "status_log_records_total",
            "Messages read from the status log (every replica's results and inbound messages)",
            [],
        )  # fmt: skip
        self.memory_entries = _shared(
            r, Gauge, "status_memory_entries",
            "Messages whose last published status (or inbound mark) the memory holds", [],
        )  # fmt: skip
        self.changes = _shared(
            r, Counter, "changes_processed_total",
            "Ingress deliveries settled, by outcome (acked, requeued, rejected)", ["outcome"],
        )  # fmt: skip
