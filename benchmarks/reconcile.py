"""Bulk reconcile and token propagation of the operator process, against a raw async floor.

Servers, started as the integration tests start them: kube-apiserver + etcd (CRDs applied
with kubectl), PostgreSQL, the Graph API simulator (20 ms a call) and `whatsapp-operator` as a
process (INFO logs, rows in tenant_whatsapp_config with encrypted tokens, resolved config
published to a workers namespace, Graph budget 2000/s burst 2000: never binding, so what is
measured is the operator's own cost). A fresh operator per run, watching only its namespace.

Bulk: N Secrets, then N WhatsAppTenant objects, are created at once in a fresh namespace (one
async client, 50 creates in flight). The clock runs from the first create until every tenant
is done: for the operator Ready=True, `status.published` set and its row in PostgreSQL (a
tenant list plus one SELECT every 0.5 s; the shards are parsed at the end to confirm every
tenant is in them); per tenant, the first poll that saw it done minus its own create. The
floor gets the same creates in another namespace, which no operator watches, and per tenant
(50 in flight, as soon as its object exists) the calls the operator cannot avoid: GET the
Secret, GET debug_token, GET the phone number, GET the WABA's phone_numbers (httpx), INSERT
... ON CONFLICT of the row (psycopg pool of 10, as the operator's), one status merge-patch.
No watch, events, publishing.

Propagation: with N tenants Ready, K tokens are replaced one at a time (each new token known to
the simulator first): Secret write -> new token_fingerprint in the row, and in the tenant's
entry of the published shard (polled every 50 ms). Medians of repeats (2 noisy cores).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from kubernetes_asyncio import client, config
from psycopg_pool import AsyncConnectionPool

from benchmarks import write_results
from whatsapp_contract.fingerprint import fingerprint
from whatsapp_contract.resolved import parse_document
from whatsapp_graph.client import PHONE_FIELDS
from whatsapp_operator.postgres.crypto import Keyring, TokenCipher
from whatsapp_operator.postgres.database import Database
from whatsapp_simulator.client import SimulatorAdmin
from whatsapp_testkit.controlplane import ControlPlane
from whatsapp_testkit.postgres import Postgres
from whatsapp_testkit.procs import reachable
from whatsapp_testkit.services import GraphSimulator, Operator
from whatsapp_testkit.world import SCOPES, World, new_id, new_token, secret, tenant

APP_ID = "424242424242"
CRD = ("whatsapp.operator.dev", "v1alpha1", "whatsapptenants")
POOL = "whatsapp.operator.dev/pool"
MERGE = "application/merge-patch+json"
UPSERT = (
    "INSERT INTO tenant_whatsapp_config (tenant_id, waba_id, phone_number_id, access_token, "
    "display_phone_number, quality_rating, is_active, configured, managed_by, token_fingerprint, "
    "k8s_uid, k8s_namespace, k8s_name, synced_generation) VALUES (%s, %s, %s, %s, %s, %s, true, "
    "true, 'bench-floor', %s, %s, %s, %s, 1) ON CONFLICT (tenant_id) DO UPDATE SET access_token "
    "= EXCLUDED.access_token, token_fingerprint = EXCLUDED.token_fingerprint, updated_at = now() "
    "RETURNING id"
)
Pool = AsyncConnectionPool[Any]


@dataclass(frozen=True)
class Tenant:
    name: str
    tenant_id: str
    world: World


@dataclass
class Bulk:
    """One bulk run: seconds from the first create, and per-tenant latencies."""

    created: float  # until the last object was created
    done: float  # until every tenant was done
    latencies: list[float]
    graph_calls: float  # per tenant, counted in the simulator's call log
    passes: float = 1.0  # reconcile passes per tenant
    wakes: dict[str, float] = field(default_factory=dict)  # per tenant, by reason (operator)


@dataclass
class Env:
    kubeconfig: Path
    api: client.ApiClient
    db: Pool
    sim: GraphSimulator
    admin: SimulatorAdmin
    cipher: TokenCipher
    keys: Path
    logs: Path
    opts: argparse.Namespace
    propagation: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    return sorted(values)[max(0, math.ceil(q * len(values)) - 1)]


async def namespace(env: Env, name: str) -> None:
    meta = client.V1ObjectMeta(name=name)
    await client.CoreV1Api(env.api).create_namespace(client.V1Namespace(metadata=meta))


def seed(admin: SimulatorAdmin, n: int, tag: str) -> list[Tenant]:
    """N tenants (WABA, number, token) in the simulator, in one admin request."""
    tenants = [
        Tenant(f"t{i:05d}", f"{tag}_{i:05d}", World(new_id("2"), new_id("3"), new_token(), ""))
        for i in range(n)
    ]
    admin.seed({
        "wabas": [{"id": t.world.waba_id} for t in tenants],
        "phones": [{"id": t.world.phone_number_id, "waba_id": t.world.waba_id,
                    "display_phone_number": "+1 555 0100"} for t in tenants],
        "tokens": [{"token": t.world.token, "app_id": APP_ID, "scopes": list(SCOPES),
                    "targets": {s: [t.world.waba_id] for s in SCOPES[1:]}} for t in tenants],
    })  # fmt: skip
    return tenants


async def create_all(
    env: Env, ns: str, tenants: list[Tenant], created: Callable[[Tenant], None]
) -> None:
    """The Secrets, then the tenants, `--concurrency` creates in flight."""
    core, custom = client.CoreV1Api(env.api), client.CustomObjectsApi(env.api)
    gate = asyncio.Semaphore(env.opts.concurrency)

    async def one(t: Tenant, obj: dict[str, Any]) -> None:
        async with gate:
            if obj["kind"] == "Secret":
                await core.create_namespaced_secret(ns, obj)  # type: ignore[arg-type]
            else:
                await custom.create_namespaced_custom_object(*CRD[:2], ns, CRD[2], obj)
                created(t)

    await asyncio.gather(
        *(one(t, secret(f"s{t.name}", {"accessToken": t.world.token})) for t in tenants)
    )
    await asyncio.gather(
        *(one(t, tenant(t.name, t.tenant_id, t.world, f"s{t.name}")) for t in tenants)
    )


def ready_status(row_id: int) -> dict[str, Any]:
    """The status the floor writes: Ready, with the row's id."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ready = {"type": "Ready", "status": "True", "reason": "Ready", "message": "ok",
             "lastTransitionTime": now, "observedGeneration": 1}  # fmt: skip
    return {"observedGeneration": 1, "conditions": [ready], "database": {"rowId": row_id}}


