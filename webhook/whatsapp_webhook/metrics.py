"""The HTTP side's Prometheus metrics (prefix `whatsapp_webhook_`). Labels are bounded sets:
route template, status code, reason, field (only fields that are published: `messages` and
the notice kinds). Never an app id, a number, a tenant or anything from a secret.

The processor's metrics (published, duplicates, results) live in `processor_metrics.py`, in
the default registry; `cli.py` registers these there too, so one page serves both.
"""

from __future__ import annotations

from typing import TypeVar, get_args
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics import MetricWrapperBase

from .config import Index
from .payload import DropReason

REQUEST_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
REJECT_REASONS = (
    "unsigned",
    "bad_signature",
    "unknown_app",
    "not_json",
    "too_large",
    "bad_shape",
    "handshake_failed",
    "not_ready",
)
CONFIG_FAILURES = ("unreadable", "invalid")
M = TypeVar("M", bound=MetricWrapperBase)


def _shared(kind: type[M], name: str, doc: str, labels: list[str], r: CollectorRegistry) -> M:
    """`name` in `r`, or the same metric the processor registered there first: `dropped` and
    `publish_failures` are one metric for both sides, as the design names them."""
    try:
        return kind(name, doc, labels, registry=r)
    except ValueError:  # prometheus_client: "Duplicated timeseries"
        existing = r._names_to_collectors.get(name)
        if not isinstance(existing, kind):
            raise
        return existing


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._requests(self.registry)
        self._config(self.registry)

    def _requests(self, r: CollectorRegistry) -> None:
        """What came in and what became of it."""
        self.requests = Counter(
            "whatsapp_webhook_requests",
            "Webhook requests (handshakes and notifications) by route template and HTTP status",
            ["route", "code"],
            registry=r,
        )
        self.rejected = Counter(
            "whatsapp_webhook_rejected",
            "Requests refused, by reason (unsigned 401, bad_signature 403, unknown_app 404, "
            "not_json 400, too_large 413, bad_shape 400, handshake_failed 403, not_ready 503)",
            ["reason"],
            registry=r,
        )
        self.dropped = _shared(
            Counter,
            "whatsapp_webhook_dropped",
            "Webhook changes (or parts of them) not handed on, by reason (ingress, answered "
            "200: unknown_number, app_mismatch, unrouted_field; processor: its own reasons)",
            ["reason"],
            r,
        )
        self.ingress_changes = Counter(
            "whatsapp_webhook_ingress_changes",
            "Changes published (confirmed) to the ingress exchange, by Meta's field",
            ["field"],
            registry=r,
        )
        self.ingress_batches = Counter(
            "whatsapp_webhook_ingress_batches",
            "Messages published to the ingress exchange (or tried), each holding the changes "
            "bound for one shard in one turn of the event loop",
            registry=r,
        )
        self.publish_failures = _shared(
            Counter,
            "whatsapp_webhook_publish_failures",
            "Publishes RabbitMQ did not confirm (ingress: the webhook was answered 503; "
            "processor: the change is requeued)",
            [],
            r,
        )
        self.request_seconds = Histogram(
            "whatsapp_webhook_request_seconds",
            "Time from the request's arrival to its answer (notifications: after the confirms)",
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "whatsapp_webhook_requests_in_flight", "Webhook requests being handled", registry=r
        )
        # the ingress counts its requests in a plain int, read at scrape time (a Gauge's
        # inc/dec take a lock each: measurable at thousands of requests per second)
        self.requests_in_flight = 0
        self.in_flight.set_function(lambda: float(self.requests_in_flight))
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        for drop in get_args(DropReason):
            self.dropped.labels(drop)

    def _config(self, r: CollectorRegistry) -> None:
        """The loaded ReceiverConfig and the broker connection."""
        self.config_loaded_flag = Gauge(
            "whatsapp_webhook_config_loaded", "1 once a receiver config is loaded", registry=r
        )
        self.config_apps = Gauge(
            "whatsapp_webhook_config_apps", "Apps in the loaded config", registry=r
        )
        self.config_numbers = Gauge(
            "whatsapp_webhook_config_numbers", "Numbers in the loaded config", registry=r
        )
        self.config_load_time = Gauge(
            "whatsapp_webhook_config_load_timestamp_seconds",
            "When the loaded config was read (Unix time)",
            registry=r,
        )
        self.config_failures = Counter(
            "whatsapp_webhook_config_failures",
            "Config files that could not be used (the last good config kept serving)",
            ["reason"],
            registry=r,
        )
        self.broker_connected = Gauge(
            "whatsapp_webhook_broker_connected", "1 while the RabbitMQ connection is up", registry=r
        )
        for reason in CONFIG_FAILURES:
            self.config_failures.labels(reason)

    # --- ConfigStore's listener (config.ConfigMetrics) ------------------------------------------
    def config_loaded(self, index: Index, at: float) -> None:
        self.config_loaded_flag.set(1)
        self.config_apps.set(len(index.apps))
        self.config_numbers.set(len(index.numbers))
        self.config_load_time.set(at)

    def config_failed(self, reason: str) -> None:
        self.config_failures.labels(reason).inc()

    def serve(self, port: int, host: str) -> WSGIServer:
        """/metrics on `host` (settings.metrics_host: loopback unless told), in a thread."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return server
