"""The webhook benchmark's floor, a process of its own (`python -m benchmarks.webhook_floor`):
the least a receiver can do and still keep Meta's promise. A bare aiohttp handler reads the
body, checks `X-Hub-Signature-256` (HMAC-SHA256, constant-time compare), publishes the body
once (persistent, publisher confirms, mandatory; the same aio-pika channel and aiormq
publish as the receiver's `broker.py`) to the same exchange and quorum queues as
`whatsapp-webhook`, and answers 200 when RabbitMQ confirmed it. No config, no routing, no
parsing, no metrics. Same event loop (uvloop) and access log (off) as the receiver.

`--batch`: the body goes through the receiver's own batching (`whatsapp_webhook.batch`:
one message per shard per turn of the event loop, group commit) instead of a message of its
own, so the floor does the same RabbitMQ work per POST as the receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import os
import sys

import aio_pika
import uvloop
from aiohttp import web
from pamqp.commands import Basic

from whatsapp_contract.webhook import INGRESS_EXCHANGE
from whatsapp_webhook.batch import Batcher

SECRET_ENV = "WEBHOOK_BENCH_SECRET"
AMQP_ENV = "WEBHOOK_BENCH_AMQP_URL"


async def serve(port: int, shards: int, batch: bool) -> None:
    secret = os.environ[SECRET_ENV].encode()
    connection = await aio_pika.connect_robust(os.environ[AMQP_ENV])
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    await channel.get_exchange(INGRESS_EXCHANGE, ensure=True)  # declared by the benchmark
    keys = itertools.cycle([str(i) for i in range(shards)])

    async def publish(routing_key: str, body: bytes) -> None:
        underlay = await channel.get_underlay_channel()
        confirm = await underlay.basic_publish(
            body, exchange=INGRESS_EXCHANGE, routing_key=routing_key,
            properties=Basic.Properties(delivery_mode=2), mandatory=True, timeout=5.0,
        )  # fmt: skip
        if not isinstance(confirm, Basic.Ack):
            raise RuntimeError("not acked")

    send = Batcher(publish).publish if batch else publish

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        given = request.headers.get("X-Hub-Signature-256", "").encode()
        expected = b"sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
        if not hmac.compare_digest(expected, given):
            return web.Response(status=403)
        try:  # the receiver's own publish path (broker.py): no aio_pika.Message built
            await send(next(keys), body)
        except Exception:
            return web.Response(status=503)
        return web.Response(text="ok")

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ready")

    app = web.Application(client_max_size=3_000_001)
    app.router.add_post("/webhook", handle)
    app.router.add_get("/readyz", ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    try:
        await asyncio.Event().wait()  # until SIGTERM ends the process
    finally:
        await runner.cleanup()
        await connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.webhook_floor")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--batch", action="store_true", help="publish through batch.Batcher")
    opts = parser.parse_args(argv)
    uvloop.run(serve(opts.port, opts.shards, opts.batch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
