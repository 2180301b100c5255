"""A tenant's pass under --tenant-policy enforce (issue 19): a tenant id its namespace may not
hold gets Ready=False/TenantIdNotAllowed with no Graph call, no row and no publication; a
disallowed claimant blocks nobody; a phone number goes to the claimant Meta confirmed; the row
stage gets the policy's approval. Against the fakes of test_signal_pass."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from test_signal_pass import BODY, PHONE, T0, FakePublisher, FakeValidator, runtime

from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.claims import Claim
from whatsapp_operator.model.conditions import Reason
from whatsapp_operator.model.tenant_policy import parse_policy
from whatsapp_operator.postgres.outcome import SyncResult
from whatsapp_operator.runtime.services import Runtime
from whatsapp_operator.tenant.reconcile import reconcile_once

OLD = "2026-01-01T00:00:00Z"  # older than BODY (no creationTimestamp: "")
ME = {**BODY, "metadata": {**BODY["metadata"], "creationTimestamp": "2026-06-01T00:00:00Z"}}


def policy(name: str, labels: dict[str, str], ids: list[str], adopt: bool = False) -> Any:
    spec = {"namespaceSelector": {"matchLabels": labels}, "tenantIds": ids}
    return parse_policy(name, {**spec, "adoptExistingRows": adopt})


SHOP = {"team": "shop"}
SHOP_ONLY = policy("shop", SHOP, ["t_*"])
SHOP_MOVE = policy("shop-move", SHOP, ["t_acme"], adopt=True)


@dataclass
class FakeRows:
    """RowSync as the row stage calls it: records what it was asked."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    cipher: Any = field(default_factory=lambda: type("C", (), {"mode": "encrypted"})())

    async def sync(self, desired: Any, **access: bool) -> SyncResult:
        self.calls.append({"namespace": desired.k8s_namespace, **access})
        return SyncResult.synced(7, wrote=True, at=T0)


def world(
    policies: list[Any],
    *,
    mode: str = "enforce",
    labels: dict[str, dict[str, str]] | None = None,
) -> tuple[Runtime, FakeValidator, FakePublisher, FakeRows]:
    validator, publisher, rows = FakeValidator(), FakePublisher(), FakeRows()
    rt = replace(
        runtime(validator, publisher),
        rows=rows,  # type: ignore[arg-type]
        tenant_policy=mode,  # type: ignore[arg-type]
        tenant_policies={p.name: [p] for p in policies},
        namespace_labels={
            ns: [found] for ns, found in (labels or {"shop": SHOP, "squat": {}}).items()
        },
    )
    return rt, validator, publisher, rows


def ready(decision: Any) -> tuple[str, str]:
    found = c.find(decision.status["conditions"], c.READY)
    assert found is not None
    return found["status"], found["reason"]


@pytest.mark.parametrize(
    ("policies", "labels"),
    [
        pytest.param([], None, id="no policy at all"),
        pytest.param([policy("other", {"team": "other"}, ["*"])], None, id="policy elsewhere"),
        pytest.param([policy("shop", SHOP, ["u_*"])], None, id="pattern does not match"),
        pytest.param([SHOP_ONLY], {"squat": {}}, id="namespace labels unknown"),
    ],
)
async def test_a_tenant_id_not_allowed_does_nothing(
    policies: list[Any], labels: dict[str, dict[str, str]] | None
) -> None:
    rt, validator, publisher, rows = world(policies, labels=labels)
    outcome = await reconcile_once(rt, ME, {}, {}, {})
    assert outcome.decision is not None
    assert ready(outcome.decision) == ("False", Reason.TENANT_ID_NOT_ALLOWED)
    message = c.find(outcome.decision.status["conditions"], c.READY)["message"]  # type: ignore[index]
    assert "namespace 'shop'" in message
    assert "WhatsAppTenantPolicy" in message
    assert validator.calls == 0  # no Graph call
    assert rows.calls == []  # no row write
    assert publisher.configs == []  # nothing published for the workers
    assert "t_acme" not in rt.registry.keys_by_tenant_id  # no claim recorded
    synced = c.find(outcome.decision.status["conditions"], c.SYNCED)
    assert synced is not None
    assert synced["status"] == "Unknown"
    assert "not allowed" in synced["message"]
    assert ("Warning", Reason.TENANT_ID_NOT_ALLOWED) in [
        (e.type, e.reason) for e in outcome.decision.events
    ]