async def floor(env: Env, ns: str, tenants: list[Tenant]) -> Bulk:
    core, custom = client.CoreV1Api(env.api), client.CustomObjectsApi(env.api)
    gate = asyncio.Semaphore(env.opts.concurrency)
    born: dict[str, float] = {}
    done: dict[str, float] = {}
    jobs: list[asyncio.Task[None]] = []
    async with httpx.AsyncClient(base_url=f"{env.sim.url}/v25.0") as http:

        async def work(t: Tenant) -> None:
            async with gate:
                data = (await core.read_namespaced_secret(f"s{t.name}", ns)).data
                token = base64.b64decode(data["accessToken"]).decode()
                auth = {"Authorization": f"Bearer {token}"}
                r = await http.get("debug_token", params={"input_token": token}, headers=auth)
                assert r.json()["data"]["is_valid"]
                r = await http.get(
                    t.world.phone_number_id, params={"fields": ",".join(PHONE_FIELDS)},
                    headers=auth,
                )  # fmt: skip
                phone = r.json()
                # the ownership read the operator makes too
                r = await http.get(
                    f"{t.world.waba_id}/phone_numbers",
                    params={"fields": "id", "limit": "100"},
                    headers=auth,
                )  # fmt: skip
                assert t.world.phone_number_id in {n["id"] for n in r.json()["data"]}
                row = (t.tenant_id, t.world.waba_id, t.world.phone_number_id,
                       env.cipher.seal(token, t.tenant_id), phone["display_phone_number"],
                       phone["quality_rating"], fingerprint(token), "", ns, t.name)  # fmt: skip
                async with env.db.connection() as conn:
                    found = await (await conn.execute(UPSERT, row)).fetchone()
                status = ready_status(found[0] if found else 0)
                await custom.patch_namespaced_custom_object_status(
                    *CRD[:2],
                    ns,
                    CRD[2],
                    t.name,
                    {"status": status},
                    _content_type=MERGE,  # type: ignore[call-arg]
                )
                done[t.name] = time.monotonic()

        def created(t: Tenant) -> None:
            born[t.name] = time.monotonic()
            jobs.append(asyncio.create_task(work(t)))

        calls = (await asyncio.to_thread(env.admin.calls))["total"]
        started = time.monotonic()
        await create_all(env, ns, tenants, created)
        await asyncio.gather(*jobs)
        calls = (await asyncio.to_thread(env.admin.calls))["total"] - calls
    return Bulk(
        max(born.values()) - started,
        max(done.values()) - started,
        [done[n] - born[n] for n in done],
        calls / len(tenants),  # counted by the simulator, as the operator's
    )


