"""The webhook receiver against a floor, on the same RabbitMQ, in the same run.

Every POST is a distinct, signed status webhook (built and signed before the clock starts)
sent by a load generator of its own (benchmarks/webhook_load.py: keep-alive connections, a
bare asyncio protocol) to

- the floors (benchmarks/webhook_floor.py): a bare aiohttp handler that checks the HMAC and
  publishes the body, persistent and confirmed, to the same quorum queues: as a message of
  its own (one publish per POST), and batched the way the receiver batches (`--batch`: the
  receiver's `batch.Batcher`, so this floor does the same RabbitMQ work per POST);
- `whatsapp-webhook` ingress only (`--run-processor false`): signature, JSON, routing by
  number, one confirmed publish of the routed change;
- `whatsapp-webhook` as deployed by default (its processor in the same process, publishing
  each status as a result event).

All answer 200 only once RabbitMQ confirmed. What was stored is counted at the broker, never
from the servers' own counters: after each run the ingress queues are read out and every
webhook in them counted (a batch counts its entries), and for the full receiver the result
events queued once it drained.

Closed loop (each connection sends when answered) gives the most each server takes; open
loop (a fixed offered rate, latency from when each request was due) gives the latency at the
target rate. On a 2-core machine the load generator, RabbitMQ and the server share the
cores: the CPU table says where they went.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika

from benchmarks import write_results
from benchmarks.cpu import CpuWindow
from whatsapp_contract.webhook import RESULTS_EXCHANGE, ingress_queue
from whatsapp_testkit.procs import free_ports
from whatsapp_testkit.rabbitmq import RabbitMQ
from whatsapp_testkit.services import Service
from whatsapp_testkit.webhook import App, Receiver, number, receiver_config
from whatsapp_testkit.world import wait_for
from whatsapp_webhook.broker import Broker
from whatsapp_webhook.change import BATCH_FORMAT

ROOT = Path(__file__).resolve().parent.parent
SHARDS = 4
APP = App("555000111", "bench-app-secret", "bench-verify-token")
WABA = "5550001000"
PHONES = [f"555000{i:04d}" for i in range(16)]
RESULTS_QUEUE = "bench.webhook.results"


class Floor(Service):
    name = "webhook-floor"

    def __init__(self, log_path: Path, amqp_url: str, *, batch: bool = False) -> None:
        super().__init__(log_path)
        self.amqp_url = amqp_url
        self.batch = batch
        self.port = free_ports(1)[0]

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "benchmarks.webhook_floor", "--port", str(self.port),
                "--shards", str(SHARDS), *(["--batch"] if self.batch else [])]  # fmt: skip

    def env(self) -> dict[str, str]:
        return {**_env(), "WEBHOOK_BENCH_AMQP_URL": self.amqp_url}

    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/readyz"


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(ROOT / "testkit"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "WEBHOOK_BENCH_SECRET": APP.secret}


def _pid(service: Any) -> int:
    proc = getattr(service, "proc", None) or getattr(service, "_proc", None)
    assert proc is not None, f"{service} is not running"
    return int(proc.pid)


@dataclass
class Run:
    server: str
    load: dict[str, Any]
    stored: int  # counted at the broker
    cpu: dict[str, float] = field(default_factory=dict)
    drained: float | None = None  # seconds until the processor's results were all queued

    @property
    def rate(self) -> float:
        return float(self.load["sent"] / self.load["seconds"])

    @property
    def ok(self) -> int:
        return int(self.load["answers"].get("200", 0))


async def depth(rabbit: RabbitMQ, *queues: str, purge: bool = False) -> int:
    """Messages in `queues` now, from the broker itself (queue.declare-ok's message count:
    exact, where `rabbitmqctl list_queues` shows quorum queues' statistics seconds late)."""
    connection = await aio_pika.connect(rabbit.amqp_url)
    async with connection:
        channel = await connection.channel()
        total = 0
        for name in queues:
            queue = await channel.declare_queue(name, passive=True)
            count = queue.declaration_result.message_count
            total += int(count or 0)
            if purge:
                await queue.purge()
        return total


INGRESS_QUEUES = [ingress_queue(i) for i in range(SHARDS)]


def entries(body: bytes) -> int:
    """Webhooks in one ingress message: a batch's entries, else one."""
    parsed = json.loads(body)
    if isinstance(parsed, dict) and parsed.get("format") == BATCH_FORMAT:
        return len(parsed["changes"])
    return 1


async def read_out(rabbit: RabbitMQ) -> int:
    """Every webhook in the ingress queues, counted as the queues are emptied."""
    connection = await aio_pika.connect(rabbit.amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=2000)
        total = 0
        for name in INGRESS_QUEUES:
            queue = await channel.declare_queue(name, passive=True)
            left = int(queue.declaration_result.message_count or 0)
            if not left:
                continue
            async with queue.iterator(no_ack=True) as messages:
                async for message in messages:
                    total += entries(message.body)
                    left -= 1
                    if not left:
                        break
        return total


def stored(rabbit: RabbitMQ) -> int:
    return asyncio.run(read_out(rabbit))


def purge(rabbit: RabbitMQ) -> None:
    asyncio.run(depth(rabbit, *INGRESS_QUEUES, purge=True))


def drive(
    server: Any, rabbit: RabbitMQ, path: str, count: int, concurrency: int, rate: float, tag: str
) -> tuple[dict[str, Any], dict[str, float]]:
    """Run the load generator against `server`: (its report, CPU of the processes)."""
    argv = [sys.executable, "-m", "benchmarks.webhook_load", "--port", str(server.port),
            "--path", path, "--waba", WABA, "--phones", ",".join(PHONES), "--count", str(count),
            "--concurrency", str(concurrency), "--rate", str(rate), "--tag", tag]  # fmt: skip
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_env()) as gen:
        assert gen.stdin is not None
        assert gen.stdout is not None
        assert gen.stdout.readline().strip() == b"ready"
        cpu = CpuWindow({"server": _pid(server), "RabbitMQ": _pid(rabbit)})
        gen.stdin.write(b"go\n")
        gen.stdin.flush()
        report: dict[str, Any] = json.loads(gen.stdout.read())
        used = cpu.used()
    used["load generator"] = float(report["cpu"])
    return report, used


