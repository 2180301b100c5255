"""10,000 tenants under one operator process: set-up time, then the idle footprint.

A real kube-apiserver + etcd (the project's ControlPlane, CRDs applied server-side),
PostgreSQL, RabbitMQ, the Graph simulator and the operator as a real process, configured as
tests/conftest.py configures it (encrypted token storage, resolved-config publishing to a
workers namespace, AMQP heartbeats) but at INFO level, the default drift/rekey intervals
and --graph-rate 100 (10x the default) so set-up is not paced by the Graph budget. Much higher
(1000) let ~10,000 requests queue in the operator's HTTP pool at once on a loaded machine:
they hit the pool timeout, and the pool then stayed "full" with no socket open (httpcore
1.0.9, encode/httpcore#1093), failing every later Graph call. N tenants and their
Secrets are created in a few namespaces (kubernetes_asyncio, bounded concurrency) and the
simulator is seeded for all of them. Set-up = first create -> the operator reports all N
Ready (whatsapp_tenant_ready on its /metrics page, then confirmed by a paged list). Ready is
not converged: the operator keeps rewriting statuses for a while (a growing pool is re-sharded
and every moved tenant records its new shard), so the benchmark then waits for a 10-s window
with no write to the API other than the API server's own, and reports how long that took.

Then an idle window (nothing changes), measured on the operator process: RSS (VmRSS) and
peak RSS (VmHWM) from /proc/<pid>/status, CPU as % of one core from utime+stime in
/proc/<pid>/stat over the window, and the API server's requests per minute by verb and
resource (`apiserver_request_total` from its /metrics, read before and after; the one
scrape that falls inside the window is subtracted). The API server's own requests (its
identity lease) show as their own rows.

Floor, measured over the same window: a bare kubernetes_asyncio process
(benchmarks/informer_floor.py) that lists and then watches the same tenants and Secrets and
holds every object as a dict, like an informer with no framework. The ratio is what the
operator costs beyond holding the objects. A second floor, kopf itself
(benchmarks/kopf_floor.py): the operator's watch settings, indexes and event handlers doing
no work, the operator's shape since its scheduler. `--daemon-floor` adds a third, the same
with a sleeping daemon per tenant (the operator before its scheduler); at 10,000 its first
pass, a finalizer PATCH per tenant beside the operator, overloaded the 2-core machine (PATCH
timeouts, the API server's /metrics unanswered), hence opt-in. The kopf floors install the
operator's linear start-up gate over indexes (`whatsapp_operator/runtime/toggles.py`; kopf's own,
cubic in the objects, did not list 10,000 within 10 minutes, this one in 13 s); a kopf
floor that does not list in 600 s is reported and the run goes on. One run: set-up of 10,000
takes minutes on 2 shared cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import write_results
from benchmarks.meta_calls import (
    BenchTenant,
    create_tenants,
    make_tenants,
    seed_simulator,
    start_cluster,
    wait_ready,
)
from benchmarks.scale_measure import (
    FLOORS,
    Window,
    count_ready,
    cpu_percent,
    measure_window,
    start_floor,
    wait_quiet,
)
from whatsapp_simulator.client import SimulatorAdmin
from whatsapp_testkit.controlplane import ControlPlane
from whatsapp_testkit.postgres import Postgres
from whatsapp_testkit.rabbitmq import RabbitMQ
from whatsapp_testkit.services import GraphSimulator, Operator

WORKERS_NAMESPACE = "whatsapp-workers"


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Result:
    tenants: int
    created_s: float = 0.0
    ready_s: float = 0.0
    confirmed_ready: int = 0
    quiet_s: float = 0.0  # from all Ready to no more writes to the API
    empty: Window | None = None  # the operator with no tenant yet
    idle: Window | None = None  # the operator and the floor, all tenants Ready
    floors: list[str] = field(default_factory=list)  # labels of the floors measured, in order
    unlisted: list[str] = field(default_factory=list)  # kopf floors that did not list in time


async def run(opts: argparse.Namespace, base: Path) -> Result:
    result = Result(opts.tenants)
    tenants = make_tenants(opts.tenants, opts.namespaces)
    keys = base / "keys"
    keys.mkdir(exist_ok=True)
    (keys / "2026-01").write_bytes(os.urandom(32))
    (base / "audit-key").write_bytes(os.urandom(32).hex().encode())  # the audit trail's HMAC key
    cp, pg, rabbit = None, Postgres(), RabbitMQ()
    sim = GraphSimulator(base / "sim.log")
    op: Operator | None = None
    floors: list[asyncio.subprocess.Process] = []
    try:
        cp = start_cluster(namespaces=[WORKERS_NAMESPACE])
        pg.start()
        rabbit.start()
        sim.start()
        with SimulatorAdmin(sim.url, timeout=120) as admin:
            seed_simulator(admin, tenants)
        op = new_operator(opts, base, cp, pg, rabbit, sim, keys)
        op.start()
        assert op.proc is not None
        await asyncio.sleep(opts.settle)
        result.empty = await measure_window(cp, [op.proc.pid], opts.baseline)
        await set_up(opts, cp, op, tenants, result)
        await start_floors(opts, cp, result, floors)
        await asyncio.sleep(opts.settle)
        if opts.trace_memory:  # the largest allocation sites, in the operator's log
            op.proc.send_signal(signal.SIGUSR1)
        pids = [op.proc.pid, *(f.pid for f in floors)]
        result.idle = await measure_window(cp, pids, opts.idle)
    finally:
        for floor in floors:
            if floor.returncode is None:
                floor.send_signal(signal.SIGTERM)
                await floor.wait()
        if op is not None:
            op.stop()
        sim.stop()
        rabbit.close()
        pg.close()
        if cp is not None:
            cp.stop()
    return result


def new_operator(
    opts: argparse.Namespace, base: Path, cp: ControlPlane, pg: Postgres, rabbit: RabbitMQ,
    sim: GraphSimulator, keys: Path,
) -> Operator:  # fmt: skip
    """The operator process (not started yet), configured as the module docstring says."""
    return Operator(
        base / "operator.log", kubeconfig=cp.kubeconfig_path, graph_api_url=sim.url,
        extra_args=["--graph-rate", str(opts.graph_rate),
                    "--graph-burst", str(int(opts.graph_rate)), "--log-level", "INFO",
                    "--encryption-keys-dir", str(keys),
                    "--audit-key-file", str(keys.parent / "audit-key"),
                    "--workers-namespace", WORKERS_NAMESPACE],
        extra_env={"WHATSAPP_OPERATOR_DATABASE_URL": pg.dsn,
                   "WHATSAPP_OPERATOR_AMQP_URL": rabbit.amqp_url,
                   **({"PYTHONTRACEMALLOC": str(opts.trace_memory)}
                      if opts.trace_memory else {})},
    )  # fmt: skip


async def set_up(
    opts: argparse.Namespace, cp: ControlPlane, op: Operator, tenants: list[BenchTenant],
    result: Result,
) -> None:  # fmt: skip
    """Create the tenants, then wait for all Ready and for the API writes to stop."""
    assert op.proc is not None
    print(f"scale: operator pid {op.proc.pid}, creating {opts.tenants} tenants", flush=True)
    started = time.monotonic()
    await create_tenants(cp.kubeconfig_path, tenants, concurrency=opts.concurrency)
    result.created_s = time.monotonic() - started
    print(f"scale: created in {result.created_s:.0f} s; waiting for Ready", flush=True)
    await wait_ready(op, opts.tenants, within=opts.setup_timeout, poll=5.0)
    result.ready_s = time.monotonic() - started
    result.confirmed_ready = await count_ready(cp.kubeconfig_path)
    print(f"scale: all Ready in {result.ready_s:.0f} s; waiting for quiet", flush=True)
    result.quiet_s = await wait_quiet(cp, within=opts.setup_timeout)
    print(f"scale: quiet after {result.quiet_s:.0f} s more; starting the floors", flush=True)


async def start_floors(
    opts: argparse.Namespace, cp: ControlPlane, result: Result,
    floors: list[asyncio.subprocess.Process],
) -> None:  # fmt: skip
    """Start the floors one at a time (each lists 2 x N objects), each appended to `floors`
    once it has listed (the caller stops them)."""
    for label, command in list(FLOORS.items())[: None if opts.daemon_floor else 2]:
        try:
            floors.append(await start_floor(command, cp.kubeconfig_path, opts.tenants, 600))
        except RuntimeError:
            if not floors:
                raise  # the raw floor is the one every ratio needs
            print(f"scale: the floor '{label}' did not list in 600 s", flush=True)
            result.unlisted.append(label)  # reported; the operator's figures still count
            continue
        result.floors.append(label)


def render(r: Result, opts: argparse.Namespace) -> str:
    assert r.idle is not None
    assert r.empty is not None
    (op0, op1), (fl0, fl1), *kopf_floors = r.idle.procs
    e0, e1 = r.empty.procs[0]
    op_cpu, fl_cpu = cpu_percent(op0, op1), cpu_percent(fl0, fl1)
    cpu_ratio = f"{op_cpu / fl_cpu:.1f}" if fl_cpu > 0 else "n/a (floor below 1 tick)"
    idle_min, empty_min = 60 / r.idle.seconds, 60 / r.empty.seconds
    idle_requests = r.idle.requests
    keys = sorted(set(idle_requests) | set(r.empty.requests), key=lambda k: -idle_requests[k])
    rows = [
        f"| {verb} | {res} | {r.empty.requests[verb, res] * empty_min:.1f} | "
        f"{r.idle.requests[verb, res] * idle_min:.1f} |"
        for verb, res in keys
    ]
    total, total0 = sum(r.idle.requests.values()), sum(r.empty.requests.values())
    return "\n".join([
        f"# Scale: {r.tenants} tenants (+{r.tenants} Secrets) in {opts.namespaces} namespaces, "
        f"one operator process",
        "",
        f"Set-up: created in {r.created_s:.0f} s (concurrency {opts.concurrency}); all Ready "
        f"(operator metrics) {r.ready_s:.0f} s after the first create "
        f"({r.tenants / r.ready_s:.1f} tenants/s); Ready=True in the API afterwards: "
        f"{r.confirmed_ready}. Converged (a 10-s window without a write to the API other than "
        f"the API server's own) {r.quiet_s:.0f} s after that.",
        "",
        f"Idle window: {r.idle.seconds:.0f} s, {opts.settle:.0f} s after convergence; nothing "
        f"changes. Before any tenant existed, the operator was measured for "
        f"{r.empty.seconds:.0f} s too (row 'no tenants').",
        "",
        "| process | RSS (MB) | peak RSS (MB) | idle CPU (% of one core) |",
        "| --- | --- | --- | --- |",
        *(f"| floor: {label} | {after.rss_mb:.0f} | {after.hwm_mb:.0f} | "
          f"{cpu_percent(before, after):.2f} |"
          for label, (before, after) in zip(r.floors, [(fl0, fl1), *kopf_floors], strict=True)),
        *(f"| floor: {label} | did not list {r.tenants} tenants in 600 s | | |"
          for label in r.unlisted),
        f"| whatsapp-operator, no tenants | {e1.rss_mb:.0f} | {e1.hwm_mb:.0f} | "
        f"{cpu_percent(e0, e1):.2f} |",
        f"| whatsapp-operator (goal <= 200 MB, < 2 %) | {op1.rss_mb:.0f} | {op1.hwm_mb:.0f} | "
        f"{op_cpu:.2f} |",
        f"| ratio operator / floor | {op1.rss_mb / fl1.rss_mb:.2f} | "
        f"{op1.hwm_mb / fl1.hwm_mb:.2f} | {cpu_ratio} |",
        "",
        f"API server requests while idle, per minute: {total * idle_min:.1f} with {r.tenants} "
        f"tenants, {total0 * empty_min:.1f} with none (all clients: operator, floor, the API "
        f"server itself; our one scrape per window subtracted).",
        "",
        f"| verb | group/resource | per min, no tenants | per min, {r.tenants} tenants |",
        "| --- | --- | --- | --- |",
        *(rows or ["| - | - | 0 | 0 |"]),
    ])  # fmt: skip


async def main(argv: list[str]) -> None:
    args = argparse.ArgumentParser(prog="benchmarks.scale")
    args.add_argument("--tenants", type=int, default=10_000)
    args.add_argument("--namespaces", type=int, default=10)
    args.add_argument("--concurrency", type=int, default=16, help="creates in flight")
    args.add_argument(
        "--graph-rate", type=float, default=100.0,
        help="operator's Graph budget (req/s, burst the same); far above what set-up needs, low "
        "enough that requests queue in the budget, not in the HTTP pool (see the docstring)",
    )  # fmt: skip
    args.add_argument("--setup-timeout", type=float, default=1800.0, help="seconds to all Ready")
    args.add_argument("--settle", type=float, default=15.0, help="seconds before the window")
    args.add_argument("--idle", type=float, default=120.0, help="idle window, seconds")
    args.add_argument("--baseline", type=float, default=60.0, help="window with no tenants, s")
    args.add_argument("--log-dir", type=Path, help="keep the logs here (default: a temp dir)")
    args.add_argument(
        "--daemon-floor", action="store_true", help="also kopf with a daemon per tenant"
    )
    args.add_argument(
        "--trace-memory", type=int, default=0, metavar="FRAMES",
        help="run the operator under tracemalloc (FRAMES deep) and have it log its largest "
        "allocation sites (SIGUSR1) as the idle window starts; inflates its RSS",
    )  # fmt: skip
    opts = args.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = opts.log_dir or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        result = await run(opts, base)
    table = render(result, opts)
    write_results("scale", table)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