async def wait_done(env: Env, ns: str, n: int, born: dict[str, float]) -> dict[str, float]:
    """name -> when a poll first saw it Ready, published and with its row."""
    custom = client.CustomObjectsApi(env.api)
    seen: dict[str, float] = {}
    deadline = time.monotonic() + env.opts.timeout
    counts = (0, 0, 0)
    while len(seen) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{ns}: {len(seen)}/{n} done after {env.opts.timeout} s "
                               f"(ready, published, rows: {counts})")  # fmt: skip
        items = (await custom.list_namespaced_custom_object(*CRD[:2], ns, CRD[2]))["items"]
        async with env.db.connection() as conn:
            cur = await conn.execute(
                "SELECT k8s_name FROM tenant_whatsapp_config WHERE k8s_namespace = %s", (ns,)
            )
            rows = {r[0] for r in await cur.fetchall()}
        now = time.monotonic()
        ready = {
            i["metadata"]["name"]: bool((i.get("status") or {}).get("published"))
            for i in items
            if any(c["type"] == "Ready" and c["status"] == "True"
                   for c in (i.get("status") or {}).get("conditions") or ())
        }  # fmt: skip
        counts = (len(ready), sum(ready.values()), len(rows))
        for name, published in ready.items():
            if published and name in rows and name in born:
                seen.setdefault(name, now)
        await asyncio.sleep(env.opts.poll)
    return seen


async def published_ids(env: Env, workers: str) -> set[str]:
    """The tenant ids in the shards published in the workers namespace."""
    items = await client.CoreV1Api(env.api).list_namespaced_secret(workers, label_selector=POOL)
    return {t.tenant_id for i in items.items for raw in (i.data or {}).values()
            for t in parse_document(base64.b64decode(raw)).tenants}  # fmt: skip


def metric(op: Operator, name: str) -> float:
    return sum(samples(op, name).values())


def samples(op: Operator, name: str) -> dict[str, float]:
    """A counter's samples from the operator's /metrics page, by their label text."""
    _, body = reachable(f"http://127.0.0.1:{op.metrics_port}/metrics")
    return {line.rsplit(" ", 1)[0].removeprefix(name): float(line.rsplit(" ", 1)[1])
            for line in body.splitlines() if line.startswith(name + "{")}  # fmt: skip


