"""A tenant's pass with Meta's notices (operator/whatsapp_operator/tenant/reconcile.py with
model/health.py, and tenant/loop.py with the registry's store): the notices land in
status.health and AccountHealthy; a disabled account makes Ready False but stays published; a
restart keeps the health; a failed pass hands its notices back; the router files and wakes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import REGISTRY
from test_health_model import TENANT, account, ban, quality, template
from test_signal_pass import BODY, FakePublisher, FakeValidator, ready_status, runtime

from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.health import HealthReason
from whatsapp_operator.model.notices import Notice
from whatsapp_operator.pools.notices import NoticeRouter
from whatsapp_operator.runtime.kube import KubeUnavailable
from whatsapp_operator.runtime.registry import MAX_NOTICES, Flag, Registry
from whatsapp_operator.tenant.gather import Requests
from whatsapp_operator.tenant.loop import TenantLoop
from whatsapp_operator.tenant.reconcile import reconcile_once

KEY = ("shop", "acme")
NUMBER = "15550100"  # the display number of test_signal_pass's number, as Meta writes it
assert BODY["spec"]["tenantId"] == TENANT


async def run(status: dict[str, Any], *notices: Notice) -> tuple[Any, FakePublisher]:
    publisher = FakePublisher()
    outcome = await reconcile_once(
        runtime(FakeValidator(), publisher), BODY, status, {}, {}, Requests(notices=notices)
    )
    assert outcome.decision is not None
    return outcome.decision, publisher


def cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    found = c.find(status["conditions"], type_)
    assert found is not None, type_
    return dict(found)


async def test_a_tenant_without_notices_has_no_health() -> None:
    decision, _ = await run(await ready_status())
    assert "health" not in decision.status
    assert c.find(decision.status["conditions"], c.ACCOUNT_HEALTHY) is None


async def test_a_flagged_number_is_a_warning_beside_ready() -> None:
    decision, _ = await run(
        await ready_status(),
        quality("FLAGGED", current_limit="TIER_2K", display_phone_number=NUMBER),
    )
    healthy = cond(decision.status, c.ACCOUNT_HEALTHY)
    assert (healthy["status"], healthy["reason"]) == ("False", HealthReason.NUMBER_FLAGGED)
    assert decision.ready
    assert decision.status["health"]["messagingLimitTier"] == "TIER_2K"
    assert [(e.type, e.reason) for e in decision.events] == [("Warning", "NumberFlagged")]
    types = [x["type"] for x in decision.status["conditions"]]
    assert types.index(c.ACCOUNT_HEALTHY) == types.index(c.READY) - 1


async def test_a_disabled_account_makes_ready_false_but_stays_published() -> None:
    decision, publisher = await run(await ready_status(), ban("DISABLE"))
    healthy = cond(decision.status, c.ACCOUNT_HEALTHY)
    assert (healthy["status"], healthy["reason"]) == ("False", HealthReason.ACCOUNT_DISABLED)
    ready = cond(decision.status, c.READY)
    assert (ready["status"], ready["reason"]) == ("False", HealthReason.ACCOUNT_DISABLED)
    assert publisher.configs[0] is not None  # the workers keep the tenant: Meta refuses sends
    reasons = [(e.type, e.reason) for e in decision.events]
    assert ("Warning", "AccountDisabled") in reasons  # the notice's Event (and Ready's)

    reinstated, _ = await run(decision.status, ban("REINSTATE"))
    assert reinstated.ready
    assert cond(reinstated.status, c.ACCOUNT_HEALTHY)["reason"] == HealthReason.HEALTHY
    assert ("Normal", "AccountReinstated") in [(e.type, e.reason) for e in reinstated.events]


async def test_a_restart_keeps_the_health_and_posts_nothing() -> None:
    restricted = [{"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING"}]
    first, _ = await run(
        await ready_status(),
        template(1, "APPROVED"),
        template(2, "REJECTED"),
        account("ACCOUNT_RESTRICTION", restriction_info=restricted),
    )
    assert first.status["health"]["templates"] == {"APPROVED": 1, "REJECTED": 1}
    assert len(first.events) == 3
    again, _ = await run(first.status)  # a restarted operator: no notice pending
    assert again.status["health"] == first.status["health"]
    assert again.events == []
    assert cond(again.status, c.ACCOUNT_HEALTHY)["reason"] == HealthReason.ACCOUNT_RESTRICTED
    # the same notices redelivered: counted once, no Event
    redelivered, _ = await run(first.status, template(1, "APPROVED"), template(2, "REJECTED"))
    assert redelivered.status["health"]["templates"] == {"APPROVED": 1, "REJECTED": 1}
    assert redelivered.events == []


async def test_an_invalid_spec_keeps_the_stored_health() -> None:
    first, _ = await run(await ready_status(), quality("FLAGGED", display_phone_number=NUMBER))
    broken = BODY | {"spec": {"tenantId": "t_acme"}}
    rt = runtime(FakeValidator(), FakePublisher())
    asked = Requests(notices=(ban("DISABLE"),))
    outcome = await reconcile_once(rt, broken, first.status, {}, {}, asked)
    assert outcome.decision is not None
    assert outcome.decision.status["health"] == first.status["health"]


@dataclass
class FakeKube:
    """Reads the token like test_signal_pass's; a status write fails `fail` times."""

    fail: int = 0
    patches: list[dict[str, Any]] = field(default_factory=list)

    async def read_secret(self, namespace: str, name: str) -> Any:
        from test_signal_pass import FakeKube as Reader

        return await Reader().read_secret(namespace, name)

    async def patch_tenant_status(self, namespace: str, name: str, patch: dict[str, Any]) -> str:
        if self.fail:
            self.fail -= 1
            raise KubeUnavailable("API server down")
        self.patches.append(patch)
        return "7"