def start_receiver(rabbit: RabbitMQ, base: Path, name: str, processor: bool) -> Receiver:
    config = receiver_config([APP], [number(p, WABA, APP.app_id, pool="bench") for p in PHONES])
    receiver = Receiver(
        base / f"{name}.log", amqp_url=rabbit.amqp_url, config=config,
        config_dir=base / f"{name}-config",
        settings={"run_processor": str(processor).lower(), "ingress_shards": str(SHARDS),
                  "log_level": "WARNING"},
    )  # fmt: skip
    receiver.start()
    return receiver


def ingress_runs(
    rabbit: RabbitMQ, base: Path, opts: argparse.Namespace
) -> tuple[list[Run], list[Run]]:
    """Closed-loop runs (the floors, receiver ingress only) `repeat` times, then one open-loop
    run of each at `--rate`."""
    floor = Floor(base / "floor.log", rabbit.amqp_url)
    floor.start()
    batched = Floor(base / "floor-batched.log", rabbit.amqp_url, batch=True)
    batched.start()
    receiver = start_receiver(rabbit, base, "ingress-only", processor=False)
    closed: list[Run] = []
    opened: list[Run] = []
    try:
        servers = [("floor", floor, "/webhook"), ("batched", batched, "/webhook"),
                   ("ingress", receiver, f"/webhooks/{APP.app_id}")]  # fmt: skip
        for r in range(opts.repeat):
            for name, server, path in servers:
                purge(rabbit)
                load, cpu = drive(
                    server, rabbit, path, opts.posts, opts.concurrency, 0, f"{name}{r}"
                )
                closed.append(Run(name, load, stored(rabbit), cpu))
        count = int(opts.rate * opts.seconds)
        for name, server, path in servers:
            purge(rabbit)
            load, cpu = drive(server, rabbit, path, count, opts.concurrency, opts.rate, f"{name}o")
            opened.append(Run(name, load, stored(rabbit), cpu))
    finally:
        receiver.stop()
        batched.stop()
        floor.stop()
    purge(rabbit)
    return closed, opened