async def test_allowed_by_a_policy_the_tenant_works() -> None:
    rt, validator, publisher, rows = world([SHOP_ONLY])
    outcome = await reconcile_once(rt, ME, {}, {}, {})
    assert outcome.decision is not None
    assert ready(outcome.decision) == ("True", Reason.READY)
    assert validator.calls == 1
    assert len(publisher.configs) == 1
    assert rows.calls == [{"namespace": "shop", "adopt": False, "approved": False, "bound": True}]


@pytest.mark.parametrize(
    ("mode", "policies", "approved", "bound"),
    [
        pytest.param("enforce", [SHOP_ONLY, SHOP_MOVE], True, True, id="approved by a policy"),
        pytest.param("enforce", [SHOP_ONLY], False, True, id="not approved"),
        pytest.param("off", [], True, False, id="off: no approval needed, rows not bound"),
    ],
)
async def test_the_row_stage_gets_the_policys_approval(
    mode: str, policies: list[Any], approved: bool, bound: bool
) -> None:
    rt, _, _, rows = world(policies, mode=mode)
    body = {**ME, "spec": {**ME["spec"], "adoptExistingRow": True}}
    await reconcile_once(rt, body, {}, {}, {})
    assert rows.calls == [
        {"namespace": "shop", "adopt": True, "approved": approved, "bound": bound}
    ]


async def test_an_older_claimant_of_a_namespace_not_allowed_the_id_blocks_nobody() -> None:
    rt, _, _, rows = world([SHOP_ONLY])
    squatter = Claim(OLD, "squat", "acme", "u-squat", "t_acme")
    by_id = {"t_acme": [squatter]}
    by_phone = {PHONE: [squatter]}
    outcome = await reconcile_once(rt, ME, {}, by_id, by_phone)
    assert outcome.decision is not None
    assert ready(outcome.decision) == ("True", Reason.READY)
    assert len(rows.calls) == 1
    off, _, _, _ = world([], mode="off")  # as before policies: the older one owns the id
    before = await reconcile_once(off, ME, {}, by_id, by_phone)
    assert before.decision is not None
    assert ready(before.decision) == ("False", Reason.DUPLICATE_TENANT_ID)


async def test_an_older_unverified_claimant_of_the_number_does_not_stop_the_check() -> None:
    everyone = policy("all", {}, ["*"])
    rt, validator, publisher, rows = world([everyone])
    squatter = Claim(OLD, "squat", "b", "u-squat", "t_other", verified=False)
    outcome = await reconcile_once(rt, ME, {}, {}, {PHONE: [squatter]})
    assert outcome.decision is not None
    assert ready(outcome.decision) == ("False", Reason.DUPLICATE_PHONE_NUMBER_ID)
    assert validator.calls == 1  # checked at Meta, so that it can become verified
    verified = c.find(outcome.decision.status["conditions"], c.PHONE_NUMBER_VERIFIED)
    assert verified is not None
    assert verified["status"] == "True"
    assert rows.calls == []  # no row while it does not hold the number
    assert publisher.configs == []
    # its next pass, verified for its spec: the number is its own
    status = outcome.decision.status
    again = await reconcile_once(rt, ME, status, {}, {PHONE: [squatter]})
    assert again.decision is not None
    assert ready(again.decision) == ("True", Reason.READY)
    assert len(rows.calls) == 1


async def test_an_older_verified_owner_keeps_the_number_unchecked() -> None:
    everyone = policy("all", {}, ["*"])
    rt, validator, _, rows = world([everyone])
    owner = Claim(OLD, "squat", "b", "u-owner", "t_other", verified=True)
    outcome = await reconcile_once(rt, ME, {}, {}, {PHONE: [owner]})
    assert outcome.decision is not None
    assert ready(outcome.decision) == ("False", Reason.DUPLICATE_PHONE_NUMBER_ID)
    assert validator.calls == 0
    assert rows.calls == []
