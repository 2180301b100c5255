"""The webhook benchmark's load generator, a process of its own (`python -m
benchmarks.webhook_load`): signed POSTs of distinct status webhooks, over keep-alive
HTTP/1.1 connections, as lean as it can be (a bare asyncio protocol writing pre-built
requests) since it shares the machine's cores with what it measures.

Every body is built and signed before the clock starts. Closed loop (`--rate 0`): each
connection sends its next request when the previous one is answered (the most the server
takes). Open loop (`--rate R`): request i is due at start + i/R, whatever came back before;
its latency counts from when it was due (a request waiting for a free connection is late).

Prints one JSON object: sent, answers by status code, seconds, latency percentiles (ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any, cast

import uvloop

from whatsapp_testkit.webhook import status_payload
from whatsapp_webhook.signature import SIGNATURE_HEADER, sign

SECRET_ENV = "WEBHOOK_BENCH_SECRET"


class Connection(asyncio.Protocol):
    """One keep-alive connection: a request at a time, the answer's status code back."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        at = head.find(b"content-length:")
        stop = head.find(b"\r\n", at)
        length = 0 if at < 0 else int(head[at + 15 : stop if stop >= 0 else len(head)])
        if len(self.buffer) < end + 4 + length:
            return
        status = int(self.buffer[9:12])
        self.buffer = self.buffer[end + 4 + length :]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed by the server"))

    async def send(self, request: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


def requests(opts: argparse.Namespace, secret: bytes) -> list[bytes]:
    """Pre-built, pre-signed POSTs of distinct status webhooks (one per wamid)."""
    phones = opts.phones.split(",")
    built = []
    for i in range(opts.count):
        phone = phones[i % len(phones)]
        payload = status_payload(opts.waba, phone, f"wamid.{opts.tag}.{i}", status="delivered",
                                 recipient=f"1555{i % 10_000_000:07d}")  # fmt: skip
        body = json.dumps(payload).encode()
        head = (
            f"POST {opts.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{SIGNATURE_HEADER}: {sign(body, secret)}\r\n\r\n"
        )
        built.append(head.encode() + body)
    return built


async def closed_loop(conns: list[Connection], reqs: list[bytes]) -> tuple[list[float], list[int]]:
    latencies: list[float] = []
    codes: list[int] = []
    todo = iter(reqs)

    async def worker(conn: Connection) -> None:
        for request in todo:
            started = time.perf_counter()
            codes.append(await conn.send(request))
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker(c) for c in conns))
    return latencies, codes


async def open_loop(
    conns: list[Connection], reqs: list[bytes], rate: float
) -> tuple[list[float], list[int]]:
    latencies: list[float] = []
    codes: list[int] = []
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for conn in conns:
        idle.put_nowait(conn)
    start = time.perf_counter()

    async def one(request: bytes, due: float) -> None:
        conn = await idle.get()
        try:
            codes.append(await conn.send(request))
            latencies.append(time.perf_counter() - due)
        finally:
            idle.put_nowait(conn)

    tasks = []
    for i, request in enumerate(reqs):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, due)))
    await asyncio.gather(*tasks)
    return latencies, codes


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


async def run(opts: argparse.Namespace) -> dict[str, Any]:
    reqs = requests(opts, os.environ[SECRET_ENV].encode())
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(opts.concurrency):
        _, conn = await loop.create_connection(Connection, "127.0.0.1", opts.port)
        conns.append(conn)
    print("ready", flush=True)  # the parent opens its CPU window, then says go
    sys.stdin.readline()
    cpu = time.process_time()
    started = time.perf_counter()
    if opts.rate > 0:
        latencies, codes = await open_loop(conns, reqs, opts.rate)
    else:
        latencies, codes = await closed_loop(conns, reqs)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    answers: dict[str, int] = {}
    for code in codes:
        answers[str(code)] = answers.get(str(code), 0) + 1
    return {
        "sent": len(codes), "answers": answers, "seconds": seconds,
        "p50": percentile(latencies, 0.50), "p90": percentile(latencies, 0.90),
        "p99": percentile(latencies, 0.99), "max": max(latencies) * 1000, "cpu": cpu,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.webhook_load")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--waba", required=True)
    parser.add_argument("--phones", required=True, help="comma-separated phone number ids")
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=0.0, help="POSTs/s offered; 0: closed loop")
    parser.add_argument("--tag", default="run", help="makes every run's wamids distinct")
    opts = parser.parse_args(argv)
    print(json.dumps(uvloop.run(run(opts))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
