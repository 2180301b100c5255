"""A tenant whose row sync found PostgreSQL down is woken by its recovery, even when the
recovery lands while the tenant still waits for its config's publication (up to 5 s).

A CI run had 1,000 tenants converge 13.5 s after PostgreSQL's return (goal 10 s): tenants
that joined the waiters only after that wait missed the wake and slept out their backoff."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from whatsapp_contract.resolved import Entry, TenantConfig
from whatsapp_operator.model.conditions import Reason
from whatsapp_operator.model.facts import CheckResult, PhoneFacts, TokenFacts, Verdict
from whatsapp_operator.model.tenant_policy import parse_policy
from whatsapp_operator.postgres.outcome import SyncResult
from whatsapp_operator.runtime.kube import SecretSnapshot
from whatsapp_operator.runtime.registry import Registry
from whatsapp_operator.runtime.services import Runtime
from whatsapp_operator.tenant.reconcile import reconcile_once

T0 = datetime(2026, 9, 1, 12, 0, 0, tzinfo=UTC)
TOKEN = "EAAGm0PX4ZCpsBAKZBwakeTOKEN1234567890"
KEY = ("team-a", "acme")
# --tenant-policy enforce (the default), with a policy allowing every id in every namespace
OPEN: dict[str, Any] = {
    "tenant_policies": {
        "open": [parse_policy("open", {"namespaceSelector": {}, "tenantIds": ["*"]})]
    },
    "namespace_labels": {KEY[0]: [{}]},
}
BODY: dict[str, Any] = {
    "metadata": {"namespace": KEY[0], "name": KEY[1], "uid": "u-1", "generation": 1},
    "spec": {
        "tenantId": "t_acme",
        "wabaId": "102290129340398",
        "phoneNumberId": "106540352242922",
        "tokenSecretRef": {"name": "acme-token"},
    },
}


class FakeKube:
    async def read_secret(self, namespace: str, name: str) -> SecretSnapshot:
        return SecretSnapshot({"accessToken": base64.b64encode(TOKEN.encode()).decode()}, "1", {})


class FakeValidator:
    async def check(self, token: str, spec: object, proof: str | None = None) -> CheckResult:
        return CheckResult(
            Verdict("True", Reason.TOKEN_VALID, "token valid"),
            Verdict("True", Reason.PHONE_NUMBER_VERIFIED, "phone number verified"),
            TokenFacts(is_valid=True, type="SYSTEM_USER", expires_at=T0 + timedelta(days=60)),
            PhoneFacts(display_phone_number="+1 555-0100", quality_rating="GREEN"),
            checked_at=T0,
        )


@dataclass
class DownRows:
    """RowSync as it answers while PostgreSQL is down."""

    cipher: Any = field(default_factory=lambda: type("C", (), {"mode": "none"})())

    async def sync(self, desired: object, *, adopt: bool, **access: bool) -> SyncResult:
        return SyncResult.unavailable("connection refused")


@dataclass
class Publisher:
    """Publishes at once; `during_wait` runs while the tenant waits for the publication."""

    during_wait: Callable[[], object]
    waited: int = 0

    def update(self, tenant_id: str, pool: str, config: TenantConfig | None) -> Entry | None:
        return Entry(config) if config is not None else None  # as the real one: its entry

    async def wait_published(self, tenant_id: str, config: Entry, seconds: float) -> bool:
        self.waited += 1
        self.during_wait()
        return True

    def location(self, tenant_id: str) -> None:
        return None


@pytest.mark.parametrize("recovered_during_wait", [True, False])
async def test_a_recovery_during_the_publication_wait_wakes_the_tenant(
    recovered_during_wait: bool,
) -> None:
    registry = Registry()
    waker = registry.register(KEY)
    woken: list[int] = []

    def recover() -> None:
        if recovered_during_wait:
            woken.append(registry.wake_db_waiters())

    publisher = Publisher(recover)
    rt = Runtime(
        kube=FakeKube(),  # type: ignore[arg-type]
        validator=FakeValidator(),  # type: ignore[arg-type]
        registry=registry,
        clock=lambda: T0,
        post_event=lambda body, event: None,
        grace=timedelta(minutes=15),
        rows=DownRows(),  # type: ignore[arg-type]
        publisher=publisher,  # type: ignore[arg-type]
        **OPEN,
    )
    outcome = await reconcile_once(rt, BODY, {}, {}, {})

    assert outcome.transient
    assert publisher.waited == 1  # the overlap this is about did happen
    if recovered_during_wait:
        assert woken == [1]
        assert waker.is_set()  # its next sleep ends at once
        assert KEY not in registry.db_waiters
    else:
        assert not waker.is_set()
        assert KEY in registry.db_waiters  # the next recovery wakes it
        assert registry.wake_db_waiters() == 1
        assert waker.is_set()
