"""Enqueue messages: a small Python API and the `whatsapp-send` command.

`Producer.send` checks the message locally first (the producer sees a bad message at once,
with the same reason a worker would dead-letter it for), then publishes the seed's plain JSON
to the pool's exchange with the phone number id as routing key: persistent, with publisher
confirms, so a message `send` returned for is on disk at the broker. Non-Python producers do
the same with any AMQP client:

    exchange: whatsapp.<pool>   routing key: <phoneNumberId>   body: the seed's JSON
    properties: delivery_mode=2, content_type=application/json, message_id (optional)

Python producers that prefer Celery's API call `send_message.delay(message)` instead
(`whatsapp_worker.celery_app`); both land in the same shard.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kombu import Connection, Queue
from kombu import Producer as KombuProducer

from . import tracing
from .callback import callback_id, stamp
from .celery_app import AMQP_ENV, create_app, pool_exchange
from .delivery import TASK_NAME
from .messages import InvalidMessage, message_key, parse_message
from .topology import RING_WEIGHT, PoolTopology
from .tracing import producer_headers


class Unroutable(RuntimeError):
    """The broker had no queue for a message (the pool's topology is missing)."""


def declare_pool(connection: Connection, pool: str, shards: int = 8) -> None:
    """Declare the pool's exchange, shard queues and dead-letter queue (idempotent): the same
    objects, with the same arguments, as the workers declare (`topology.declare_pool`)."""
    topology = PoolTopology(pool, shards)
    channel = connection.default_channel
    exchange = pool_exchange(pool)
    exchange(channel).declare()
    Queue(topology.dead_queue, durable=True, auto_delete=False)(channel).declare()
    for shard in range(shards):
        Queue(
            topology.shard_queue(shard),
            exchange=exchange,
            routing_key=RING_WEIGHT,
            durable=True,
            auto_delete=False,
            queue_arguments=topology.shard_arguments(),
        )(channel).declare()


class Producer:
    def __init__(self, amqp_url: str, pool: str = "default", *, shards: int = 8) -> None:
        self.pool = pool
        self.exchange = pool_exchange(pool)
        self.connection = Connection(amqp_url, transport_options={"confirm_publish": True})
        declare_pool(self.connection, pool, shards)
        self._returned: list[str] = []
        self._producer = self.connection.Producer(exchange=self.exchange, on_return=self._on_return)

    def _on_return(
        self, exception: Exception, exchange: str, routing_key: str, message: Any
    ) -> None:
        self._returned.append(routing_key)

    def send(self, message: Mapping[str, Any], *, validate: bool = True) -> str:
        """Publish one message; returns its id (metadata.messageId, or a content hash)."""
        key = checked_key(message) if validate else None
        publish(self._producer, message, key)
        if self._returned:
            self._returned.clear()
            raise Unroutable(f"no queue of pool {self.pool!r} took the message")
        return key or ""

    def close(self) -> None:
        self.connection.release()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def publish(
    producer: KombuProducer, message: Mapping[str, Any], key: str | None, *, retries: int = 5
) -> None:
    """The one way a send message is published (`Producer.send`, `kubectl whatsapp send`):
    the seed's JSON to the producer's pool exchange, the phone number id as routing key,
    persistent, `mandatory` (the producer's `on_return` hears of an unroutable one), with
    the message id and the enqueue time, and the producer's trace context (`traceparent`)
    when it traces: a `whatsapp.publish` span when it configured `tracing`, else the current
    span of its own OpenTelemetry, if any. Publisher confirms are the connection's
    (`confirm_publish`)."""
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    metadata = message.get("metadata")
    phone = metadata.get("phoneNumberId", "-") if isinstance(metadata, Mapping) else "-"
    with tracing.publish(producer.exchange.name, key):
        producer.publish(
            body,
            headers=producer_headers(),
            routing_key=str(phone),
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            message_id=key,
            timestamp=int(time.time()),
            mandatory=True,
            retry=True,
            retry_policy={"max_retries": retries, "interval_start": 0.2, "interval_step": 0.5},
        )


def checked_key(message: Mapping[str, Any]) -> str:
    """The message's id once it passes the worker's checks (raises InvalidMessage): those of
    `parse_message`, and its `biz_opaque_callback_data` still fitting with the id in front
    (the id is the AMQP message_id `send` publishes it with: `callback.py`)."""
    parsed = parse_message(message)
    key = message_key(parsed)
    stamp(parsed, callback_id(parsed, key))
    return key


def build_message(args: argparse.Namespace) -> dict[str, Any]:
    if args.json:
        raw = sys.stdin.read() if args.json == "-" else Path(args.json).read_text("utf-8")
        loaded: dict[str, Any] = json.loads(raw)
        return loaded
    if not (args.tenant_id and args.phone_number_id and args.to and args.text):
        raise SystemExit("give --json FILE, or --tenant-id, --phone-number-id, --to and --text")
    metadata = {"tenantId": args.tenant_id, "phoneNumberId": args.phone_number_id}
    if args.message_id:
        metadata["messageId"] = args.message_id
    return {
        "metadata": metadata,
        "wabaPayload": {"to": args.to, "type": "text", "text": {"body": args.text}},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="whatsapp-send", description="Enqueue one WhatsApp message for a sender pool."
    )
    parser.add_argument("--amqp-url", default=os.environ.get(AMQP_ENV), help=f"${AMQP_ENV}")
    parser.add_argument("--pool", default="default")
    parser.add_argument(
        "--via",
        choices=("plain", "task"),
        default="plain",
        help="the seed's plain JSON, or a Celery task message",
    )
    parser.add_argument("--json", help="the whole message as JSON (a file, or - for stdin)")
    parser.add_argument("--tenant-id")
    parser.add_argument("--phone-number-id")
    parser.add_argument("--to")
    parser.add_argument("--text")
    parser.add_argument("--message-id")
    args = parser.parse_args(argv)
    if not args.amqp_url:
        parser.error(f"--amqp-url or ${AMQP_ENV} is required")
    message = build_message(args)
    try:
        key = checked_key(message)
    except InvalidMessage as exc:
        print(f"whatsapp-send: invalid message ({exc.reason}): {exc.detail}", file=sys.stderr)
        return 2
    tracing.configure("whatsapp-send")  # the OTEL_* environment decides (tracing.wanted)
    try:
        if args.via == "task":
            app = create_app(args.amqp_url, args.pool)
            with app.connection_for_write() as connection:
                declare_pool(connection, args.pool)
            with tracing.publish(pool_exchange(args.pool).name, key):  # celery_app adds it
                app.send_task(TASK_NAME, args=(message,), kwargs={"pool": args.pool})
        else:
            with Producer(args.amqp_url, args.pool) as producer:
                producer.send(message)
    finally:
        tracing.shutdown()
    print(key)
    return 0
