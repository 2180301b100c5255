"""The worker's Prometheus metrics. Labels are bounded sets: pool, outcome, reason, Meta code
and error class. Never a tenant id, a recipient or anything from a token."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from whatsapp_graph import observe as graph

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0)
WAIT_BUCKETS = (0.0, 0.001, 0.005, 0.0125, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0)


class WorkerMetrics:
    """The worker's metrics, registered in this order (a group of related metrics per method)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._outcomes(self.registry)
        self._holds(self.registry)
        self._recovery(self.registry)
        self._timings(self.registry)
        self._pool(self.registry)
        self._graph(self.registry)

    def _outcomes(self, r: CollectorRegistry) -> None:
        """What became of the attempts: sent, dead-lettered, to be tried again."""
        self.sent = Counter(
            "whatsapp_worker_messages_sent",
            "Messages accepted by the Graph API",
            ["pool"],
            registry=r,
        )
        self.failed = Counter(
            "whatsapp_worker_messages_failed",
            "Messages dead-lettered, by reason, Meta error code and class",
            ["pool", "reason", "code", "error_class"],
            registry=r,
        )
        self.retried = Counter(
            "whatsapp_worker_retries",
            "Attempts that will be tried again (retry, throttle, hold, limiter wait)",
            ["pool", "action"],
            registry=r,
        )

    def _holds(self, r: CollectorRegistry) -> None:
        """Messages kept in the queue, numbers paused after a block, signals to the operator."""
        self.holds = Counter(
            "whatsapp_worker_holds",
            "Messages kept in the queue instead of sent, by reason: tenant_unavailable, "
            "credential_rejected, tenant_blocked (Meta blocked the number)",
            ["pool", "reason"],
            registry=r,
        )
        self.paused_numbers = Gauge(
            "whatsapp_worker_paused_numbers",
            "Business numbers this process pauses after Meta blocked them (their messages held)",
            ["pool"],
            registry=r,
        )
        self.signals = Counter(
            "whatsapp_worker_signals",
            "Tenant signals published to the operator, by kind (sending_blocked, "
            "credential_rejected)",
            ["pool", "kind"],
            registry=r,
        )

    def _recovery(self, r: CollectorRegistry) -> None:
        """Sends that may reach Meta twice, and deliveries given again after their owner stopped."""
        self.possible_duplicates = Counter(
            "whatsapp_worker_possible_duplicates",
            "Sends that timed out after the request was written: retrying may deliver twice",
            ["pool"],
            registry=r,
        )
        self.redeliveries = Counter(
            "whatsapp_worker_redeliveries",
            "Deliveries given again after their owner stopped, by what the send journal said: "
            "settled (acked, not sent), uncertain (dead-lettered or resent), unknown (sent)",
            ["pool", "verdict"],
            registry=r,
        )
        self.status_waits = Counter(
            "whatsapp_worker_status_waits",
            "Uncertain sends (case: timeout, redelivery) that waited for Meta's status webhook, "
            "by outcome: found (settled as accepted, not resent), none (resent), unknown (the "
            "statuses were not caught up: as without the receiver)",
            ["pool", "case", "outcome"],
            registry=r,
        )
        self.streams_caught_up = Gauge(
            "whatsapp_worker_webhook_streams_caught_up",
            "1 while this process has read its pool's webhook stream (statuses, windows) up to now",
            ["pool", "stream"],
            registry=r,
        )

    def _timings(self, r: CollectorRegistry) -> None:
        """How long sends, limiter waits and queues take."""
        self.send_seconds = Histogram(
            "whatsapp_worker_send_seconds",
            "Graph API send latency",
            ["pool"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.limiter_wait = Histogram(
            "whatsapp_worker_limiter_wait_seconds",
            "Time a message waited in memory for its number's or pair's limit",
            ["pool"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.queue_lag = Histogram(
            "whatsapp_worker_queue_lag_seconds",
            "From the producer's timestamp to the first send attempt",
            ["pool"],
            buckets=LAG_BUCKETS,
            registry=r,
        )

    def _pool(self, r: CollectorRegistry) -> None:
        """The loaded config and the pool: tenants, config problems, queue shards, members."""
        self.config_tenants = Gauge(
            "whatsapp_worker_config_tenants",
            "Tenants in the loaded resolved config",
            ["pool"],
            registry=r,
        )
        self.config_errors = Gauge(
            "whatsapp_worker_config_errors",
            "Problems in the mounted config files",
            ["pool"],
            registry=r,
        )
        self.queue_shards_held = Gauge(
            "whatsapp_worker_shards_held",
            "Shard queues this process consumes",
            ["pool"],
            registry=r,
        )
        self.live_workers = Gauge(
            "whatsapp_worker_pool_members",
            "Live workers of the pool seen by heartbeat",
            ["pool"],
            registry=r,
        )

    def _graph(self, r: CollectorRegistry) -> None:
        """Every Graph API request of the process (the same families as the operator's)."""
        self.graph_requests = Counter(
            graph.REQUESTS, graph.REQUESTS_HELP, ["operation", "code"], registry=r
        )
        self.graph_seconds = Histogram(
            graph.DURATION,
            graph.DURATION_HELP,
            ["operation"],
            buckets=graph.LATENCY_BUCKETS,
            registry=r,
        )
        self.graph_observer = graph.RequestCounter(self.graph_requests, self.graph_seconds)

    def serve(self, port: int, host: str) -> WSGIServer:
        """/metrics on `host` (settings.metrics_host: loopback unless told), in a thread."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return server
