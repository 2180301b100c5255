"""The operator SIGKILLed in the middle of a burst of new tenants. The next start converges:
every tenant Ready with its row written once, no tenant validated again once it was recorded
valid, and no storm of Events (each tenant's transitions are posted once).

Duplicates are counted where they can happen: row writes (a trigger of the test's own counts
every INSERT and UPDATE PostgreSQL commits; rows per tenant could only ever be one, the table
has UNIQUE(tenant_id)), Events per tenant and reason at the API server, and validations at
Meta (the simulator's call log)."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from typing import Any

import pytest
from test_operator import ready_reasons

from conftest import Kubectl, make_world
from whatsapp_testkit.reliability import Scenario
from whatsapp_testkit.rowwrites import RowWrites
from whatsapp_testkit.world import dump, secret, tenant, wait_for

pytestmark = pytest.mark.integration

BURST = 300
FIRST = 100  # Ready before the rest are applied


@pytest.mark.reliability
def test_an_operator_killed_mid_burst_converges_without_duplicates(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, sql: Any, row_writes: Any,
    scenario: Scenario,
) -> None:  # fmt: skip
    scenario.describe(
        "operator SIGKILLed mid-burst",
        load=f"{BURST} tenants and Secrets applied at once",
        faults=f"SIGKILL of the operator while the last {BURST - FIRST} are being reconciled "
        f"(the first {FIRST} Ready); started again",
    )
    worlds = [make_world(sim) for _ in range(BURST)]
    tenant_ids = {f"t{i}": f"kill{i}_{namespace}" for i in range(BURST)}  # by object name
    objects = []
    for i, w in enumerate(worlds):
        objects += [secret(f"t{i}", {"accessToken": w.token}),
                    tenant(f"t{i}", tenant_ids[f"t{i}"], w, f"t{i}")]  # fmt: skip

    def rows_written() -> int:
        return int(sql(
            "SELECT count(*) AS n FROM tenant_whatsapp_config WHERE tenant_id LIKE %s",
            f"kill%_{namespace}",
        )[0]["n"])  # fmt: skip

    # Mid-burst for sure: the first tenants are Ready (their checks recorded: none may be
    # repeated), the rest are in their passes (rows being written, statuses not yet) when the
    # kill comes. One burst of all 300 now turns Ready in a few publisher passes: a kill "once
    # a third are Ready" came after all of them.
    writes: RowWrites = row_writes(f"kill%_{namespace}")
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
    written_before = writes.per_tenant()
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
    assert {r["n"] for r in rows()} == {1}  # UNIQUE(tenant_id): a sanity check, not a count
    time.sleep(2)  # let the last Events land
    written = writes.per_tenant()
    duplicate_writes = sum(n - 1 for n in written.values())
    # rows of the tenants Ready at the kill written again by the restarted operator
    rewritten = sorted(
        name for name in ready_before
        if written[tenant_ids[name]] != written_before[tenant_ids[name]]
    )  # fmt: skip
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
    duplicate_events = sum(n - 1 for n in per_tenant.values())
    duplicates = duplicate_writes + duplicate_events + len(revalidated)
    scenario.record(
        sent=BURST, delivered=len(rows()), duplicates=duplicates, converged_s=converged,
        convergence_of="all Ready after the restart",
    )  # fmt: skip
    silent = BURST - len({name for name, _ in per_tenant})
    scenario.note(
        f"duplicates = row writes beyond one per tenant ({duplicate_writes}: "
        f"{sum(written.values())} INSERTs and UPDATEs committed for {len(written)} tenants, "
        f"counted by a trigger; UPDATEs by the columns they changed: {dict(writes.updates())}), "
        f"Events beyond one per tenant and reason ({duplicate_events}) "
        f"and validations at Meta repeated after the restart ({len(revalidated)}); "
        f"{len(ready_before)} Ready at the kill, {len(rewritten)} of their rows written again; "
        f"{len(events)} Events, at most {max(per_tenant.values())} per tenant and reason; "
        f"{silent} tenants without an Event (made Ready just before the kill: the status is "
        "written first, the Event after, and a killed process posts no more)"
    )
    # A pass writes a row only when it differs from what is stored (rows.plan_write), and the
    # desired row of these tenants never changes: one INSERT each, however often they are
    # reconciled, killed or not. A row rewritten after the restart, or written twice, fails.
    assert set(written) == {r["tenant_id"] for r in rows()}
    assert rewritten == []
    assert duplicate_writes == 0, (written.most_common(3), writes.updates())
    assert revalidated == []  # a recorded validation is not repeated after the restart
    assert max(per_tenant.values()) == 1, per_tenant.most_common(3)  # no Event storm
    print(
        f"\n[figure] operator SIGKILL mid-burst: {BURST} Ready {converged:.1f} s after the "
        f"restart, {duplicate_writes} duplicate row writes, {duplicate_events} duplicate Events, "
        f"{len(events)} Events"
    )
