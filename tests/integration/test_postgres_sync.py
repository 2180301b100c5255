"""The tenant_whatsapp_config table kept true to the cluster, end to end.

Real kube-apiserver, real PostgreSQL, the simulator, and the operator process with a
database URL and an encryption key folder (see the `operator` fixture).
"""

from __future__ import annotations

import base64
import glob
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from test_metrics_doc import samples
from test_operator import apply_tenant, cond, events, get, wait_reason

from conftest import APP_ID, ISSUED_TOKENS, Kubectl, make_world
from whatsapp_operator.model.recheck import backoff
from whatsapp_testkit.procs import reachable
from whatsapp_testkit.reliability import Scenario
from whatsapp_testkit.world import SCOPES, dump, new_token, secret, tenant, wait_for

pytestmark = pytest.mark.integration


def row_of(sql: Any, tenant_id: str) -> dict[str, Any] | None:
    found = sql(
        "SELECT *, xmin::text AS xmin FROM tenant_whatsapp_config WHERE tenant_id = %s", tenant_id
    )
    return found[0] if found else None


def synced(kubectl: Kubectl, ns: str, name: str, timeout: float = 20) -> dict[str, Any]:
    return wait_reason(kubectl, ns, name, "Synced", "Synced", timeout)


def credentials(
    postgres: Any, keys_dir: Path, tenant_id: str, audit_key: Path
) -> subprocess.CompletedProcess[str]:
    """The legacy helper, as a reader runs it: the token keys, and the audit key that records
    its read (postgres/audit_key.py)."""
    env = {
        **os.environ,
        "WHATSAPP_OPERATOR_DATABASE_URL": postgres.dsn,
        "WHATSAPP_OPERATOR_AUDIT_KEY_FILE": str(audit_key),
    }
    return subprocess.run(
        [
            str(Path(os.sys.executable).parent / "whatsapp-credentials"),
            "get",
            "--tenant-id",
            tenant_id,
            "--keys-dir",
            str(keys_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


def test_row_created_encrypted_and_readable_by_the_legacy_helper(
    kubectl: Kubectl,
    namespace: str,
    operator: Any,
    sim: Any,
    sql: Any,
    postgres: Any,
    keys_dir: Path,
    audit_key_file: Path,
) -> None:
    w = make_world(sim, "+44 20 0000")
    tenant_id = f"t_row_{namespace}"
    apply_tenant(kubectl, namespace, w, tenant_id=tenant_id)
    obj = synced(kubectl, namespace, "acme")
    assert cond(obj, "Ready")["status"] == "True"
    row = row_of(sql, tenant_id)
    assert row is not None
    assert obj["status"]["database"]["rowId"] == row["id"]
    assert obj["status"]["database"]["tokenStorage"] == "encrypted"
    assert (row["waba_id"], row["phone_number_id"]) == (w.waba_id, w.phone_number_id)
    assert (row["display_phone_number"], row["quality_rating"]) == ("+44 20 0000", "GREEN")
    assert row["is_active"] is True
    assert row["configured"] is True
    assert row["managed_by"] == "whatsapp-operator"
    assert row["access_token"].startswith("enc:v1:")
    assert w.token not in row["access_token"]
    proc = credentials(postgres, keys_dir, tenant_id, audit_key_file)
    assert proc.returncode == 0, proc.stderr
    assert w.token in proc.stdout


def test_no_plaintext_token_in_a_database_dump(operator: Any, postgres: Any, sql: Any) -> None:
    pg_dump = (
        os.environ.get("PG_DUMP") or sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"))[-1]
    )
    assert sql("SELECT count(*) AS n FROM tenant_whatsapp_config")[0]["n"] > 0
    dump_text = subprocess.run(
        [pg_dump, "--data-only", postgres.dsn], capture_output=True, text=True, check=True
    ).stdout
    assert "tenant_whatsapp_config" in dump_text
    for token in ISSUED_TOKENS:
        assert token not in dump_text
        assert base64.b64encode(token.encode()).decode() not in dump_text


def test_update_on_change_and_no_write_when_nothing_changed(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, sql: Any
) -> None:
    w = make_world(sim)
    tenant_id = f"t_upd_{namespace}"
    apply_tenant(kubectl, namespace, w, tenant_id=tenant_id)
    synced(kubectl, namespace, "acme")
    before = row_of(sql, tenant_id)
    assert before is not None
    # a reconcile with a Graph check that changes nothing: the row is not written
    kubectl("annotate", "wat", "acme", "-n", namespace, "whatsapp.operator.dev/revalidate=1")
    wait_for(
        lambda: (
            "whatsapp.operator.dev/revalidate"
            not in (get(kubectl, namespace, "acme")["metadata"].get("annotations") or {})
        ),
        10,
        0.2,
        "revalidation handled",
    )
    time.sleep(1)
    after = row_of(sql, tenant_id)
    assert after is not None
    assert (after["xmin"], after["updated_at"]) == (before["xmin"], before["updated_at"])
    # a spec change is written once
    kubectl(
        "patch", "wat", "acme", "-n", namespace, "--type=merge", "-p", '{"spec": {"active": false}}'
    )
    row = wait_for(lambda: (r := row_of(sql, tenant_id)) and r["is_active"] is False and r, 10)
    assert row["updated_at"] > before["updated_at"]
    sim.patch_phone(w.phone_number_id, quality_rating="YELLOW")  # Meta's facts follow too
    kubectl("annotate", "wat", "acme", "-n", namespace, "whatsapp.operator.dev/revalidate=2")
    wait_for(lambda: (r := row_of(sql, tenant_id)) and r["quality_rating"] == "YELLOW", 10)


def test_token_replaced_in_the_secret_reaches_the_row(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, postgres: Any, keys_dir: Path,
    audit_key_file: Path,
) -> None:  # fmt: skip
    w = make_world(sim)
    tenant_id = f"t_rot_{namespace}"
    apply_tenant(kubectl, namespace, w, tenant_id=tenant_id)
    synced(kubectl, namespace, "acme")
    new = new_token()
    ISSUED_TOKENS.append(new)
    sim.add_token(new, app_id=APP_ID, scopes=SCOPES, targets={s: [w.waba_id] for s in SCOPES[1:]})
    started = time.monotonic()
    kubectl.apply(dump(secret("acme-token", {"accessToken": new})), namespace)
    wait_for(
        lambda: new in credentials(postgres, keys_dir, tenant_id, audit_key_file).stdout, 10, 0.2
    )
    print(f"\n[figure] token replaced -> row updated in {time.monotonic() - started:.2f} s")


@pytest.mark.parametrize(
    ("policy", "expect"),
    [("Deactivate", "inactive"), ("Delete", "gone"), ("Retain", "kept")],
)
def test_deletion_policy(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, sql: Any, policy: str, expect: str
) -> None:
    w = make_world(sim)
    tenant_id = f"t_del_{policy.lower()}_{namespace}"
    apply_tenant(kubectl, namespace, w, tenant_id=tenant_id, deletionPolicy=policy)
    synced(kubectl, namespace, "acme")
    kubectl("delete", "wat", "acme", "-n", namespace, "--timeout=20s")
    row = row_of(sql, tenant_id)
    if expect == "gone":
        assert row is None
        return
    assert row is not None
    if expect == "inactive":
        assert row["is_active"] is False
        assert row["access_token"] == ""
        assert row["token_fingerprint"] is None
    else:
        assert row["is_active"] is True
        assert row["access_token"].startswith("enc:v1:")


def test_deletion_while_postgres_is_down_waits_and_completes(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, sql: Any, postgres: Any
) -> None:
    w = make_world(sim)
    tenant_id = f"t_deldown_{namespace}"
    apply_tenant(kubectl, namespace, w, tenant_id=tenant_id, deletionPolicy="Delete")
    synced(kubectl, namespace, "acme")
    postgres.stop()
    try:
        kubectl("delete", "wat", "acme", "-n", namespace, "--wait=false")
        time.sleep(4)
        still = get(kubectl, namespace, "acme")  # the finalizer holds it
        assert still["metadata"].get("deletionTimestamp")
    finally:
        postgres.start()
    wait_for(
        lambda: kubectl("get", "wat", "acme", "-n", namespace, check=False).returncode != 0,
        30,
        0.5,
        "tenant gone after PostgreSQL returned",
    )
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        count = conn.execute(
            "SELECT count(*) FROM tenant_whatsapp_config WHERE tenant_id = %s", (tenant_id,)
        ).fetchone()
    assert count == (0,)


def test_drift_is_repaired_with_an_event_naming_the_columns(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, sql: Any
) -> None:
    w = make_world(sim)
    tenant_id = f"t_drift_{namespace}"
    apply_tenant(kubectl, namespace, w, tenant_id=tenant_id)
    synced(kubectl, namespace, "acme")
    sql(
        "UPDATE tenant_whatsapp_config SET quality_rating = 'RED', waba_id = '1' "
        "WHERE tenant_id = %s",
        tenant_id,
    )
    row = wait_for(lambda: (r := row_of(sql, tenant_id)) and r["waba_id"] == w.waba_id and r, 15)
    assert row["quality_rating"] == "GREEN"
    drift = wait_for(
        lambda: [e for e in events(kubectl, namespace, "acme") if e["reason"] == "DriftRepaired"],
        10,
    )
    assert drift[0]["type"] == "Warning"
    assert "waba_id" in drift[0]["message"]
    assert "quality_rating" in drift[0]["message"]
    # a row deleted behind the operator's back comes back too
    sql("DELETE FROM tenant_whatsapp_config WHERE tenant_id = %s", tenant_id)
    wait_for(lambda: row_of(sql, tenant_id), 15, 0.3, "row re-created")


def test_row_not_managed_until_adopted(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, sql: Any
) -> None:
    w = make_world(sim)
    tenant_id = f"t_legacy_{namespace}"
    sql(
        "INSERT INTO tenant_whatsapp_config (tenant_id, waba_id, phone_number_id, access_token) "
        "VALUES (%s, %s, %s, %s)",
        tenant_id,
        w.waba_id,
        w.phone_number_id,
        "legacy-token",
    )
    apply_tenant(kubectl, namespace, w, tenant_id=tenant_id)
    obj = wait_reason(kubectl, namespace, "acme", "RowNotManaged", "Synced")
    assert cond(obj, "Ready")["reason"] == "RowNotManaged"
    assert "adoptExistingRow" in cond(obj, "Synced")["message"]
    row = row_of(sql, tenant_id)
    assert row is not None
    assert row["access_token"] == "legacy-token"
    kubectl(
        "patch",
        "wat",
        "acme",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec": {"adoptExistingRow": true}}',
    )
    synced(kubectl, namespace, "acme")
    row = row_of(sql, tenant_id)
    assert row is not None
    assert row["managed_by"] == "whatsapp-operator"
    assert row["access_token"].startswith("enc:v1:")
    seen = events(kubectl, namespace, "acme")
    assert any(e["reason"] == "RowAdopted" for e in seen)
    # the legacy row's plaintext token is never taken for the tenant's (issue 19): replaced by
    # the tenant's own, encrypted, and said so in an Event that names no value
    (plain,) = [e for e in seen if e["reason"] == "PlaintextTokenReplaced"]
    assert plain["type"] == "Warning"
    assert "access_token" in plain["message"]
    assert "legacy-token" not in plain["message"]


def test_a_new_key_re_encrypts_only_once_named_primary(
    kubectl: Kubectl,
    namespace: str,
    operator: Any,
    sim: Any,
    sql: Any,
    keys_dir: Path,
    postgres: Any,
    audit_key_file: Path,
    tmp_path: Path,
) -> None:
    """Issue 19: a key added to the Secret became primary by its greater id, and every row was
    re-encrypted under it within 30 s, locking out legacy readers not yet given the key. Now
    an added key only decrypts; naming it in the `primary` entry is the switch."""
    w = make_world(sim)
    tenant_id = f"t_keys_{namespace}"
    apply_tenant(kubectl, namespace, w, tenant_id=tenant_id)
    synced(kubectl, namespace, "acme")
    before = row_of(sql, tenant_id)
    assert before is not None
    old_kid, new_kid = before["access_token"].split(":")[2], "2026-11"
    assert new_kid > old_kid  # the greatest id: what used to take over by itself
    legacy_keys = tmp_path / "legacy-keys"  # a reader that has only the old key
    legacy_keys.mkdir()
    (legacy_keys / old_kid).write_bytes((keys_dir / old_kid).read_bytes())
    (keys_dir / new_kid).write_bytes(os.urandom(32))
    loaded = f"token encryption keys reloaded ({old_kid}, {new_kid}); primary key {old_kid}"
    wait_for(
        lambda: loaded in operator.log_path.read_text(errors="replace"),
        30,
        0.5,
        "the rekey pass reading the new key, as a decryption key",
    )
    time.sleep(5)  # and the passes after it (every 2 s: the operator fixture's interval)
    after = row_of(sql, tenant_id)
    assert after is not None
    assert after["access_token"] == before["access_token"]  # left as it was
    assert (
        sql(
            "SELECT count(*) AS n FROM tenant_whatsapp_config WHERE access_token LIKE %s",
            f"enc:v1:{new_kid}:%",
        )[0]["n"]
        == 0
    )
    assert w.token in credentials(postgres, legacy_keys, tenant_id, audit_key_file).stdout
    # the switch: the new key named primary (later tests, and restarts, write with it)
    (keys_dir / "primary").write_text(new_kid + "\n")
    wait_for(
        lambda: (
            sql(
                "SELECT count(*) AS n FROM tenant_whatsapp_config "
                "WHERE access_token LIKE 'enc:v1:%%' AND access_token NOT LIKE %s",
                f"enc:v1:{new_kid}:%",
            )[0]["n"]
            == 0
        ),
        30,
        0.5,
        "every row re-encrypted under the new primary key",
    )
    proc = credentials(postgres, keys_dir, tenant_id, audit_key_file)  # both keys: readable
    assert w.token in proc.stdout


BURST = 1000  # tenants applied at once
OUTAGE = 30.0  # seconds PostgreSQL stays down, from the first rows of the burst


def backoff_alone(outage: float, tenants: int = BURST, trials: int = 10) -> float:
    """When the last of `tenants` would retry after PostgreSQL's return if nothing woke them:
    each failing from its first pass (within 10 s of the stop) on, with the operator's own
    backoff (model/recheck.py). The smallest over `trials` seeded draws: a floor, not a mean."""
    latest = []
    for seed in range(trials):
        rng = random.Random(seed)
        last = 0.0
        for _ in range(tenants):
            at, attempt = rng.uniform(0, 10), 0
            while at <= outage:
                attempt += 1
                at += backoff(attempt, rng=rng)
            last = max(last, at - outage)
        latest.append(last)
    return min(latest)


def database_wakes(operator: Any) -> float:
    """whatsapp_operator_wakes_total{reason="database"} from the operator's metrics page."""
    _, body = reachable(f"http://127.0.0.1:{operator.metrics_port}/metrics")
    name = 'whatsapp_operator_wakes_total{reason="database"}'
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(name))


@pytest.mark.reliability
@pytest.mark.timeout(600)  # the burst, the outage, and up to 300 s for the rows
def test_postgres_outage_during_a_1000_tenant_burst(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, sql: Any, postgres: Any,
    row_writes: Any, scenario: Scenario,
) -> None:  # fmt: skip
    """Nothing lost: every tenant's row is written, encrypted and configured, exactly once,
    every waiting tenant woken by PostgreSQL's return; while it is down, tenants say so
    (Synced=False, DatabaseUnavailable). "Exactly once" is counted in writes PostgreSQL
    committed (a trigger of the test's own), not in rows: the table's UNIQUE(tenant_id) makes
    one row per tenant the only possible count."""
    scenario.describe(
        "PostgreSQL stopped during a reconcile",
        load=f"{BURST} tenants and Secrets applied at once",
        faults=f"PostgreSQL stopped {OUTAGE:.0f} s, from the burst's first rows",
    )
    worlds = [make_world(sim) for _ in range(BURST)]
    objects: list[dict[str, Any]] = []
    for i, w in enumerate(worlds):
        objects.append(secret(f"t{i}-token", {"accessToken": w.token}))
        objects.append(tenant(f"t{i}", f"t_burst{i}_{namespace}", w, f"t{i}-token"))
    # The outage must begin mid-burst: once the first rows are written while most tenants are
    # still being created (a fixed sleep stopped overlapping once 200 tenants took < 1.5 s).
    writes = row_writes(f"t_burst%_{namespace}")
    wakes_before = database_wakes(operator)  # the metric counts since the operator started
    applying = threading.Thread(target=kubectl.apply, args=(dump(*objects), namespace))
    applying.start()

    def rows_written() -> int:
        return int(
            sql(
                "SELECT count(*) AS n FROM tenant_whatsapp_config WHERE tenant_id LIKE %s",
                f"t_burst%_{namespace}",
            )[0]["n"]
        )

    wait_for(lambda: rows_written() >= 5, 60, 0.05, "the burst's first rows")
    before = rows_written()
    stopped = time.monotonic()
    postgres.stop()
    applying.join()
    scenario.note(f"PostgreSQL stopped with {before} of {BURST} rows written")
    try:
        reported = wait_for(
            lambda: [
                o["metadata"]["name"]
                for o in kubectl.json("get", "wat", "-n", namespace)["items"]
                if cond(o, "Synced").get("reason") == "DatabaseUnavailable"
            ],
            OUTAGE,
            0.5,
            "tenants reporting DatabaseUnavailable",
        )
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))
        reporting = sum(
            1 for o in kubectl.json("get", "wat", "-n", namespace)["items"]
            if cond(o, "Synced").get("reason") == "DatabaseUnavailable"
        )  # fmt: skip
    finally:
        postgres.start()
    returned = time.monotonic()
    # The sanity bound, on the wake rather than on the rows: one prober finds PostgreSQL back
    # and wakes every waiting tenant at once, seconds after the return whatever the load,
    # while tenants left to their backoff are never woken. How long the rows then take is the
    # machine's throughput (3.5 s quiet, 7.9-13 s on 2 shared cores, 26.8 s on a busy CI run,
    # 81.7 s with six test runs sharing 2 cores): a figure to print, not a bound.
    floor = backoff_alone(OUTAGE)  # about 30 s after a 30-s outage
    assert reporting > 0, "no tenant was waiting for PostgreSQL: the outage missed the burst"
    wait_for(
        lambda: database_wakes(operator) - wakes_before >= reporting,
        floor,
        0.2,
        f"the {reporting} waiting tenants woken before backoff alone would bring them back",
    )
    woken_after = time.monotonic() - returned
    scenario.note(
        f"{len(reported)}+ tenants reported DatabaseUnavailable first; {reporting} at the end "
        f"of the {OUTAGE:.0f}-s outage"
    )

    def all_rows() -> int:
        return int(
            sql(
                "SELECT count(*) AS n FROM tenant_whatsapp_config WHERE tenant_id LIKE %s "
                "AND access_token LIKE 'enc:v1:%%' AND configured",
                f"t_burst%_{namespace}",
            )[0]["n"]
        )

    try:  # the rows must come (a hang fails); how fast is a figure, not a bound (above)
        wait_for(lambda: all_rows() == BURST, 300, 0.3, f"all {BURST} rows written")
    finally:
        converged = time.monotonic() - returned
        scenario.record(
            sent=BURST, delivered=all_rows(), converged_s=converged,
            convergence_of="all rows correct after PostgreSQL returned",
        )  # fmt: skip
    print(
        f"\n[figure] {BURST}-tenant burst: all rows correct {converged:.1f} s after PostgreSQL "
        f"returned ({OUTAGE:.0f}-s outage from {before} rows written); the {reporting} waiting "
        f"tenants woken within {woken_after:.1f} s (backoff alone: the last after {floor:.1f} s)"
    )
    # Pass/fail rests on the wakes, not on the clock: every tenant still waiting for
    # PostgreSQL at the end of the outage was woken by its return (the operator's own wake
    # metric), none left to its backoff.
    woken = database_wakes(operator) - wakes_before
    scenario.note(f"{woken:.0f} tenants woken by PostgreSQL's return; {reporting} were waiting")
    assert woken >= reporting, f"only {woken:.0f} of {reporting} waiting tenants woken"
    # A write that PostgreSQL's stop rolled back is not counted (nor made): each tenant's row
    # is inserted once, and never rewritten, since its desired row does not change
    # (rows.plan_write writes only what differs). A retry that wrote again, or a pass after
    # the return that rewrote a row already right, fails here.
    written = writes.per_tenant()
    duplicates = sum(n - 1 for n in written.values())
    scenario.record(duplicates=duplicates)
    scenario.note(
        f"duplicates = row writes beyond one per tenant: {sum(written.values())} INSERTs and "
        f"UPDATEs committed for {len(written)} tenants (counted by a trigger; rows per tenant "
        "cannot exceed one, the table has UNIQUE(tenant_id))"
    )
    assert len(written) == BURST
    assert duplicates == 0, (written.most_common(3), writes.updates())


