"""The operator SIGKILLed in the middle of a burst of new tenants. The next start converges:
every tenant Ready with one row each, no tenant validated again once it was recorded valid,
and no storm of Events (each tenant's transitions are posted once)."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from typing import Any

import pytest
from test_operator import ready_reasons

from conftest import Kubectl, make_world
from whatsapp_testkit.reliability import Scenario
from whatsapp_testkit.world import dump, secret, tenant, wait_for

pytestmark = pytest.mark.integration

BURST = 300
FIRST = 100  # Ready before the rest are applied


@pytest.mark.reliability
def test_an_operator_killed_mid_burst_converges_without_duplicates(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, sql: Any, scenario: Scenario
) -> None:
    scenario.describe(
        "operator SIGKILLed mid-burst",
        load=f"{BURST} tenants and Secrets applied at once",
        faults=f"SIGKILL of the operator while the last {BURST - FIRST} are being reconciled "
        f"(the first {FIRST} Ready); started again",
    )
    worlds = [make_world(sim) for _ in range(BURST)]
    objects = []
    for i, w in enumerate(worlds):
        objects += [secret(f"t{i}", {"accessToken": w.token}),
                    tenant(f"t{i}", f"kill{i}_{namespace}", w, f"t{i}")]  # fmt: skip

    def rows_written() -> int:
        return int(sql(
            "SELECT count(*) AS n FROM tenant_whatsapp_config WHERE tenant_id LIKE %s",
            f"kill%_{namespace}",
        )[0]["n"])  # fmt: skip

    # Mid-burst for sure: the first tenants are Ready (their checks recorded: none may be
    # repeated), the rest are in their passes (rows being written, statuses not yet) when the
    # kill comes. One burst of all 300 now turns Ready in a few publisher passes: a kill "once
    # a third are Ready" came after all of them.
    kubectl.apply(dump(*objects[: 2 * FIRST]), namespace)
    wait_for(
        lambda: sum(r == "Ready" for r in ready_reasons(kubectl, namespace).values()) == FIRST,
        120, 0.2, f"the first {FIRST} Ready",
    )  # fmt: skip
    kubectl.apply(dump(*objects[2 * FIRST :]), namespace)
    wait_for(lambda: rows_written() >= FIRST + 20, 120, 0.05, "the rest's first rows")
    operator.kill()
    ready_before = {n for n, r in ready_reasons(kubectl, namespace).items() if r == "Ready"}
    assert FIRST <= len(ready_before) < BURST, "the kill did not come mid-burst"
    calls_before = sim.calls()["by_token"]
    operator.start()
    restarted = time.monotonic()
    wait_for(
        lambda: set(ready_reasons(kubectl, namespace).values()) == {"Ready"}
        and len(ready_reasons(kubectl, namespace)) == BURST,
        180, 0.5, "all Ready after the restart",
    )  # fmt: skip
    converged = time.monotonic() - restarted

    def rows() -> list[dict[str, Any]]:
        return list(sql(
            "SELECT tenant_id, count(*) AS n FROM tenant_whatsapp_config WHERE tenant_id LIKE %s "
            "GROUP BY tenant_id", f"kill%_{namespace}",
        ))  # fmt: skip

    wait_for(lambda: len(rows()) == BURST, 30, 0.3, "every row written")
    duplicates = sum(r["n"] - 1 for r in rows())
    time.sleep(2)  # let the last Events land
    events = kubectl.json("get", "events", "-n", namespace)["items"]
    per_tenant = Counter(
        (e["involvedObject"]["name"], e["reason"]) for e in events
        if e["involvedObject"].get("kind") == "WhatsAppTenant"
    )  # fmt: skip
    calls_after = sim.calls()["by_token"]

    def key(i: int) -> str:
        return hashlib.sha256(worlds[i].token.encode()).hexdigest()[:12]  # the simulator's

    revalidated = [
        f"t{i}" for i in range(BURST)
        if f"t{i}" in ready_before and calls_after.get(key(i)) != calls_before.get(key(i))
    ]  # fmt: skip
    scenario.record(
        sent=BURST, delivered=len(rows()), duplicates=duplicates, converged_s=converged,
        convergence_of="all Ready after the restart",
    )  # fmt: skip
    silent = BURST - len({name for name, _ in per_tenant})
    scenario.note(
        f"{len(ready_before)} Ready at the kill; {len(revalidated)} of them validated again; "
        f"{len(events)} Events, at most {max(per_tenant.values())} per tenant and reason; "
        f"{silent} tenants without an Event (made Ready just before the kill: the status is "
        "written first, the Event after, and a killed process posts no more)"
    )
    assert duplicates == 0
    assert revalidated == []  # a recorded validation is not repeated after the restart
    assert max(per_tenant.values()) == 1, per_tenant.most_common(3)  # no Event storm
    print(
        f"\n[figure] operator SIGKILL mid-burst: {BURST} Ready {converged:.1f} s after the "
        f"restart, {duplicates} duplicate rows, {len(events)} Events"
    )
