"""One sender worker process against a raw async httpx floor, on the same simulator, same run.

Throughput: N messages are queued in RabbitMQ first (a backlog), then one `whatsapp-worker`
process (Celery hosting the sender service: consume, validate, limit, send, result event,
ack) drains them; the rate is taken from the simulator's own arrival times. The floor posts
the same payloads straight to the simulator with a bare `httpx.AsyncClient` and the same
number of requests in flight: no broker, no validation, no limits.

Latency: messages enqueued at a steady 100 msg/s; enqueue -> request at the simulator, p50
and p99. Runs are repeated and medians reported (2 noisy cores; the simulator, RabbitMQ and
the worker share them).

CPU: each process's CPU time per message over each run (benchmarks/cpu.py), and how busy
the whole machine was: where the 2 cores went, and whether they were the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks import write_results
from benchmarks.cpu import CpuWindow
from whatsapp_contract.webhook import decode_callback
from whatsapp_simulator.client import SimulatorAdmin
from whatsapp_testkit.amqp import Broker
from whatsapp_testkit.pools import PoolWorld, new_pool_name, recipient
from whatsapp_testkit.rabbitmq import RabbitMQ
from whatsapp_testkit.services import GraphSimulator, Worker
from whatsapp_worker.messages import parse_message
from whatsapp_worker.tracing import ENQUEUED_AT, TRACEPARENT

APP = "777"
PER_CLIENT = 8  # connections per httpx client, as the worker's `connections_per_client`
NUMBERS = 10  # HIGH throughput each (1,000 msg/s at the simulator): the limits never bind


def make_pool(admin: SimulatorAdmin, base: Path) -> PoolWorld:
    pool = PoolWorld(admin, new_pool_name("bench"), base / new_pool_name("mount"), APP)
    for _ in range(NUMBERS):
        pool.add_tenant(throughput="HIGH", publish=False)
    pool.publish()
    return pool


def messages(pool: PoolWorld, count: int) -> list[dict[str, Any]]:
    tenants = list(pool.tenants.values())
    return [
        pool.message(tenants[i % NUMBERS], recipient(i), mid=f"{pool.name}-{i}")
        for i in range(count)
    ]


def arrival_rate(admin: SimulatorAdmin, pool: PoolWorld) -> float:
    times = sorted(
        m["time"] for t in pool.tenants.values() for m in admin.messages(t.phone)
    )  # fmt: skip
    return float((len(times) - 1) / (times[-1] - times[0]))


BENCH, WORKER, BROKER, SIM = "this process", "worker", "RabbitMQ", "simulator"
# --tracing: each message published with a new W3C traceparent and its enqueue time, as a
# traced producer's (whatsapp_worker.tracing.trace_headers) would be
TRACING = {"on": False}


def trace_headers() -> dict[str, Any]:
    return {
        TRACEPARENT: f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01",
        ENQUEUED_AT: f"{time.time():.6f}",
    }


Cpu = dict[str, float]


async def floor(
    sim: GraphSimulator, pool: PoolWorld, count: int, concurrency: int
) -> tuple[float, Cpu]:
    """The same POSTs, straight from a bare httpx client: (messages/s, CPU)."""
    sim_url = sim.url
    bodies = [(m["metadata"]["phoneNumberId"], parse_message(m).payload) for m in
              messages(pool, count)]  # fmt: skip
    tokens = {t.phone: t.token for t in pool.tenants.values()}
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    # the worker's own client layout (several small pools: see WorkerService._http_client)
    clients_count = -(-concurrency // PER_CLIENT)
    limits = httpx.Limits(max_connections=PER_CLIENT, max_keepalive_connections=PER_CLIENT)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(limits=limits, timeout=30))
            for _ in range(clients_count)
        ]

        async def one(http: httpx.AsyncClient) -> None:
            while not queue.empty():
                phone, body = queue.get_nowait()
                response = await http.post(
                    f"{sim_url}/v25.0/{phone}/messages",
                    json=body,
                    headers={"Authorization": f"Bearer {tokens[phone]}"},
                )
                response.raise_for_status()

        cpu = CpuWindow({BENCH: os.getpid(), SIM: _pid(sim)}, alone=frozenset({BENCH}))
        started = time.perf_counter()
        await asyncio.gather(*(one(clients[i % clients_count]) for i in range(concurrency)))
        return count / (time.perf_counter() - started), cpu.used()


def _pid(service: Any) -> int:
    proc = getattr(service, "proc", None) or getattr(service, "_proc", None)
    assert proc is not None, f"{service} is not running"
    return int(proc.pid)


async def worker_throughput(
    rabbit: RabbitMQ, sim: GraphSimulator, admin: SimulatorAdmin, base: Path, count: int,
    settings: dict[str, str],
) -> tuple[float, float, Cpu]:  # fmt: skip
    """(messages/s, worker RSS in MB, CPU) for one worker draining a backlog of `count`."""
    pool = make_pool(admin, base)
    async with Broker(rabbit.amqp_url, pool.name) as broker:
        broker.headers = trace_headers if TRACING["on"] else None
        await broker.publish(messages(pool, count))
        worker = Worker(
            base / f"{pool.name}.log", amqp_url=rabbit.amqp_url, graph_api_url=sim.url,
            config_dir=pool.directory, pool=pool.name, settings=settings,
        )  # fmt: skip
        worker.start()
        cpu = CpuWindow(
            {WORKER: _pid(worker), BROKER: _pid(rabbit), SIM: _pid(sim), BENCH: os.getpid()},
            alone=frozenset({BENCH}),
        )
        try:
            results = await broker.wait_results(count, within=600)
            used = cpu.used()
            rss = _rss_mb(worker.proc.pid if worker.proc else 0)
        finally:
            worker.stop()
    assert results == count, f"{results} of {count} results"
    return arrival_rate(admin, pool), rss, used


async def latency_at(
    rabbit: RabbitMQ, sim: GraphSimulator, admin: SimulatorAdmin, base: Path, rate: int,
    seconds: int,
) -> tuple[float, float]:  # fmt: skip
    """(p50, p99) of enqueue -> request at the simulator, in ms, at a steady `rate`."""
    pool = make_pool(admin, base)
    worker = Worker(
        base / f"{pool.name}.log", amqp_url=rabbit.amqp_url, graph_api_url=sim.url,
        config_dir=pool.directory, pool=pool.name,
    )  # fmt: skip
    worker.start()
    sent: dict[str, float] = {}
    try:
        async with Broker(rabbit.amqp_url, pool.name) as broker:
            broker.headers = trace_headers if TRACING["on"] else None
            for _ in range(300):  # until the worker holds every shard (<= 60 s)
                if worker.metric("whatsapp_worker_shards_held") == 8:
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.5)  # a newly held shard waits out Meta's 1-s window first
            batch = messages(pool, rate * seconds)
            started = time.time()
            for i, message in enumerate(batch):
                delay = started + i / rate - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent[message["metadata"]["messageId"]] = time.time()
                await broker.publish([message])
            await broker.collect(len(batch), within=60)
    finally:
        worker.stop()
    lags = sorted(
        (m["time"] - sent[str(decode_callback(m["body"]["biz_opaque_callback_data"])[0])]) * 1000
        for t in pool.tenants.values()
        for m in admin.messages(t.phone)
    )
    return statistics.median(lags), lags[int(len(lags) * 0.99) - 1]


def cpu_table(floor_cpu: list[Cpu], worker_cpu: list[Cpu], count: int) -> str:
    """CPU per message of each process in the two runs (medians), and the machine's load."""

    def per_message(runs: list[Cpu], name: str) -> str:
        if name not in runs[0]:
            return ""
        return f"{statistics.median(r[name] for r in runs) / count * 1e6:.0f}"

    rows = [
        ("the sender: floor client / worker process", BENCH, WORKER),
        ("the Graph API simulator", SIM, SIM),
        ("RabbitMQ (its whole process tree)", "", BROKER),
        ("this process (waiting: counts the queued result events)", "", BENCH),
    ]
    lines = [
        "CPU per message (microseconds, median of the runs; from /proc, each process's user +",
        "system time over the run):",
        "",
        "| process | floor run | worker run |",
        "| --- | --- | --- |",
        *(f"| {label} | {per_message(floor_cpu, f) if f else ''} | "
          f"{per_message(worker_cpu, w)} |" for label, f, w in rows),
        f"| machine busy, % of its {os.cpu_count()} cores | "
        f"{statistics.median(r['machine busy %'] for r in floor_cpu):.0f} | "
        f"{statistics.median(r['machine busy %'] for r in worker_cpu):.0f} |",
    ]  # fmt: skip
    return "\n".join(lines)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def main(argv: list[str]) -> None:
    args = argparse.ArgumentParser(prog="benchmarks.sending")
    args.add_argument("--messages", type=int, default=10_000)
    args.add_argument("--concurrency", type=int, default=64)
    args.add_argument("--repeat", type=int, default=3)
    args.add_argument("--latency-ms", type=int, default=20)
    args.add_argument("--prefetch", type=int, default=64, help="unacked deliveries per shard")
    args.add_argument(
        "--tracing",
        action="store_true",
        help="the workers trace (OTEL_EXPORTER_OTLP_ENDPOINT: a local OTLP/HTTP sink) and every "
        "message carries a traceparent; needs the [tracing] extra",
    )
    args.add_argument("--name", default="sending", help="benchmarks/results/<name>.md")
    opts = args.parse_args(argv)
    settings = {"concurrency": str(opts.concurrency), "prefetch": str(opts.prefetch)}
    sink = await tracing_sink() if opts.tracing else None
    try:
        table = await _measure(opts, settings)
    finally:
        if sink is not None:
            await sink.stop()
            os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    if sink is not None:
        table += (
            f"\n\nTracing on: the worker exported {sink.spans} spans in {sink.requests} OTLP "
            "requests (queue wait, limiter wait and Graph call per message)."
        )
    else:
        table += "\n\nTracing off (no OTEL_EXPORTER_OTLP_ENDPOINT)."
    write_results(opts.name, table)