async def operator(
    env: Env, ns: str, tenants: list[Tenant], propagate: int
) -> tuple[Bulk, Operator]:
    workers = f"{ns}-workers"
    await namespace(env, workers)
    op = Operator(
        env.logs / f"operator-{ns}.log", kubeconfig=env.kubeconfig, graph_api_url=env.sim.url,
        namespaces=[ns], extra_env={"WHATSAPP_OPERATOR_DATABASE_URL": env.opts.dsn},
        extra_args=["--graph-rate", str(env.opts.graph_rate), "--graph-burst",
                    str(env.opts.graph_rate), "--log-level", "INFO", "--encryption-keys-dir",
                    str(env.keys), "--audit-key-file", str(env.keys.parent / "audit-key"),
                    "--workers-namespace", workers],
    )  # fmt: skip
    try:
        await asyncio.to_thread(op.start)
        calls = (await asyncio.to_thread(env.admin.calls))["total"]
        born: dict[str, float] = {}
        started = time.monotonic()
        creating = asyncio.create_task(
            create_all(env, ns, tenants, lambda t: born.__setitem__(t.name, time.monotonic()))
        )
        seen = await wait_done(env, ns, len(tenants), born)
        await creating
        published = await published_ids(env, workers)
        missing = [t.tenant_id for t in tenants if t.tenant_id not in published]
        assert not missing, f"{len(missing)} tenants Ready but not in the published shards"
        calls = (await asyncio.to_thread(env.admin.calls))["total"] - calls
        bulk = Bulk(
            max(born.values()) - started,
            max(seen.values()) - started,
            [seen[n] - born[n] for n in seen],
            calls / len(tenants),
            metric(op, "whatsapp_operator_reconciles_total") / len(tenants),
            {label.split('"')[1]: n / len(tenants)
             for label, n in samples(op, "whatsapp_operator_wakes_total").items()},
        )  # fmt: skip
        if propagate:
            env.propagation = await propagation(env, ns, workers, tenants[:propagate])
        return bulk, op
    finally:
        await asyncio.to_thread(op.stop)


async def propagation(
    env: Env, ns: str, workers: str, tenants: list[Tenant]
) -> tuple[list[float], list[float]]:
    """Seconds from each Secret write to the new token in (the row, the published shard)."""
    core, custom = client.CoreV1Api(env.api), client.CustomObjectsApi(env.api)
    to_row: list[float] = []
    to_shard: list[float] = []
    for t in tenants:
        new = new_token()
        await asyncio.to_thread(
            env.admin.add_token, new, app_id=APP_ID, scopes=SCOPES,
            targets={s: [t.world.waba_id] for s in SCOPES[1:]},
        )  # fmt: skip
        want = fingerprint(new)
        obj = await custom.get_namespaced_custom_object(*CRD[:2], ns, CRD[2], t.name)
        shard, seen_hash = obj["status"]["published"]["secret"], ""
        row_at = shard_at = None
        started = time.monotonic()
        body = {"data": {"accessToken": base64.b64encode(new.encode()).decode()}}
        await core.patch_namespaced_secret(f"s{t.name}", ns, body, _content_type=MERGE)  # type: ignore[call-arg]
        while row_at is None or shard_at is None:
            elapsed = time.monotonic() - started
            if elapsed > 30:
                raise TimeoutError(f"{ns}/{t.name}: new token not propagated in 30 s")
            if row_at is None:
                async with env.db.connection() as conn:
                    cur = await conn.execute(
                        "SELECT token_fingerprint FROM tenant_whatsapp_config "
                        "WHERE tenant_id = %s", (t.tenant_id,),
                    )  # fmt: skip
                    if (await cur.fetchone() or [None])[0] == want:
                        row_at = time.monotonic() - started
            if shard_at is None:
                item = await core.read_namespaced_secret(shard, workers)
                if item.metadata.annotations.get("whatsapp.operator.dev/content-hash") != seen_hash:
                    seen_hash = item.metadata.annotations["whatsapp.operator.dev/content-hash"]
                    for raw in (item.data or {}).values():
                        entries = parse_document(base64.b64decode(raw)).tenants
                        if any(e.tenant_id == t.tenant_id and e.token_fingerprint == want
                               for e in entries):  # fmt: skip
                            shard_at = time.monotonic() - started
            await asyncio.sleep(0.05)
        to_row.append(row_at)
        to_shard.append(shard_at)
        await asyncio.sleep(env.opts.gap)
    return to_row, to_shard


def start_servers(stack: contextlib.ExitStack, base: Path, latency_ms: int) -> tuple[Any, ...]:
    """Control plane (CRDs established), PostgreSQL, simulator; each stopped by `stack`."""
    cp = ControlPlane()
    stack.callback(cp.stop)
    cp.start()
    cp.install_crds(field_manager="bench")
    cp.allow_all_tenant_ids()  # the operator enforces tenant policies by default
    pg = Postgres()
    stack.callback(pg.close)
    pg.start()
    sim = GraphSimulator(base / "graph-sim.log", latency_ms=latency_ms)
    stack.callback(sim.stop)
    sim.start()
    return cp.kubeconfig_path, pg, sim


