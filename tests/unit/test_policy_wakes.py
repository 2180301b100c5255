"""Who looks again when tenancy changes (issue 19): a WhatsAppTenantPolicy changed wakes the
tenants of the namespaces it selects (before or after) and their rivals for the same ids; a
namespace relabelled wakes its tenants and their rivals; a tenant whose number Meta now
confirms (or no longer does) wakes the claimants of that number. Nothing with
--tenant-policy off, nothing for a listing (start-up)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import kopf
import pytest

from whatsapp_operator.model.claims import Claim
from whatsapp_operator.runtime.handlers import tenant_changed
from whatsapp_operator.runtime.policies import namespace_relabelled, policy_changed, tenant_policies
from whatsapp_operator.runtime.registry import Flag, Registry, TenantKey
from whatsapp_operator.runtime.services import Runtime

A1, A2 = ("team-a", "one"), ("team-a", "two")
B1 = ("team-b", "squat")  # claims A1's tenant id
C1 = ("team-c", "other")  # unrelated
LABELS = {"team-a": {"team": "a"}, "team-b": {"team": "b"}, "team-c": {"team": "c"}}
SPEC_A = {"namespaceSelector": {"matchLabels": {"team": "a"}}, "tenantIds": ["acme"]}


def world(mode: str = "enforce") -> tuple[Any, dict[TenantKey, Flag]]:
    registry = Registry()
    flags = {key: Flag() for key in (A1, A2, B1, C1)}
    for key, flag in flags.items():
        registry.register(key, flag)
    registry.claims.update({A1: ("acme", "111"), A2: ("beta", "222"), B1: ("acme", "333"),
                            C1: ("gamma", "444")})  # fmt: skip
    rt = SimpleNamespace(
        registry=registry,
        tenant_policy=mode,
        namespace_labels={ns: [labels] for ns, labels in LABELS.items()},
    )
    rt.labels_of = lambda ns: Runtime.labels_of(rt, ns)  # type: ignore[arg-type]
    return kopf.Memo(runtime=rt), flags


def woken(flags: dict[TenantKey, Flag]) -> set[TenantKey]:
    return {key for key, flag in flags.items() if flag.is_set()}


async def policy_event(memo: Any, type_: str | None, spec: dict[str, Any] | None) -> None:
    meta = {"name": "team-a", "deletionTimestamp": None}
    await policy_changed(type=type_, name="team-a", spec=spec or {}, meta=meta, memo=memo)  # type: ignore[arg-type]


async def test_a_new_policy_wakes_its_namespaces_tenants_and_their_rivals() -> None:
    memo, flags = world()
    await policy_event(memo, "ADDED", SPEC_A)
    assert woken(flags) == {A1, A2, B1}  # B1 claims acme too: its owner may change


async def test_a_changed_policy_wakes_the_namespaces_it_selected_before_too() -> None:
    memo, flags = world()
    await policy_event(memo, None, SPEC_A)  # the listing: recorded, nobody woken
    assert woken(flags) == set()
    moved = {**SPEC_A, "namespaceSelector": {"matchLabels": {"team": "c"}}}
    await policy_event(memo, "MODIFIED", moved)
    assert woken(flags) == {A1, A2, B1, C1}


async def test_an_unchanged_policy_and_a_deleted_one() -> None:
    memo, flags = world()
    await policy_event(memo, None, SPEC_A)
    await policy_event(memo, "MODIFIED", SPEC_A)  # a metadata change only
    assert woken(flags) == set()
    await policy_event(memo, "DELETED", SPEC_A)
    assert woken(flags) == {A1, A2, B1}


async def test_nothing_is_woken_with_the_policy_off() -> None:
    memo, flags = world("off")
    await policy_event(memo, "ADDED", SPEC_A)
    assert woken(flags) == set()


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param([(None, {"team": "a"}), ("MODIFIED", {"team": "x"})], {A1, A2, B1},
                     id="relabelled: its tenants and their rivals"),
        pytest.param([(None, {"team": "a"}), ("MODIFIED", {"team": "a"})], set(),
                     id="another change of the namespace: nobody"),
        pytest.param([("ADDED", {"team": "a"})], set(), id="first sight: nobody"),
    ],
)  # fmt: skip
async def test_a_relabelled_namespace_wakes_its_tenants(
    events: list[tuple[str | None, dict[str, str]]], expected: set[TenantKey]
) -> None:
    memo, flags = world()
    for type_, labels in events:
        await namespace_relabelled(type=type_, name="team-a", labels=labels, memo=memo)  # type: ignore[arg-type]
    assert woken(flags) == expected


async def test_the_index_holds_parsed_policies_only() -> None:
    meta = {"deletionTimestamp": None}
    found = await tenant_policies(name="team-a", spec=SPEC_A, meta=meta)  # type: ignore[arg-type]
    assert list(found) == ["team-a"]
    assert found["team-a"].allows("acme")
    assert await tenant_policies(name="bad", spec={"tenantIds": []}, meta=meta) == {}  # type: ignore[arg-type]
    gone = {"deletionTimestamp": "now"}
    assert await tenant_policies(name="team-a", spec=SPEC_A, meta=gone) == {}  # type: ignore[arg-type]


# --- a number verified (or not) wakes its rivals --------------------------------------------
async def tenant_event(memo: Any, type_: str, verified: bool, phone_index: Any) -> None:
    status = {"conditions": [{"type": "PhoneNumberVerified", "status": "True" if verified else
                              "False", "observedGeneration": 1}]}  # fmt: skip
    body = kopf.Body({
        "metadata": {"namespace": "team-a", "name": "one", "generation": 1},
        "spec": {"tenantId": "acme", "phoneNumberId": "111"}, "status": status,
    })  # fmt: skip
    await tenant_changed(
        type=type_, body=body, namespace="team-a", name="one", spec=body.spec, meta=body.meta,
        memo=memo, tenants_by_tenant_id={}, tenants_by_phone_number_id=phone_index,
    )  # type: ignore[arg-type]  # fmt: skip


async def test_a_number_confirmed_by_meta_wakes_its_rivals() -> None:
    registry = Registry()
    rival = ("team-b", "squat")
    flags = {key: Flag() for key in (rival, ("team-c", "other"))}
    for key, flag in flags.items():
        registry.register(key, flag)
    memo = kopf.Memo(runtime=SimpleNamespace(registry=registry), scheduler=_Scheduler())
    index = {"111": [Claim("2026-01-01T00:00:00Z", "team-b", "squat", "u-b", "squat")]}
    await tenant_event(memo, "MODIFIED", False, index)  # first sight: recorded
    assert woken(flags) == set()
    await tenant_event(memo, "MODIFIED", False, index)  # unchanged
    assert woken(flags) == set()
    await tenant_event(memo, "MODIFIED", True, index)  # Meta confirmed its number
    assert woken(flags) == {rival}


class _Scheduler:
    """Just enough of the scheduler for tenant_changed."""

    def __init__(self) -> None:
        self.slots: dict[TenantKey, Any] = {}

    def add(self, key: TenantKey, tenant: Any) -> None:
        self.slots[key] = SimpleNamespace(tenant=tenant)
