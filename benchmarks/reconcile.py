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
import contextlib
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config
from psycopg_pool import AsyncConnectionPool

from benchmarks import write_results
from benchmarks.reconcile_report import report
from benchmarks.reconcile_runs import (
    APP_ID,
    Bulk,
    Env,
    floor,
    namespace,
    operator,
    seed,
)
from whatsapp_operator.postgres.crypto import Keyring, TokenCipher
from whatsapp_operator.postgres.database import Database
from whatsapp_simulator.client import SimulatorAdmin
from whatsapp_testkit.controlplane import ControlPlane
from whatsapp_testkit.postgres import Postgres
from whatsapp_testkit.services import GraphSimulator


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
