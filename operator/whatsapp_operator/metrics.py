"""Prometheus metrics of the operator. Labels name tenants (namespace, name, tenant id) and
outcomes; never a token."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, start_http_server

TOKEN_EXPIRY = Gauge(
    "whatsapp_tenant_token_expiry_timestamp_seconds",
    "When the tenant's access token expires (unix seconds); absent for never-expiring tokens",
    ["namespace", "name", "tenant_id"],
)
TOKEN_RENEWAL = Gauge(
    "whatsapp_tenant_token_renewal_timestamp_seconds",
    "When the tenant's access token is due for renewal (unix seconds)",
    ["namespace", "name", "tenant_id"],
)
READY = Gauge(
    "whatsapp_tenant_ready",
    "1 when the tenant is Ready, else 0",
    ["namespace", "name", "tenant_id"],
)
RECONCILES = Counter("whatsapp_operator_reconciles_total", "Tenant reconciles", ["result"])
WAKES = Counter(
    "whatsapp_operator_wakes_total", "Tenant loops woken before their timer, by why", ["reason"]
)
REFRESHES = Counter("whatsapp_operator_token_refreshes_total", "Token refreshes", ["result"])

POOL_WORKERS = Gauge(
    "whatsapp_operator_pool_workers",
    "Live sender workers of a pool, by whether they run the published config",
    ["pool", "config"],
)

_PER_TENANT = (TOKEN_EXPIRY, TOKEN_RENEWAL, READY)


def set_pool_workers(pool: str, *, current: int, stale: int) -> None:
    POOL_WORKERS.labels(pool, "current").set(current)
    POOL_WORKERS.labels(pool, "stale").set(stale)


_labels: dict[tuple[str, str], str] = {}


def serve(port: int, host: str) -> None:
    if port:
        start_http_server(port, addr=host)


def observe(namespace: str, name: str, tenant_id: str, status: dict[str, object]) -> None:
    """Record a tenant's status (called after each reconcile)."""
    from .schedule import parse_time

    previous = _labels.get((namespace, name))
    if previous is not None and previous != tenant_id:
        forget(namespace, name)
    _labels[(namespace, name)] = tenant_id
    token = status.get("token") if isinstance(status.get("token"), dict) else {}
    assert isinstance(token, dict)
    for gauge, key in ((TOKEN_EXPIRY, "expiresAt"), (TOKEN_RENEWAL, "renewalTime")):
        when = parse_time(token.get(key))
        if when is None:
            _remove(gauge, namespace, name, tenant_id)
        else:
            gauge.labels(namespace, name, tenant_id).set(when.timestamp())
    conditions = status.get("conditions") or []
    ready = any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in conditions  # type: ignore[attr-defined]
    )
    READY.labels(namespace, name, tenant_id).set(1 if ready else 0)


def _remove(gauge: Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)


def forget(namespace: str, name: str) -> None:
    tenant_id = _labels.pop((namespace, name), None)
    if tenant_id is not None:
        for gauge in _PER_TENANT:
            _remove(gauge, namespace, name, tenant_id)
