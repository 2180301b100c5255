"""Runs last (file order): the 1,000-tenant bulk sync, then the whole-run checks: the
operator is idle when nothing changes, and no token leaked anywhere the run wrote."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import APP_ID, ISSUED_TOKENS, METRIC_PAGES, Kubectl
from whatsapp_testkit.amqp import SEEN
from whatsapp_testkit.leaks import scan
from whatsapp_testkit.procs import reachable
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


def _database_dump(postgres: Any) -> str:
    pg_dump = os.environ.get("PG_DUMP") or str(postgres.bin_dir / "pg_dump")
    return subprocess.run(
        [pg_dump, "--data-only", postgres.dsn], capture_output=True, text=True, check=True
    ).stdout


def test_no_token_anywhere(
    kubectl: Kubectl, operator: Any, graph_sim: Any, artifacts: Path, postgres: Any
) -> None:
    """Every token handed out above, raw, base64 or its first 24 characters, is absent from
    everything the run produced: every log (operators, workers, simulator, RabbitMQ), Events,
    tenants (status, annotations, managed fields), the operator's and the workers' metrics
    pages, every result event and dead letter the tests read, and a dump of the operator's
    database."""
    assert ISSUED_TOKENS, "the scan needs the tokens the tests used"
    logs = sorted(p for p in artifacts.rglob("*") if p.is_file() and ".log" in p.name)
    status, operator_metrics = reachable(f"http://127.0.0.1:{operator.metrics_port}/metrics")
    assert status == 200
    haystacks = {
        **{f"log {p.relative_to(artifacts)}": p.read_text(errors="replace") for p in logs},
        "simulator log": graph_sim.log_path.read_text(errors="replace"),
        "events": kubectl("get", "events", "-A", "-o", "json").stdout,
        "tenants (status, annotations, managed fields)": kubectl(
            "get", "wat", "-A", "-o", "json", "--show-managed-fields"
        ).stdout,
        "signups": kubectl("get", "whatsappsignups", "-A", "-o", "json").stdout,
        "operator metrics": operator_metrics,
        "worker metrics": "\n".join(METRIC_PAGES),
        "result events and dead letters": "\n".join(SEEN),
        "database dump": _database_dump(postgres),
    }
    assert len(haystacks[f"log {operator.log_path.relative_to(artifacts)}"]) > 1000
    assert METRIC_PAGES, "no worker metrics page was read"
    assert len(SEEN) > 1000, "too few result events were read for the scan to mean much"
    assert "tenant_whatsapp_config" in haystacks["database dump"]
    print(
        f"\n[figure] leak scan: {len(ISSUED_TOKENS)} tokens x 3 forms over {len(haystacks)} "
        f"sources ({len(logs)} logs, {len(SEEN)} events and dead letters, "
        f"{sum(len(t) for t in haystacks.values()) / 1e6:.1f} MB)"
    )
    assert scan(ISSUED_TOKENS, haystacks) == []  # (source, form) of each leak