async def tracing_sink() -> Any:
    """An OTLP sink the workers export to (inherited environment), and traceparents on."""
    from benchmarks.otlp_sink import OtlpSink  # OpenTelemetry's proto: the [tracing] extra

    sink = await OtlpSink().start()
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.url
    TRACING["on"] = True
    return sink


async def _measure(opts: argparse.Namespace, settings: dict[str, str]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        rabbit = RabbitMQ().start()  # its own directory, readable by the rabbitmq user
        sim = GraphSimulator(base / "sim.log", latency_ms=opts.latency_ms)
        sim.start()
        try:
            with SimulatorAdmin(sim.url) as admin:
                admin.add_app(APP, "bench-secret")
                admin.set_config(message_log_limit=0)
                floors, ours, rss = [], [], []
                floor_cpu: list[Cpu] = []
                worker_cpu: list[Cpu] = []
                for _ in range(opts.repeat):
                    pool = make_pool(admin, base)
                    rate, used = await floor(sim, pool, opts.messages, opts.concurrency)
                    floors.append(rate)
                    floor_cpu.append(used)
                    rate, mem, used = await worker_throughput(
                        rabbit, sim, admin, base, opts.messages, settings
                    )
                    ours.append(rate)
                    rss.append(mem)
                    worker_cpu.append(used)
                p50, p99 = await latency_at(rabbit, sim, admin, base, 100, 10)
        finally:
            sim.stop()
            rabbit.close()
    f, o = statistics.median(floors), statistics.median(ours)
    return "\n".join([
        f"# Sending: one worker process, {opts.messages} queued messages over {NUMBERS} numbers, "
        f"{opts.concurrency} requests in flight, prefetch {opts.prefetch} per shard, simulator "
        f"latency {opts.latency_ms} ms, "
        f"median of {opts.repeat}",
        "",
        "| sender | messages/s | ratio to floor |",
        "| --- | --- | --- |",
        f"| floor: raw httpx POSTs (no broker) | {f:.0f} | 1.00 |",
        f"| whatsapp-worker (RabbitMQ -> Graph API) | {o:.0f} | {o / f:.2f} |",
        "",
        f"Worker RSS after the run: {statistics.median(rss):.0f} MB. Runs (msg/s): floor "
        f"{', '.join(f'{x:.0f}' for x in floors)}; worker {', '.join(f'{x:.0f}' for x in ours)}.",
        f"Enqueue -> request at the simulator at 100 msg/s for 10 s: p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms.",
        "",
        cpu_table(floor_cpu, worker_cpu, opts.messages),
    ])  # fmt: skip
