"""Which tenant events wake a tenant (`handlers.tenant_changed`): watch events and listings
(type None: start-up, or a watch re-established after an API server restart); and how the
events hand the tenant to the scheduler."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import kopf
import pytest
from prometheus_client import REGISTRY

from whatsapp_operator.runtime.handlers import tenant_changed
from whatsapp_operator.runtime.registry import Registry
from whatsapp_operator.runtime.scheduler import Scheduler
from whatsapp_operator.tenant.loop import TenantLoop

REVALIDATE = {"whatsapp.operator.dev/revalidate": "1"}


@pytest.mark.parametrize(
    ("type_", "seen_generation", "annotations", "woken"),
    [
        pytest.param("MODIFIED", 1, {}, False, id="watch event, nothing changed"),
        pytest.param("MODIFIED", 1, REVALIDATE, True, id="watch event, check asked"),
        pytest.param("MODIFIED", 0, {}, True, id="watch event, spec changed"),
        pytest.param(None, 0, {}, False, id="listing, first sight: no wake for everyone"),
        pytest.param(None, 1, REVALIDATE, True, id="listing with a check asked: woken"),
        pytest.param(None, 0, REVALIDATE, True, id="listing at start-up with a check asked"),
    ],
)
async def test_wakes(
    type_: str | None, seen_generation: int, annotations: dict[str, str], woken: bool
) -> None:
    registry = Registry()
    key = ("shop", "acme")
    memo = _memo(registry)
    slot = memo.scheduler.add(key, Tenant())  # a tenant the scheduler runs already
    if seen_generation:
        registry.spec_changed(key, seen_generation)
    meta: dict[str, Any] = {"name": "acme", "generation": 1, "annotations": annotations}
    await _event(type_, meta, memo)
    assert slot.is_set() is woken


class Tenant:
    async def step(self) -> float:
        return 3600.0

    def observe(self, body: Any) -> None:
        pass


@pytest.mark.parametrize("type_", ["ADDED", None])
async def test_a_new_tenant_runs_at_once_and_that_is_not_counted_as_a_wake(
    type_: str | None,
) -> None:
    registry = Registry()
    memo = _memo(registry)
    before = _wakes("spec")
    meta = {"name": "new", "generation": 1, "annotations": REVALIDATE}
    await _event(type_, meta, memo)
    slot = memo.scheduler.slots[("shop", "new")]
    assert slot.due <= time.monotonic()  # due now
    assert not slot.is_set()
    assert _wakes("spec") == before


def _memo(registry: Registry) -> kopf.Memo:
    scheduler = Scheduler(10, registry=registry)  # as the operator builds it
    return kopf.Memo(runtime=SimpleNamespace(registry=registry), scheduler=scheduler)


async def _event(type_: str | None, meta: dict[str, Any], memo: kopf.Memo) -> kopf.Body:
    body = kopf.Body({"metadata": {"namespace": "shop", **meta}, "spec": {"tenantId": "t"}})
    await tenant_changed(
        type=type_, body=body, namespace="shop", name=meta["name"], spec=body.spec,
        meta=body.meta, memo=memo, tenants_by_tenant_id={}, tenants_by_phone_number_id={},
    )  # type: ignore[arg-type]  # fmt: skip
    return body


async def test_events_hand_the_tenant_to_the_scheduler_and_deletion_forgets_it() -> None:
    registry = Registry()
    memo = _memo(registry)
    scheduler: Scheduler = memo.scheduler
    key = ("shop", "acme")

    first = await _event(None, {"name": "acme", "generation": 1}, memo)  # the listing
    slot = scheduler.slots[key]
    assert isinstance(slot.tenant, TenantLoop)
    assert slot.tenant.body == dict(first)
    assert registry.wakers[key] is slot  # wakes reach the scheduler
    assert not slot.is_set()  # due now as a new tenant, but not "woken"

    newer = await _event("MODIFIED", {"name": "acme", "generation": 1, "x": 1}, memo)
    assert scheduler.slots[key] is slot  # the same tenant: no second slot
    assert slot.tenant.body == dict(newer)  # passes see the newest body
    assert not slot.is_set()  # same generation: no wake

    await _event("MODIFIED", {"name": "acme", "generation": 2}, memo)
    assert slot.is_set()  # a spec change wakes it (the scheduler knew it already)

    await _event("MODIFIED", {"name": "acme", "generation": 2, "deletionTimestamp": "x"}, memo)
    assert key not in scheduler.slots  # marked for deletion: its passes end
    assert key not in registry.wakers
    await _event("DELETED", {"name": "acme", "generation": 2}, memo)  # nothing left: no error
    assert key not in scheduler.slots


def _wakes(reason: str) -> float:
    return REGISTRY.get_sample_value("whatsapp_operator_wakes_total", {"reason": reason}) or 0.0


def test_wakes_are_counted_by_reason_and_only_for_a_running_loop() -> None:
    registry = Registry()
    registry.register(("shop", "acme"))
    registry.keys_by_tenant_id["t_acme"] = ("shop", "acme")
    registry.db_waiters.add(("shop", "acme"))
    before = {r: _wakes(r) for r in ("secret", "published", "database")}

    assert registry.wake(("shop", "acme"), "secret")
    assert not registry.wake(("shop", "gone"), "secret")  # no loop: not a wake
    assert registry.wake_tenants({"t_acme", "t_unknown"}, "published") == 1
    assert registry.wake_db_waiters() == 1

    assert {r: _wakes(r) - before[r] for r in before} == {
        "secret": 1,
        "published": 1,
        "database": 1,
    }


def test_the_registry_follows_which_secret_each_tenant_reads() -> None:
    registry = Registry()
    acme, shop2, other = ("shop", "acme"), ("shop", "acme-2"), ("other", "acme")
    for key in (acme, shop2, other):
        registry.register(key)
    registry.refer(acme, "token")
    registry.refer(shop2, "token")  # two tenants may share one Secret
    registry.refer(other, "token")  # same name, another namespace: another Secret
    assert registry.by_secret == {
        ("shop", "token"): ("acme", "acme-2"),
        ("other", "token"): ("acme",),
    }
    assert registry.wake_secret("shop", "token") == 2
    assert registry.wake_secret("shop", "unrelated") == 0

    registry.refer(acme, "token-v2")  # the spec now names another Secret
    registry.refer(shop2, None)  # gone
    registry.refer(shop2, None)  # twice is fine
    assert registry.by_secret == {("shop", "token-v2"): ("acme",), ("other", "token"): ("acme",)}
    assert registry.secret_of == {acme: "token-v2", other: "token"}


async def test_events_keep_the_secret_references_current() -> None:
    registry = Registry()
    memo = _memo(registry)

    async def event(type_: str | None, secret: str | None, **meta: Any) -> None:
        spec = {"tenantId": "t", **({"tokenSecretRef": {"name": secret}} if secret else {})}
        body = kopf.Body({"metadata": {"namespace": "shop", "name": "acme", **meta}, "spec": spec})
        await tenant_changed(
            type=type_, body=body, namespace="shop", name="acme", spec=body.spec, meta=body.meta,
            memo=memo, tenants_by_tenant_id={}, tenants_by_phone_number_id={},
        )  # type: ignore[arg-type]  # fmt: skip

    await event(None, "token", generation=1)
    assert registry.by_secret == {("shop", "token"): ("acme",)}
    slot = memo.scheduler.slots[("shop", "acme")]
    assert registry.wake_secret("shop", "token") == 1
    assert slot.is_set()
    await event("MODIFIED", "rotated", generation=2)
    assert registry.by_secret == {("shop", "rotated"): ("acme",)}
    await event("MODIFIED", "rotated", generation=2, deletionTimestamp="x")
    assert registry.by_secret == {}
    assert registry.secret_of == {}
