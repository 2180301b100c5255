"""Per-tenant gauges (whatsapp_operator/runtime/metrics.py), read back from the registry."""

from __future__ import annotations

import time
import tracemalloc
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from whatsapp_operator.model.secret_data import fingerprint
from whatsapp_operator.runtime import metrics, metrics_http

TOKEN = "EAAGmetricsTOKEN0123456789abcdefghijkl"
EXPIRY = "whatsapp_tenant_token_expiry_timestamp_seconds"
RENEWAL = "whatsapp_tenant_token_renewal_timestamp_seconds"
READY = "whatsapp_tenant_ready"
EXPIRES_AT = datetime(2026, 10, 31, 12, 0, 0, tzinfo=UTC)
RENEWAL_AT = datetime(2026, 10, 11, 12, 0, 0, tzinfo=UTC)


def ready(value: str) -> list[dict[str, Any]]:
    return [{"type": "TokenValid", "status": "True"}, {"type": "Ready", "status": value}]


def token(**extra: Any) -> dict[str, Any]:
    return {"fingerprint": fingerprint(TOKEN), "type": "SYSTEM_USER", **extra}


@dataclass
class Tenant:
    namespace: str
    name: str
    tenant_id: str

    def labels(self) -> dict[str, str]:
        return {"namespace": self.namespace, "name": self.name, "tenant_id": self.tenant_id}

    def value(self, metric: str) -> float | None:
        return REGISTRY.get_sample_value(metric, self.labels())


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    """A tenant of its own per test (the registry is process-wide), forgotten afterwards."""
    t = Tenant(f"ns-{uuid.uuid4().hex[:8]}", "acme", "acme-id")
    yield t
    metrics.forget(t.namespace, t.name)


@dataclass(frozen=True)
class Case:
    id: str
    status: dict[str, Any]
    expiry: float | None
    renewal: float | None
    ready: float


CASES = [
    Case("expiring token, Ready", {"token": token(expiresAt="2026-10-31T12:00:00Z",
         renewalTime="2026-10-11T12:00:00Z"), "conditions": ready("True")},
         EXPIRES_AT.timestamp(), RENEWAL_AT.timestamp(), 1),
    Case("expiring token, not Ready", {"token": token(expiresAt="2026-10-31T12:00:00Z"),
         "conditions": ready("False")}, EXPIRES_AT.timestamp(), None, 0),
    Case("never-expiring token: no expiry, no renewal", {"token": token(),
         "conditions": ready("True")}, None, None, 1),
    Case("no token facts yet", {"conditions": ready("Unknown")}, None, None, 0),
    Case("empty status", {}, None, None, 0),
    Case("token not an object", {"token": "oops", "conditions": ready("True")}, None, None, 1),
    Case("unreadable times are left out", {"token": token(expiresAt="soon", renewalTime=7)},
         None, None, 0),
]  # fmt: skip


@pytest.mark.parametrize("case", [pytest.param(x, id=x.id) for x in CASES])
def test_observe(case: Case, tenant: Tenant) -> None:
    metrics.observe(tenant.namespace, tenant.name, tenant.tenant_id, case.status)
    assert tenant.value(EXPIRY) == case.expiry
    assert tenant.value(RENEWAL) == case.renewal
    assert tenant.value(READY) == case.ready


def test_a_token_that_stops_expiring_drops_its_gauges(tenant: Tenant) -> None:
    expiring = {
        "token": token(expiresAt="2026-10-31T12:00:00Z", renewalTime="2026-10-11T12:00:00Z")
    }
    metrics.observe(tenant.namespace, tenant.name, tenant.tenant_id, expiring)
    assert tenant.value(RENEWAL) == RENEWAL_AT.timestamp()
    metrics.observe(tenant.namespace, tenant.name, tenant.tenant_id, {"token": token()})
    assert (tenant.value(EXPIRY), tenant.value(RENEWAL)) == (None, None)


def test_forget_removes_every_label(tenant: Tenant) -> None:
    status = {
        "token": token(expiresAt="2026-10-31T12:00:00Z", renewalTime="2026-10-11T12:00:00Z"),
        "conditions": ready("True"),
    }
    metrics.observe(tenant.namespace, tenant.name, tenant.tenant_id, status)
    metrics.forget(tenant.namespace, tenant.name)
    assert [tenant.value(m) for m in (EXPIRY, RENEWAL, READY)] == [None, None, None]
    metrics.forget(tenant.namespace, tenant.name)  # a second time: nothing left, no error


