"""The RabbitMQ harness (testkit/whatsapp_testkit/rabbitmq.py) against a node of its own.

A consistent-hash exchange (the worker's pool exchange type) spreads 400 confirmed persistent
messages over 4 durable queues; they survive a restart of the node; a stop closes the port.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest

from whatsapp_testkit.rabbitmq import RabbitMQ, RabbitMQError, amqp_probe

pytestmark = pytest.mark.integration

EXCHANGE = "harness.hash"
QUEUES = [f"harness.shard.{n}" for n in range(4)]
COUNT = 400


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQ]:
    mq = RabbitMQ(artifacts_dir=tmp_path_factory.mktemp("rabbitmq-harness-logs"))
    mq.start()
    print(
        f"\n[rabbitmq] RabbitMQ {mq.version} ({mq.nodename}) started in {mq.startup_seconds:.1f} s",
        file=sys.stderr,
    )
    yield mq
    mq.close()


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


async def publish(url: str) -> None:
    """Declare the exchange and its queues, publish COUNT persistent messages, each confirmed."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(EXCHANGE, "x-consistent-hash", durable=True)
        for name in QUEUES:
            queue = await channel.declare_queue(name, durable=True)
            await queue.bind(exchange, routing_key="1")  # the binding key is the ring weight
        for n in range(COUNT):
            message = aio_pika.Message(
                f"message {n}".encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            )
            await exchange.publish(message, routing_key=f"tenant-{n * 7919}", mandatory=True)


def test_the_node_is_private(node: RabbitMQ) -> None:
    assert node.amqp_url == (f"amqp://{node.user}:{node.password}@127.0.0.1:{node.port}/%2F")
    assert node.nodename.startswith("wa-")  # not rabbit@<host>, the system service's
    assert node.nodename.endswith("@localhost")
    assert len({node.port, node.dist_port, node.epmd_port}) == 3
    assert not {node.port, node.dist_port, node.epmd_port} & {5672, 25672, 4369}
    users = json.loads(node.ctl("list_users", "-q", "--formatter", "json"))
    assert [user["user"] for user in users] == [node.user]  # no guest
    with pytest.raises(RabbitMQError, match="403"):
        amqp_probe(node.port, "guest", "guest")
    with pytest.raises(RabbitMQError, match="403"):
        amqp_probe(node.port, node.user, "wrong-password")
    cookie = Path(node.env()["HOME"]) / ".erlang.cookie"
    assert cookie.stat().st_mode & 0o777 == 0o400
    if os.geteuid() == 0:
        assert cookie.stat().st_uid != 0  # the node runs as the `rabbitmq` user
    assert node.log_path.is_file()
    assert node.management_port is None


def test_messages_spread_over_the_ring_survive_a_restart(node: RabbitMQ) -> None:
    asyncio.run(publish(node.amqp_url))
    counts = {name: n for name, n in node.list_queues().items() if name in QUEUES}
    assert sorted(counts) == QUEUES
    assert all(n > 0 for n in counts.values()), counts
    assert sum(counts.values()) == COUNT

    dist_port, epmd_port = node.dist_port, node.epmd_port
    node.restart()
    print(f"\n[rabbitmq] restarted in {node.startup_seconds:.1f} s", file=sys.stderr)
    assert (node.dist_port, node.epmd_port) == (dist_port, epmd_port)
    assert {name: n for name, n in node.list_queues().items() if name in QUEUES} == counts

    port = node.port
    node.stop()
    assert not node.running
    assert not port_open(port)
    assert not port_open(epmd_port)  # its own epmd went with it
    with pytest.raises(RabbitMQError, match="not running"):
        node.list_queues()