def test_postgres_down_is_reported_and_recovered_within_10s(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, postgres: Any
) -> None:
    w = make_world(sim)
    apply_tenant(kubectl, namespace, w, tenant_id=f"t_down_{namespace}")
    synced(kubectl, namespace, "acme")
    postgres.stop()
    try:
        kubectl("annotate", "wat", "acme", "-n", namespace, "whatsapp.operator.dev/revalidate=1")
        obj = wait_reason(kubectl, namespace, "acme", "DatabaseUnavailable", "Synced")
        assert cond(obj, "Synced")["status"] == "False"
        assert "PostgreSQL unavailable" in cond(obj, "Synced")["message"]
        # issue 19: the message named the database's user and host (postgresql://user@host)
        info = conninfo_to_dict(postgres.dsn)
        status = json.dumps(obj["status"])
        for hidden in (str(info["user"]), str(info["host"]), "postgresql://"):
            assert hidden not in status, hidden
        assert postgres_up(operator) == [
            0.0
        ]  # issue 20: the gauge of WhatsAppPostgreSQLUnavailable
    finally:
        postgres.start()
    returned = time.monotonic()
    synced(kubectl, namespace, "acme", timeout=15)
    took = time.monotonic() - returned
    print(f"\n[figure] Synced again {took:.1f} s after PostgreSQL returned")
    assert took <= 10
    assert postgres_up(operator) == [1.0]