async def declare(rabbit: RabbitMQ) -> None:
    """The receiver's topology (the floor publishes into the same queues)."""
    broker = await Broker.connect(rabbit.amqp_url, name="webhook benchmark")
    try:
        await broker.declare(SHARDS)
    finally:
        await broker.close()


async def results_queue(rabbit: RabbitMQ) -> None:
    connection = await aio_pika.connect(rabbit.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            RESULTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(RESULTS_QUEUE, durable=True)
        await queue.bind(exchange, routing_key="bench.#")
        await queue.purge()


def full_run(rabbit: RabbitMQ, base: Path, opts: argparse.Namespace) -> Run:
    """The receiver with its processor: POSTs/s, and the result events at the broker."""
    asyncio.run(results_queue(rabbit))
    receiver = start_receiver(rabbit, base, "full", processor=True)
    try:
        started = time.monotonic()
        load, cpu = drive(receiver, rabbit, f"/webhooks/{APP.app_id}", opts.posts,
                          opts.concurrency, 0, "full")  # fmt: skip
        ok = int(load["answers"].get("200", 0))
        wait_for(lambda: asyncio.run(depth(rabbit, RESULTS_QUEUE)) >= ok, timeout=600,
                 interval=1.0, what="the processor's result events")  # fmt: skip
        drained = time.monotonic() - started
        return Run("full", load, asyncio.run(depth(rabbit, RESULTS_QUEUE)), cpu, drained)
    finally:
        receiver.stop()


SERVERS = ("floor", "batched", "ingress")
LABELS = {
    "floor": "floor: bare aiohttp, HMAC + one confirmed publish per POST",
    "batched": "floor: bare aiohttp, HMAC + the receiver's batched confirmed publish",
    "ingress": "whatsapp-webhook, ingress only",
    "full": "whatsapp-webhook with its processor (default)",
}


def _median(runs: list[Run], key: str) -> float:
    return statistics.median(float(r.load[key]) for r in runs)


def _stored(runs: list[Run]) -> str:
    ok, kept = sum(r.ok for r in runs), sum(r.stored for r in runs)
    return f"{ok} / {kept}" + ("" if ok == kept else " MISMATCH")


def closed_table(closed: list[Run], full: Run, opts: argparse.Namespace) -> list[str]:
    floor_rate = statistics.median(r.rate for r in closed if r.server == "batched")
    lines = [
        f"Closed loop: {opts.posts} POSTs per run, {opts.concurrency} connections, median of "
        f"{opts.repeat} runs (the full receiver: one run).",
        "",
        "| server | POSTs/s | ratio to the batched floor | p50 ms | p99 ms | 200s / in RabbitMQ |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in SERVERS:
        runs = [r for r in closed if r.server == name]
        rate = statistics.median(r.rate for r in runs)
        lines.append(f"| {LABELS[name]} | {rate:.0f} | {rate / floor_rate:.2f} | "
                     f"{_median(runs, 'p50'):.1f} | {_median(runs, 'p99'):.1f} | "
                     f"{_stored(runs)} |")  # fmt: skip
    lines.append(f"| {LABELS['full']} | {full.rate:.0f} | {full.rate / floor_rate:.2f} | "
                 f"{full.load['p50']:.1f} | {full.load['p99']:.1f} | {full.ok} / "
                 f"{full.stored} result events |")  # fmt: skip
    runs_text = "; ".join(
        f"{name} {', '.join(f'{r.rate:.0f}' for r in closed if r.server == name)}"
        for name in SERVERS
    )
    lines += ["", f"Runs (POSTs/s): {runs_text}. The full receiver's result events were all "
              f"queued {full.drained:.1f} s after its first POST."]  # fmt: skip
    return lines


def open_table(opened: list[Run], opts: argparse.Namespace) -> list[str]:
    lines = [
        f"Open loop: {opts.rate:.0f} POSTs/s offered for {opts.seconds} s, {opts.concurrency} "
        "connections; latency from when each POST was due.",
        "",
        "| server | achieved POSTs/s | p50 ms | p90 ms | p99 ms | max ms | 200s / in RabbitMQ |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in opened:
        load = run.load
        lines.append(f"| {LABELS[run.server]} | {run.rate:.0f} | {load['p50']:.1f} | "
                     f"{load['p90']:.1f} | {load['p99']:.1f} | {load['max']:.1f} | "
                     f"{_stored([run])} |")  # fmt: skip
    return lines


def cpu_table(closed: list[Run], full: Run) -> list[str]:
    def per_post(runs: list[Run], name: str) -> str:
        return f"{statistics.median(r.cpu[name] / r.load['sent'] for r in runs) * 1e6:.0f}"

    groups = {name: [r for r in closed if r.server == name] for name in SERVERS}
    groups["full"] = [full]
    lines = [
        "CPU per POST (microseconds, from /proc: user + system time over the closed-loop runs,",
        "medians):",
        "",
        "| process | floor | batched floor | ingress only | with processor |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in ("server", "RabbitMQ", "load generator"):
        lines.append(f"| {name} | " + " | ".join(per_post(g, name) for g in groups.values()) + " |")
    busy = " | ".join(
        f"{statistics.median(r.cpu['machine busy %'] for r in g):.0f}" for g in groups.values()
    )
    lines.append(f"| machine busy, % of its {os.cpu_count()} cores | {busy} |")
    capacity = " | ".join(
        f"{1 / statistics.median(r.cpu['server'] / r.load['sent'] for r in g):.0f}"
        for g in groups.values()
    )
    lines.append(f"| the server's POSTs per CPU-second (one core of its own) | {capacity} |")
    return lines


async def main(argv: list[str]) -> None:
    args = argparse.ArgumentParser(prog="benchmarks.webhook")
    args.add_argument("--posts", type=int, default=20_000, help="POSTs per closed-loop run")
    args.add_argument("--concurrency", type=int, default=64, help="connections")
    args.add_argument("--repeat", type=int, default=3)
    args.add_argument("--rate", type=float, default=2000.0, help="open loop: POSTs/s offered")
    args.add_argument("--seconds", type=int, default=10, help="open loop: how long")
    opts = args.parse_args(argv)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        rabbit = RabbitMQ().start()
        try:
            await declare(rabbit)
            # in a thread: they block, and count at the broker with asyncio.run
            closed, opened = await asyncio.to_thread(ingress_runs, rabbit, base, opts)
            full = await asyncio.to_thread(full_run, rabbit, base, opts)
        finally:
            rabbit.close()
    table = "\n".join([
        "# Webhook receiver: distinct signed status webhooks, each confirmed into RabbitMQ "
        "before its 200",
        "",
        *closed_table(closed, full, opts),
        "",
        *open_table(opened, opts),
        "",
        *cpu_table(closed, full),
        "",
        "200s / in RabbitMQ: the answers the load generator got, and the webhooks counted at "
        "the broker (the ingress queues read out, a batch counting its entries; the full "
        "receiver: result events queued).",
        f"Machine: {os.cpu_count()} cores; load average (1 min) {load_before:.1f} before the "
        f"run, {os.getloadavg()[0]:.1f} after it (other work on the machine shares the cores).",
    ])  # fmt: skip
    write_results("webhook", table)