def test_forget_leaves_other_tenants_alone(tenant: Tenant) -> None:
    other = Tenant(tenant.namespace, "other", "other-id")
    status = {"token": token(expiresAt="2026-10-31T12:00:00Z"), "conditions": ready("True")}
    metrics.observe(tenant.namespace, tenant.name, tenant.tenant_id, status)
    metrics.observe(other.namespace, other.name, other.tenant_id, status)
    metrics.forget(tenant.namespace, tenant.name)
    assert tenant.value(EXPIRY) is None
    assert other.value(EXPIRY) == EXPIRES_AT.timestamp()
    assert other.value(READY) == 1
    metrics.forget(other.namespace, other.name)
    assert other.value(READY) is None


def test_a_new_tenant_id_replaces_the_old_labels(tenant: Tenant) -> None:
    status = {"token": token(expiresAt="2026-10-31T12:00:00Z"), "conditions": ready("True")}
    metrics.observe(tenant.namespace, tenant.name, tenant.tenant_id, status)
    renamed = Tenant(tenant.namespace, tenant.name, "renamed-id")
    metrics.observe(renamed.namespace, renamed.name, renamed.tenant_id, status)
    assert (tenant.value(EXPIRY), tenant.value(READY)) == (None, None)
    assert (renamed.value(EXPIRY), renamed.value(READY)) == (EXPIRES_AT.timestamp(), 1)


def test_labels_never_contain_a_token(tenant: Tenant) -> None:
    status = {
        "token": token(expiresAt="2026-10-31T12:00:00Z", renewalTime="2026-10-11T12:00:00Z"),
        "conditions": ready("True"),
    }
    metrics.observe(tenant.namespace, tenant.name, tenant.tenant_id, status)
    mine = 0
    for family in REGISTRY.collect():
        for sample in family.samples:
            values = " ".join(sample.labels.values())
            assert TOKEN not in values
            assert fingerprint(TOKEN) not in values
            if family.name in (EXPIRY, RENEWAL, READY):
                assert set(sample.labels) == {"namespace", "name", "tenant_id"}
                if sample.labels["namespace"] == tenant.namespace:
                    assert sample.labels == tenant.labels()
                    mine += 1
    assert mine == 3


def test_the_exposition_is_a_gauge_family_with_help(tenant: Tenant) -> None:
    metrics.observe(tenant.namespace, tenant.name, tenant.tenant_id, {"conditions": ready("True")})
    text = generate_latest(REGISTRY).decode()
    assert f"# TYPE {READY} gauge" in text
    assert f"# HELP {READY} 1 when the tenant is Ready, else 0" in text
    family = next(f for f in text_string_to_metric_families(text) if f.name == READY)
    assert [s.value for s in family.samples if s.labels == tenant.labels()] == [1.0]


def test_a_tenant_costs_a_small_record_not_a_gauge_child_per_metric() -> None:
    """10,000 tenants with expiring tokens: prometheus-client's labelled gauges took ~21 MB
    (three children of ~700 bytes each per tenant); the records take a tenth of it."""
    status = {
        "token": token(expiresAt="2026-10-31T12:00:00Z", renewalTime="2026-10-11T12:00:00Z"),
        "conditions": ready("True"),
    }
    keys = [(f"ns-mem-{i % 10}", f"tenant-{i:05d}", f"t_{i:05d}") for i in range(2000)]
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for key in keys:
            metrics.observe(*key, status)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
        for namespace, name, _ in keys:
            metrics.forget(namespace, name)
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # bytes per tenant: measured 228 (was 2,170), key strings included
    assert grown / len(keys) < 400


def test_a_blocked_tenant_has_a_sending_blocked_gauge_with_the_code(tenant: Tenant) -> None:
    labels = tenant.labels() | {"code": "131048"}
    blocked = {"conditions": ready("False"), "sendingBlock": {"code": 131048, "since": "x"}}
    metrics.observe(tenant.namespace, tenant.name, tenant.tenant_id, blocked)
    assert REGISTRY.get_sample_value(metrics.SENDING_BLOCKED, labels) == 1.0
    assert tenant.value(READY) == 0
    metrics.observe(tenant.namespace, tenant.name, tenant.tenant_id, {"conditions": ready("True")})
    assert REGISTRY.get_sample_value(metrics.SENDING_BLOCKED, labels) is None  # lifted: gone
    text = generate_latest(REGISTRY).decode()
    assert f"# TYPE {metrics.SENDING_BLOCKED} gauge" in text