async def run(env: Env, sizes: list[int]) -> dict[int, tuple[list[Bulk], list[Bulk]]]:
    results: dict[int, tuple[list[Bulk], list[Bulk]]] = {}
    for n in sizes:
        floors, ours = [], []
        for i in range(env.opts.repeat):
            tag = uuid.uuid4().hex[:6]
            ns_floor, ns_op = f"bench-floor-{n}-{tag}", f"bench-op-{n}-{tag}"
            for ns in (ns_floor, ns_op):
                await namespace(env, ns)
            world_floor = await asyncio.to_thread(seed, env.admin, n, f"f{tag}")
            world_op = await asyncio.to_thread(seed, env.admin, n, f"o{tag}")
            floors.append(await floor(env, ns_floor, world_floor))
            last = n == sizes[-1] and i == env.opts.repeat - 1
            bulk, op = await operator(env, ns_op, world_op, env.opts.propagate if last else 0)
            ours.append(bulk)
            print(f"[{n} tenants, run {i + 1}] floor {floors[-1].done:.2f} s, operator "
                  f"{bulk.done:.2f} s (log {op.log_path})", flush=True)  # fmt: skip
        results[n] = (floors, ours)
    return results


def med(runs: list[Bulk], pick: Callable[[Bulk], float]) -> float:
    return statistics.median(pick(b) for b in runs)


def bulk_lines(
    results: dict[int, tuple[list[Bulk], list[Bulk]]],
) -> tuple[list[str], list[str], list[str], list[str]]:
    """The table's rows, then per size: the goals met (from 1000 tenants), the runs, the
    operator's wakes."""
    rows, verdicts, runs, wakes = [], [], [], []
    for n, (floors, ours) in results.items():
        base = med(floors, lambda b: b.done)
        for label, bulks in (("floor: raw async client", floors),
                             ("whatsapp-operator (Ready, row, published)", ours)):  # fmt: skip
            done = med(bulks, lambda b: b.done)
            rows.append(
                f"| {n} | {label} | {med(bulks, lambda b: b.created):.2f} | {done:.2f} | "
                f"{done / base:.2f} | {med(bulks, lambda b: pct(b.latencies, 0.5)):.2f} | "
                f"{med(bulks, lambda b: pct(b.latencies, 0.95)):.2f} | "
                f"{med(bulks, lambda b: b.graph_calls):.1f} | "
                f"{med(bulks, lambda b: b.passes):.1f} |"
            )
        done = med(ours, lambda b: b.done)
        reasons = sorted({r for b in ours for r in b.wakes})
        per_reason = {r: statistics.median(b.wakes.get(r, 0.0) for b in ours) for r in reasons}
        wakes.append(f"{n}: " + (", ".join(f"{r} {v:.2f}" for r, v in per_reason.items())
                                 or "none"))  # fmt: skip
        runs.append(f"{n}: floor {', '.join(f'{b.done:.2f}' for b in floors)}; operator "
                    f"{', '.join(f'{b.done:.2f}' for b in ours)}")  # fmt: skip
        if n >= 1000:
            verdicts.append(
                f"Goals at {n} tenants: all Ready <= 30 s: {'met' if done <= 30 else 'MISSED'} "
                f"({done:.1f} s); <= 2x the floor: {'met' if done <= 2 * base else 'MISSED'} "
                f"({done / base:.2f}x)."
            )
    return rows, verdicts, runs, wakes


def propagation_lines(opts: argparse.Namespace, results: dict[int, Any],
                      propagation: tuple[list[float], list[float]]) -> list[str]:  # fmt: skip
    """The propagation table (none when it was not measured)."""
    to_row, to_shard = propagation
    if not to_row:
        return []
    return [
        "",
        f"# Propagation: {len(to_row)} tokens replaced one at a time among "
        f"{max(results)} Ready tenants ({opts.gap:g} s apart), goal <= 2 s",
        "",
        "| from the Secret write to the new token in | p50 (s) | p95 (s) | max (s) |",
        "| --- | --- | --- | --- |",
        *(f"| {what} | {pct(v, 0.5):.2f} | {pct(v, 0.95):.2f} | {max(v):.2f} |"
          for what, v in (("the PostgreSQL row (token_fingerprint)", to_row),
                          ("the published resolved config shard", to_shard))),
    ]  # fmt: skip


