"""Prometheus metrics of the operator. Labels name tenants (namespace, name, tenant id) and
outcomes; never a token."""

from __future__ import annotations

from collections.abc import Iterator, Sized
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import REGISTRY, Counter, Gauge, Metric, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

TENANT_LABELS = ("namespace", "name", "tenant_id")
# name -> help of the per-tenant gauges (served by `TenantGauges`)
TOKEN_EXPIRY = "whatsapp_tenant_token_expiry_timestamp_seconds"
TOKEN_RENEWAL = "whatsapp_tenant_token_renewal_timestamp_seconds"
READY = "whatsapp_tenant_ready"
SENDING_BLOCKED = "whatsapp_tenant_sending_blocked"  # its own family: one more label, `code`
SENDING_BLOCKED_HELP = (
    "1 while Meta blocks sending from the tenant's number (code: Meta's error code); absent "
    "otherwise"
)
_TENANT_HELP = {
    TOKEN_EXPIRY: "When the tenant's access token expires (unix seconds); absent for "
    "never-expiring tokens",
    TOKEN_RENEWAL: "When the tenant's access token is due for renewal (unix seconds)",
    READY: "1 when the tenant is Ready, else 0",
}


@dataclass(frozen=True, slots=True)
class _TenantFacts:
    tenant_id: str
    ready: bool
    expiry: float | None
    renewal: float | None
    blocked_code: int | None = None


class TenantGauges(Collector):
    """The per-tenant gauges, built from one small record per tenant at each scrape.

    prometheus-client's labelled Gauge keeps a child object per label set (with its own lock
    and value): three per tenant with an expiring token took 2,170 bytes (22 MB at 10,000
    tenants); a record here, its key strings included, 228 (tests/unit/test_metrics.py). A
    scrape renders the same samples the children would have."""

    def __init__(self) -> None:
        self.tenants: dict[tuple[str, str], _TenantFacts] = {}

    def _families(self) -> dict[str, GaugeMetricFamily]:
        families = {
            name: GaugeMetricFamily(name, doc, labels=TENANT_LABELS)
            for name, doc in _TENANT_HELP.items()
        }
        families[SENDING_BLOCKED] = GaugeMetricFamily(
            SENDING_BLOCKED, SENDING_BLOCKED_HELP, labels=(*TENANT_LABELS, "code")
        )
        return families

    def describe(self) -> Iterator[Metric]:
        return iter(self._families().values())

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        for (namespace, name), facts in list(self.tenants.items()):  # a copy: scrapes thread
            labels = [namespace, name, facts.tenant_id]
            families[READY].add_metric(labels, 1.0 if facts.ready else 0.0)
            if facts.expiry is not None:
                families[TOKEN_EXPIRY].add_metric(labels, facts.expiry)
            if facts.renewal is not None:
                families[TOKEN_RENEWAL].add_metric(labels, facts.renewal)
            if facts.blocked_code is not None:
                families[SENDING_BLOCKED].add_metric([*labels, str(facts.blocked_code)], 1.0)
        return iter(families.values())


TENANTS = TenantGauges()
REGISTRY.register(TENANTS)

RECONCILES = Counter("whatsapp_operator_reconciles_total", "Tenant reconciles", ["result"])
WAKES = Counter(
    "whatsapp_operator_wakes_total", "Tenant passes run before their timer, by why", ["reason"]
)
REFRESHES = Counter("whatsapp_operator_token_refreshes_total", "Token refreshes", ["result"])
SIGNALS = Counter(
    "whatsapp_operator_signals_total",
    "Tenant signals from the sender workers, by kind and what the operator did with them",
    ["kind", "outcome"],
)

POOL_WORKERS = Gauge(
    "whatsapp_operator_pool_workers",
    "Live sender workers of a pool, by whether they run the published config",
    ["pool", "config"],
)


RUNNING = Gauge(
    "whatsapp_operator_reconciles_running",
    "Tenant reconcile passes running now (at most --max-concurrent-reconciles)",
)
SCHEDULED = Gauge(
    "whatsapp_operator_tenants_scheduled", "Tenants whose reconcile passes the operator runs"
)


class _SchedulerView(Protocol):
    running: int

    @property
    def slots(self) -> Sized: ...


def watch_scheduler(scheduler: _SchedulerView) -> None:
    """Read the scheduler's counts at each scrape."""
    RUNNING.set_function(lambda: scheduler.running)
    SCHEDULED.set_function(lambda: len(scheduler.slots))


def set_pool_workers(pool: str, *, current: int, stale: int) -> None:
    POOL_WORKERS.labels(pool, "current").set(current)
    POOL_WORKERS.labels(pool, "stale").set(stale)


def serve(port: int, host: str) -> None:
    if port:
        start_http_server(port, addr=host)


def observe(namespace: str, name: str, tenant_id: str, status: dict[str, object]) -> None:
    """Record a tenant's status (called after each reconcile)."""
    from whatsapp_operator.model.recheck import parse_time

    token = status.get("token") if isinstance(status.get("token"), dict) else {}
    assert isinstance(token, dict)
    expiry, renewal = (parse_time(token.get(key)) for key in ("expiresAt", "renewalTime"))
    conditions = status.get("conditions") or []
    ready = any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in conditions  # type: ignore[attr-defined]
    )
    block = status.get("sendingBlock")
    code = block.get("code") if isinstance(block, dict) else None
    TENANTS.tenants[(namespace, name)] = _TenantFacts(
        tenant_id,
        ready,
        expiry.timestamp() if expiry is not None else None,
        renewal.timestamp() if renewal is not None else None,
        code if isinstance(code, int) and not isinstance(code, bool) else None,
    )


def forget(namespace: str, name: str) -> None:
    TENANTS.tenants.pop((namespace, name), None)
