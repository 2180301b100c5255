"""Which tenant events wake a tenant's loop (`handlers.tenant_changed`): watch events and
listings (type None: start-up, or a watch re-established after an API server restart)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import kopf
import pytest

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