def postgres_up(operator: Any) -> list[float]:
    """`whatsapp_operator_postgres_up` on the operator's /metrics (one value: it has a database)."""
    return [value for _, value in samples(operator.metrics_port, "whatsapp_operator_postgres_up")]


UNREACHABLE = "postgresql://u:hunter2secret@127.0.0.1:1/x?connect_timeout=1"


@pytest.mark.parametrize(
    ("dsn", "setup", "message"),
    [
        ("not a dsn =", "", "invalid database URL"),
        (UNREACHABLE, "", None),
        (UNREACHABLE, "no audit key", "database_url needs audit_key_file"),
        (UNREACHABLE, "two keys, no primary", "2 keys (a-2026-11, dev-key-1) and none named"),
    ],
    ids=[
        "unparsable URL: one line, exit 1",
        "unreachable server: reported, keeps running",
        "no audit key: one line, exit 1",
        "several encryption keys, none named primary: one line, exit 1",
    ],
)
def test_a_bad_database_setup_is_one_clear_line(
    cluster: Any, keys_dir: Path, audit_key_file: Path, tmp_path: Path, dsn: str, setup: str,
    message: str | None,
) -> None:  # fmt: skip
    from whatsapp_testkit.procs import free_ports

    if setup == "two keys, no primary":  # `dev-key-1` used to outrank `a-2026-11` by its id
        keys_dir = tmp_path / "keys"
        keys_dir.mkdir()
        for kid in ("dev-key-1", "a-2026-11"):
            (keys_dir / kid).write_bytes(os.urandom(32))

    argv = [
        str(Path(sys.executable).parent / "whatsapp-operator"),
        "-n",
        "nothing-here",
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--liveness-port",
        "0",
        "--metrics-port",
        str(free_ports(1)[0]),
        "--encryption-keys-dir",
        str(keys_dir),
        *(["--audit-key-file", str(audit_key_file)] if setup != "no audit key" else []),
    ]
    env = {**os.environ, "WHATSAPP_OPERATOR_DATABASE_URL": dsn}
    env.pop("WHATSAPP_OPERATOR_AUDIT_KEY_FILE", None)
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=12)
        output, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        output, code = str(exc.stdout or "") + str(exc.stderr or ""), None
    assert "Traceback" not in output
    assert "hunter2secret" not in output
    if message is not None:
        assert code == 1, output
        assert message in output
    else:
        assert code is None, "an unreachable database is an outage to wait out, not a crash"
        assert "PostgreSQL unavailable" in output
