"""One sender worker process against a raw async httpx floor, on the same simulator, same run.

Throughput: N messages are queued in RabbitMQ first (a backlog), then one `whatsapp-worker`
process (Celery hosting the sender service: consume, validate, limit, send, result event,
ack) drains them; the rate is taken from the simulator's own arrival times. The floor posts
the same payloads straight to the simulator with a bare `httpx.AsyncClient` and the same
number of requests in flight: no broker, no validation, no limits.

Latency: messages enqueued at a steady 100 msg/s; enqueue -> request at the simulator, p50
and p99. Runs are repeated and medians reported (2 noisy cores; the simulator, RabbitMQ and
the worker share them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks import write_results
from whatsapp_graph.simulator.client import SimulatorAdmin
from whatsapp_testkit.amqp import Broker
from whatsapp_testkit.pools import PoolWorld, new_pool_name, recipient
from whatsapp_testkit.rabbitmq import RabbitMQ
from whatsapp_testkit.services import GraphSimulator, Worker
from whatsapp_worker.messages import parse_message

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


async def floor(sim_url: str, pool: PoolWorld, count: int, concurrency: int) -> float:
    """The same POSTs, straight from a bare httpx client."""
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

        started = time.perf_counter()
        await asyncio.gather(*(one(clients[i % clients_count]) for i in range(concurrency)))
        return count / (time.perf_counter() - started)


async def worker_throughput(
    rabbit: RabbitMQ, sim: GraphSimulator, admin: SimulatorAdmin, base: Path, count: int,
    settings: dict[str, str],
) -> tuple[float, float]:  # fmt: skip
    """(messages/s, worker RSS in MB) for one worker draining a backlog of `count`."""
    pool = make_pool(admin, base)
    async with Broker(rabbit.amqp_url, pool.name) as broker:
        await broker.publish(messages(pool, count))
        worker = Worker(
            base / f"{pool.name}.log", amqp_url=rabbit.amqp_url, graph_api_url=sim.url,
            config_dir=pool.directory, pool=pool.name, settings=settings,
        )  # fmt: skip
        worker.start()
        try:
            events = await broker.collect(count, within=600)
            rss = _rss_mb(worker.proc.pid if worker.proc else 0)
        finally:
            worker.stop()
    assert len(events) == count, f"{len(events)} of {count} results"
    return arrival_rate(admin, pool), rss


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
        (m["time"] - sent[m["body"]["biz_opaque_callback_data"]]) * 1000
        for t in pool.tenants.values()
        for m in admin.messages(t.phone)
    )
    return statistics.median(lags), lags[int(len(lags) * 0.99) - 1]


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
    opts = args.parse_args(argv)
    settings = {"concurrency": str(opts.concurrency), "prefetch": str(opts.prefetch)}
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
                for _ in range(opts.repeat):
                    pool = make_pool(admin, base)
                    floors.append(await floor(sim.url, pool, opts.messages, opts.concurrency))
                    rate, mem = await worker_throughput(
                        rabbit, sim, admin, base, opts.messages, settings
                    )
                    ours.append(rate)
                    rss.append(mem)
                p50, p99 = await latency_at(rabbit, sim, admin, base, 100, 10)
        finally:
            sim.stop()
            rabbit.close()
    f, o = statistics.median(floors), statistics.median(ours)
    table = "\n".join([
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
    ])  # fmt: skip
    write_results("sending", table)
