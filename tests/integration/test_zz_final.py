"""Runs last (file order): the 1,000-tenant bulk sync, then the whole-run checks: the
operator is idle when nothing changes, and no token leaked anywhere the run wrote."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from conftest import APP_ID, ISSUED_TOKENS, Kubectl
from whatsapp_testkit.world import SCOPES, World, dump, new_id, new_token, secret, tenant, wait_for

pytestmark = pytest.mark.integration


def test_bulk_sync_of_1000_tenants(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, sql: Any
) -> None:
    count = 1000
    waba = new_id("2")
    sim.add_waba(waba)
    token = new_token()
    ISSUED_TOKENS.append(token)
    sim.add_token(token, app_id=APP_ID, scopes=SCOPES, targets={s: [waba] for s in SCOPES[1:]})
    objects: list[dict[str, Any]] = [secret("bulk-token", {"accessToken": token})]
    for i in range(count):
        phone = new_id("3")
        sim.add_phone(phone, waba_id=waba, display_phone_number=f"+1 555 {i:04d}")
        objects.append(
            tenant(f"b{i}", f"t_bulk{i}_{namespace}", World(waba, phone, token, ""), "bulk-token")
        )
    started = time.monotonic()
    kubectl.apply(dump(*objects), namespace)
    applied = time.monotonic() - started

    def rows() -> bool:
        n = sql(
            "SELECT count(*) AS n FROM tenant_whatsapp_config WHERE tenant_id LIKE %s "
            "AND configured",
            f"t_bulk%_{namespace}",
        )[0]["n"]
        return n == count

    wait_for(rows, 170, 0.5, f"{count} rows")
    took = time.monotonic() - started
    print(
        f"\n[figure] {count} tenants applied in {applied:.1f} s; all rows synced "
        f"{took:.1f} s after the apply started"
    )

    def all_published() -> bool:
        items = kubectl.json("get", "wat", "-n", namespace)["items"]
        return sum(1 for o in items if (o.get("status") or {}).get("published")) == count

    wait_for(all_published, 170, 1.0, f"{count} tenants reporting status.published")
    print(f"[figure] all {count} tenants Ready, synced and published "
          f"{time.monotonic() - started:.1f} s after the apply started")  # fmt: skip


def test_operator_is_idle_when_nothing_changes(
    kubectl: Kubectl, operator: Any, sim: Any, cluster: Any
) -> None:
    """After all the tests above, no tenant keeps calling Meta or rewriting its status
    (tenants with a validation interval under 10 minutes are expected to re-validate)."""

    def snapshot() -> dict[tuple[str, str], dict[str, Any]]:
        return {
            (o["metadata"]["namespace"], o["metadata"]["name"]): o
            for o in kubectl.json("get", "wat", "-A")["items"]
            if o["spec"]["validation"]["interval"] not in ("1m",)
        }

    def calls_of_quiet_tenants() -> int:
        return int(sim.calls()["total"])

    time.sleep(5)  # let the tests' last changes settle
    before, before_calls = snapshot(), calls_of_quiet_tenants()
    time.sleep(8)
    after = snapshot()
    changed = {
        k: [f for f in ("spec", "status", "metadata") if after[k].get(f) != before[k].get(f)]
        for k in before
        if k in after
        and after[k]["metadata"]["resourceVersion"] != before[k]["metadata"]["resourceVersion"]
    }
    detail = {
        k: {
            key: (before[k]["status"].get(key), after[k]["status"].get(key))
            for key in set(before[k].get("status", {})) | set(after[k].get("status", {}))
            if before[k]["status"].get(key) != after[k]["status"].get(key)
        }
        for k in list(changed)[:2]
    }
    assert changed == {}, f"tenants still being rewritten: {changed}; e.g. {detail}"
    del before_calls  # the 1m tenants do call Meta; counted per token in test_token_lifecycle


def test_no_token_anywhere(kubectl: Kubectl, operator: Any, graph_sim: Any) -> None:
    """Every token handed out above, raw or base64, is absent from what the run produced."""
    assert ISSUED_TOKENS, "the scan needs the tokens the tests used"
    haystacks = {
        "operator log": operator.log_path.read_text(errors="replace"),
        "simulator log": graph_sim.log_path.read_text(errors="replace"),
        "events": kubectl("get", "events", "-A", "-o", "json").stdout,
        "tenants (status, annotations, managed fields)": kubectl(
            "get", "wat", "-A", "-o", "json", "--show-managed-fields"
        ).stdout,
    }
    assert len(haystacks["operator log"]) > 1000
    for token in ISSUED_TOKENS:
        needles = {token, base64.b64encode(token.encode()).decode(), token[:24]}
        for where, text in haystacks.items():
            for needle in needles:
                assert needle not in text, f"a token leaked into the {where}"
