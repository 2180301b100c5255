"""Which tenant events wake a tenant's loop (`handlers.tenant_changed`): watch events and
listings (type None: start-up, or a watch re-established after an API server restart)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import kopf
import pytest
from prometheus_client import REGISTRY

from whatsapp_operator.handlers import tenant_changed
from whatsapp_operator.registry import Registry

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
    if seen_generation:
        registry.spec_changed(key, seen_generation)
    waker = registry.register(key)
    meta: dict[str, Any] = {"name": "acme", "generation": 1, "annotations": annotations}
    memo = kopf.Memo(runtime=SimpleNamespace(registry=registry))
    await tenant_changed(
        type=type_, namespace="shop", name="acme", spec=kopf.Spec({"spec": {"tenantId": "t"}}),
        meta=kopf.Meta({"metadata": meta}), memo=memo,
        tenants_by_tenant_id={}, tenants_by_phone_number_id={},
    )  # type: ignore[arg-type]  # fmt: skip
    assert waker.is_set() is woken


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
