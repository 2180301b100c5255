"""The receiver's one door to RabbitMQ: a robust connection, a confirmed channel, the topology.

A webhook is answered 200 only once RabbitMQ confirmed every message made of it
(publisher confirms, https://www.rabbitmq.com/docs/confirms): `publish` returns when the
broker acked the message and raises `PublishFailed` otherwise (nack, returned as unroutable,
channel or connection lost, broker down, no confirm within `confirm_timeout`). The ingress
answers 503 then and Meta delivers the webhook again later.

The connection is aio-pika's robust one: it reconnects by itself and reopens the channel;
publishes made while it is away fail fast (or at the timeout) rather than wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from pamqp.commands import Basic

from whatsapp_contract.webhook import (
    INBOUND_EXCHANGE,
    INGRESS_EXCHANGE,
    NOTICES_EXCHANGE,
    NOTICES_QUEUE,
    RESULTS_EXCHANGE,
    WINDOWS_EXCHANGE,
    ingress_queue,
)

INGRESS_QUEUE_ARGUMENTS: dict[str, Any] = {
    "x-queue-type": "quorum",
    # one replica consumes a shard at a time: the order and dedupe of a number's statuses
    "x-single-active-consumer": True,
}
NOTICES_QUEUE_ARGUMENTS: dict[str, Any] = {"x-queue-type": "quorum"}
PERSISTENT = 2  # delivery mode


class PublishFailed(Exception):
    """RabbitMQ did not confirm a message (the message names the exchange, never the body)."""


class Broker:
    """One robust connection and one channel with publisher confirms."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        channel: AbstractChannel,
        *,
        confirm_timeout: float = 5.0,
    ) -> None:
        self._connection = connection
        self._channel = channel
        self.confirm_timeout = confirm_timeout

    @classmethod
    async def connect(cls, url: str, *, name: str, confirm_timeout: float = 5.0) -> Broker:
        """Connect (raises when the broker cannot be reached now; reconnects by itself after)."""
        connection = await aio_pika.connect_robust(url, client_properties={"connection_name": name})
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        except BaseException:
            await connection.close()
            raise
        return cls(connection, channel, confirm_timeout=confirm_timeout)

    @property
    def connection(self) -> AbstractRobustConnection:
        """The aio-pika connection (consumers open their own channels on it)."""
        return self._connection

    @property
    def connected(self) -> bool:
        return (
            not self._connection.is_closed
            and self._connection.connected.is_set()
            and not self._channel.is_closed
        )

    async def declare(self, shards: int) -> None:
        """Declare (idempotently) what the receiver publishes to and consumes from."""
        ch = self._channel
        ingress = await ch.declare_exchange(
            INGRESS_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
        )
        for shard in range(shards):
            queue = await ch.declare_queue(
                ingress_queue(shard), durable=True, arguments=INGRESS_QUEUE_ARGUMENTS
            )
            await queue.bind(ingress, routing_key=str(shard))
        for name in (RESULTS_EXCHANGE, INBOUND_EXCHANGE, WINDOWS_EXCHANGE, NOTICES_EXCHANGE):
            await ch.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
        notices = await ch.declare_queue(
            NOTICES_QUEUE, durable=True, arguments=NOTICES_QUEUE_ARGUMENTS
        )
        await notices.bind(NOTICES_EXCHANGE, routing_key="#")

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
        mandatory: bool = False,
    ) -> None:
        """Persistent, confirmed; raises `PublishFailed` unless RabbitMQ confirmed it.

        `mandatory`: a message no queue takes is an error too (the ingress: its shard queues
        always exist), not a silent drop."""
        # aiormq's basic_publish on aio-pika's channel: what `Exchange.publish` does, without
        # building an aio_pika.Message first (measured: a third of the receiver's publish CPU).
        # The channel raises on a nack (DeliveryError) and on a return (PublishError).
        properties = Basic.Properties(
            content_type="application/json",
            delivery_mode=PERSISTENT,
            message_id=message_id,
            headers=dict(headers) if headers else None,
        )
        try:
            if self._channel.is_closed:
                raise aiormq.exceptions.ChannelInvalidStateError("channel closed")
            channel = await self._channel.get_underlay_channel()
            confirm = await channel.basic_publish(
                body, exchange=exchange, routing_key=routing_key, properties=properties,
                mandatory=mandatory, timeout=self.confirm_timeout,
            )  # fmt: skip
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            raise PublishFailed(f"no confirm from RabbitMQ for {exchange!r} in time") from None
        except Exception as exc:  # nack, returned, channel/connection lost: all alike to Meta
            raise PublishFailed(f"{exchange!r}: {type(exc).__name__}") from None
        if not isinstance(confirm, Basic.Ack):
            raise PublishFailed(f"{exchange!r}: not acked ({type(confirm).__name__})")

    async def close(self) -> None:
        await self._connection.close()