CONDITION = "whatsapp_tenant_condition"
CONDITIONS = [
    {"type": "SecretResolved", "status": "True", "reason": "Resolved", "message": "m"},
    {"type": "TokenValid", "status": "False", "reason": "TokenExpired"},
    {"type": "SendingBlocked", "status": "False"},  # no reason: an empty label
    {"status": "True", "reason": "NoType"},  # malformed: left out
    "not a condition",
    {"type": "Ready", "status": "False", "reason": "TokenExpired"},
]


def condition_samples(tenant: Tenant) -> list[tuple[str, str, str]]:
    family = next(f for f in REGISTRY.collect() if f.name == CONDITION)
    mine = [s for s in family.samples if s.labels["namespace"] == tenant.namespace]
    assert all(s.value == 1.0 for s in mine)
    assert all(s.labels["tenant_id"] == tenant.tenant_id for s in mine)
    return [(s.labels["type"], s.labels["status"], s.labels["reason"]) for s in mine]


def test_a_series_per_condition_with_type_status_and_reason(tenant: Tenant) -> None:
    metrics.observe(tenant.namespace, tenant.name, tenant.tenant_id, {"conditions": CONDITIONS})
    assert condition_samples(tenant) == [
        ("SecretResolved", "True", "Resolved"),
        ("TokenValid", "False", "TokenExpired"),
        ("SendingBlocked", "False", ""),
        ("Ready", "False", "TokenExpired"),
    ]
    metrics.observe(tenant.namespace, tenant.name, tenant.tenant_id, {"conditions": ready("True")})
    assert condition_samples(tenant) == [("TokenValid", "True", ""), ("Ready", "True", "")]
    metrics.forget(tenant.namespace, tenant.name)
    assert condition_samples(tenant) == []
    text = generate_latest(REGISTRY).decode()
    assert f"# TYPE {CONDITION} gauge" in text  # the family stays, without the tenant


def test_tenants_with_the_same_conditions_share_one_record_of_them() -> None:
    keys = [("ns-share", f"t{i}", f"id{i}") for i in range(3)]
    try:
        for key in keys:
            metrics.observe(*key, {"conditions": [dict(c) for c in ready("True")]})
        records = [metrics.TENANTS.tenants[key[:2]].conditions for key in keys]
        assert records[0] == (("TokenValid", "True", ""), ("Ready", "True", ""))
        assert records[1] is records[0]
        assert records[2] is records[0]
    finally:
        for namespace, name, _ in keys:
            metrics.forget(namespace, name)


def test_a_scrape_of_10000_tenants_renders_quickly() -> None:
    """Every per-tenant family, conditions included (8 each, as a real tenant has), at 10,000
    tenants, served as /metrics serves them (metrics_http.exposition); prometheus-client's own
    rendering of the same families for comparison. `pytest -s` prints both figures."""
    types = ("SecretResolved", "TokenValid", "PhoneNumberVerified", "SendingBlocked", "Synced",
             "TokenRotation", "ApiVersionSupported", "Ready")  # fmt: skip
    status = {
        "token": token(expiresAt="2026-10-31T12:00:00Z", renewalTime="2026-10-11T12:00:00Z"),
        "conditions": [{"type": t, "status": "True", "reason": "Ok"} for t in types],
    }
    keys = [(f"ns-scrape-{i % 10}", f"tenant-{i:05d}", f"t_{i:05d}") for i in range(10_000)]
    try:
        for key in keys:
            metrics.observe(*key, status)
        started = time.perf_counter()
        text, _ = metrics_http.exposition(None)
        served = time.perf_counter() - started
        started = time.perf_counter()
        generate_latest(REGISTRY)
        library = time.perf_counter() - started
    finally:
        for namespace, name, _ in keys:
            metrics.forget(namespace, name)
    # only this test's tenants (earlier tests of the session may have left a few of their own)
    conditions = sum(
        1
        for line in text.splitlines()
        if line.startswith(b"whatsapp_tenant_condition{") and b'"ns-scrape-' in line
    )
    print(
        f"\n10,000 tenants: /metrics rendered in {served:.3f} s ({len(text) / 1e6:.1f} MB, "
        f"{conditions} condition series); prometheus-client's rendering {library:.3f} s"
    )
    assert conditions == 80_000
    assert served < library / 3  # measured 0.2-0.3 s against 2.6-2.9 s (2 shared cores)