async def test_the_loop_takes_the_notices_and_a_failed_pass_hands_them_back() -> None:
    kube = FakeKube(fail=1)
    rt = runtime(FakeValidator(), FakePublisher())
    rt.kube = kube  # type: ignore[assignment]
    body = BODY | {"status": await ready_status()}
    loop = TenantLoop(rt, body, KEY)
    rt.registry.register(KEY)
    rt.registry.post_notice(KEY, quality("FLAGGED", display_phone_number=NUMBER))
    await loop.step()  # the status write fails: the notice goes back for the retry
    assert [n.kind for n in rt.registry.notices[KEY]] == ["phone_number_quality_update"]
    rt.registry.post_notice(KEY, ban("SCHEDULE_FOR_DISABLE"))
    await loop.step()
    assert KEY not in rt.registry.notices
    (patch,) = kube.patches
    assert patch["health"]["qualityEvent"] == "FLAGGED"
    assert patch["health"]["banState"] == "SCHEDULE_FOR_DISABLE"


def counted(kind: str, outcome: str) -> float:
    labels = {"kind": kind, "outcome": outcome}
    return REGISTRY.get_sample_value("whatsapp_operator_notices_total", labels) or 0.0


def test_the_router_files_the_notice_and_wakes_the_tenant() -> None:
    registry = Registry()
    router = NoticeRouter(registry)
    before = counted("account_update", "pending")
    assert router.route(ban("DISABLE")) == "pending"  # not known here yet: kept for it
    assert counted("account_update", "pending") == before + 1
    waker = registry.register(KEY)
    assert isinstance(waker, Flag)
    assert router.route(ban("REINSTATE")) == "woken"
    assert waker.is_set()
    assert [n.value["ban_info"]["waba_ban_state"] for n in registry.take_notices(KEY)] == [
        "DISABLE", "REINSTATE"
    ]  # fmt: skip


