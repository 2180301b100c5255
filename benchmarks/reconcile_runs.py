"""What benchmarks/reconcile.py measures (see its docstring): the simulator's tenants, their
creates, the floor's calls, the operator process until every tenant is done, and the token
propagation."""

from __future__ import annotations

import argparse
import asyncio
import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from kubernetes_asyncio import client
from psycopg_pool import AsyncConnectionPool

from whatsapp_contract.fingerprint import fingerprint
from whatsapp_contract.resolved import parse_document
from whatsapp_graph.client import PHONE_FIELDS
from whatsapp_operator.postgres.crypto import TokenCipher
from whatsapp_simulator.client import SimulatorAdmin
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