def report(opts: argparse.Namespace, results: dict[int, tuple[list[Bulk], list[Bulk]]],
           propagation: tuple[list[float], list[float]]) -> str:  # fmt: skip
    rows, verdicts, runs, wakes = bulk_lines(results)
    lines = [
        f"# Bulk reconcile: N tenants created at once, simulator latency {opts.latency_ms} ms, "
        f"operator Graph budget {opts.graph_rate:g} req/s burst {opts.graph_rate:g} (never "
        f"binding: the operator's own cost), {opts.concurrency} in flight for the floor and the "
        f"creates, median of {opts.repeat}",
        "",
        "| tenants | client | objects created (s) | all done (s) | ratio to floor | per tenant "
        "p50 (s) | per tenant p95 (s) | Graph calls / tenant | passes / tenant |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        *verdicts,
        f"Runs, all done (s): {' | '.join(runs)}.",
        f"The operator's wakes per tenant, by reason (median): {' | '.join(wakes)}.",
    ]
    lines += propagation_lines(opts, results, propagation)
    lines += ["", "Method: see the docstring of benchmarks/reconcile.py. 'All done' runs from "
              "the first create; the operator's is seen by a poll every "
              f"{opts.poll:g} s (the floor's when its last status patch returns). Per tenant: "
              "done minus the tenant's own create. Passes: the operator's reconcile passes "
              "(whatsapp_operator_reconciles_total)."]  # fmt: skip
    return "\n".join(lines)


async def main(argv: list[str]) -> None:
    args = argparse.ArgumentParser(prog="benchmarks.reconcile")
    args.add_argument("--tenants", type=int, action="append", help="repeatable; 100 and 1000")
    args.add_argument("--repeat", type=int, default=3)
    args.add_argument("--concurrency", type=int, default=50)
    args.add_argument("--latency-ms", type=int, default=20)
    args.add_argument("--graph-rate", type=float, default=2000, help="operator budget and burst")
    args.add_argument("--poll", type=float, default=0.5, help="seconds between readiness polls")
    args.add_argument("--timeout", type=float, default=300, help="seconds per bulk run")
    args.add_argument("--propagate", type=int, default=20, help="tokens replaced (0: none)")
    args.add_argument("--gap", type=float, default=1.5, help="seconds between replacements")
    opts = args.parse_args(argv)
    sizes = sorted(opts.tenants or [100, 1000])
    logs = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    print(f"logs: {logs}", flush=True)
    keys = logs / "keys"
    keys.mkdir()
    (keys / "2026-01").write_bytes(os.urandom(32))
    (logs / "audit-key").write_bytes(os.urandom(32).hex().encode())  # the audit trail's HMAC key
    with contextlib.ExitStack() as stack:
        kubeconfig, pg, sim = await asyncio.to_thread(start_servers, stack, logs, opts.latency_ms)
        opts.dsn = pg.dsn
        database = await Database.connect(pg.dsn)
        await database.migrate()
        await database.close()
        admin = stack.enter_context(SimulatorAdmin(sim.url))
        await asyncio.to_thread(admin.add_app, APP_ID, "bench-app-secret")
        cfg = client.Configuration()
        await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        async with (
            client.ApiClient(configuration=cfg) as api,
            AsyncConnectionPool(pg.dsn, min_size=10, max_size=10, kwargs={"autocommit": True},
                                open=False) as db,
        ):  # fmt: skip
            cipher = TokenCipher("encrypted", Keyring.from_directory(keys))
            env = Env(kubeconfig, api, db, sim, admin, cipher, keys, logs, opts)
            results = await run(env, sizes)
    table = report(opts, results, env.propagation)
    write_results("reconcile", table)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