@pytest.mark.parametrize("extra", [1, 7])
def test_the_store_is_bounded_per_tenant(extra: int) -> None:
    registry = Registry()
    dropped = sum(
        registry.post_notice(KEY, template(i, "APPROVED")) for i in range(MAX_NOTICES + extra)
    )
    assert dropped == extra
    kept = registry.take_notices(KEY)
    assert len(kept) == MAX_NOTICES
    assert kept[0].value["message_template_id"] == extra  # the oldest went


def test_a_pause_keeps_the_notices_for_the_next_pass() -> None:
    registry = Registry()
    registry.register(KEY)
    registry.post_notice(KEY, quality("FLAGGED"))
    registry.unregister(KEY)  # peering paused this replica: its passes stopped
    assert len(registry.notices[KEY]) == 1


class Held:
    """A notice's hold on the broker (model.notices.Receipt), as pools/notices.Delivery."""

    def __init__(self) -> None:
        self.settled = 0
        self.void = False

    def settle(self) -> None:
        self.settled += 1


def held(notice: Notice) -> tuple[Notice, Held]:
    receipt = Held()
    return dataclasses.replace(notice, receipt=receipt), receipt


async def test_a_notice_is_settled_only_after_its_pass_wrote_the_status() -> None:
    """Its delivery is acknowledged once the status holding its effect is at the API server:
    not when filed, not when the write fails (the retry settles it)."""
    kube = FakeKube(fail=1)
    rt = runtime(FakeValidator(), FakePublisher())
    rt.kube = kube  # type: ignore[assignment]
    loop = TenantLoop(rt, BODY | {"status": await ready_status()}, KEY)
    rt.registry.register(KEY)
    flagged, receipt = held(quality("FLAGGED", display_phone_number=NUMBER))
    NoticeRouter(rt.registry).route(flagged)
    assert receipt.settled == 0  # filed and woken: not written yet
    await loop.step()  # the status write fails
    assert receipt.settled == 0
    await loop.step()
    assert receipt.settled == 1
    assert kube.patches[-1]["health"]["qualityEvent"] == "FLAGGED"


async def test_a_void_notice_is_left_for_its_redelivered_copy() -> None:
    kube = FakeKube()
    rt = runtime(FakeValidator(), FakePublisher())
    rt.kube = kube  # type: ignore[assignment]
    loop = TenantLoop(rt, BODY | {"status": await ready_status()}, KEY)
    rt.registry.register(KEY)
    flagged, receipt = held(quality("FLAGGED", display_phone_number=NUMBER))
    rt.registry.post_notice(KEY, flagged)
    receipt.void = True  # its connection closed: the broker delivers it again
    await loop.step()
    assert all("qualityEvent" not in p.get("health", {}) for p in kube.patches)
    assert receipt.settled == 0
    assert KEY not in rt.registry.notices


def test_a_notice_for_an_unknown_tenant_holds_its_delivery_for_the_grace_only() -> None:
    timers: list[tuple[float, Any]] = []
    router = NoticeRouter(Registry(), later=lambda d, f: timers.append((d, f)), grace=9.0)  # type: ignore[arg-type,return-value]
    notice, receipt = held(ban("DISABLE"))
    assert router.route(notice) == "pending"
    ((delay, fire),) = timers
    assert (delay, receipt.settled) == (9.0, 0)
    fire()
    assert receipt.settled == 1
    assert len(router.registry.notices[KEY]) == 1  # still kept for the tenant's first pass


def test_notices_dropped_from_the_store_are_settled() -> None:
    registry = Registry()
    receipts = []
    for i in range(MAX_NOTICES + 2):
        notice, receipt = held(template(i, "APPROVED"))
        receipts.append(receipt)
        registry.post_notice(KEY, notice)
    assert [r.settled for r in receipts[:3]] == [1, 1, 0]


def test_a_deleted_tenants_notices_are_settled() -> None:
    registry = Registry()
    registry.register(KEY)
    notice, receipt = held(quality("FLAGGED"))
    registry.post_notice(KEY, notice)
    assert registry.drop_notices(KEY) == 1
    assert receipt.settled == 1
    assert KEY not in registry.notices
