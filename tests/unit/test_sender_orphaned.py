"""A delivery whose broker channel closed while it waited is not sent: RabbitMQ has requeued
it, and sending it here as well would be a duplicate at Meta."""

from __future__ import annotations

import json
from typing import Any

import aio_pika
import httpx
import pytest

from whatsapp_contract.resolved import TenantConfig, tenant_config
from whatsapp_graph.client import GraphClient
from whatsapp_worker.limits import Limiter
from whatsapp_worker.metrics import WorkerMetrics
from whatsapp_worker.policy import RetryPolicy
from whatsapp_worker.sender import Sender
from whatsapp_worker.topology import PoolTopology

TOKEN = "EAAGorphanedtoken0123456789"
TENANT = tenant_config(
    token=TOKEN, tenant_id="acme", waba_id="1001", phone_number_id="2002",
    graph_api_version="v25.0", throughput_level="HIGH",
)  # fmt: skip


class Store:
    def get(self, tenant_id: str) -> TenantConfig | None:
        return TENANT if tenant_id == TENANT.tenant_id else None


class Channel:
    def __init__(self, closed: bool) -> None:
        self.is_closed = closed


class Delivery:
    """The parts of aio_pika's IncomingMessage the sender reads."""

    def __init__(self, channel: str, *, redelivered: bool = False, message_id: str = "m-1") -> None:
        self._channel = channel
        self.delivery_tag = 1
        self.redelivered = redelivered
        self.content_type = self.content_encoding = self.correlation_id = None
        self.type = self.app_id = None
        metadata = {"tenantId": "acme", "phoneNumberId": "2002"}
        if message_id:
            metadata["messageId"] = message_id
        self.body = json.dumps({
            "metadata": metadata,
            "wabaPayload": {"type": "text", "to": "34600000001", "text": {"body": "hi"}},
        }).encode()  # fmt: skip
        self.headers: dict[str, Any] = {}
        self.timestamp = None
        self.message_id = message_id or None
        self.acked = 0
        self.processed = False

    @property
    def channel(self) -> Channel:
        if self._channel == "invalid":  # what aio_pika raises for a closed channel
            raise aio_pika.exceptions.ChannelInvalidStateError
        return Channel(closed=self._channel == "closed")

    async def ack(self) -> None:
        self.acked += 1
        self.processed = True


class Exchange:
    def __init__(self) -> None:
        self.published: list[tuple[aio_pika.Message, str]] = []

    async def publish(self, message: aio_pika.Message, routing_key: str, **_: Any) -> None:
        self.published.append((message, routing_key))


@pytest.mark.parametrize(
    ("channel", "sent"),
    [
        pytest.param("open", 1, id="open: sent, result published, acked"),
        pytest.param("closed", 0, id="closed: not sent, left to the broker"),
        pytest.param("invalid", 0, id="aio_pika refuses the channel: not sent"),
    ],
)
async def test_a_delivery_is_sent_only_while_its_channel_is_open(channel: str, sent: int) -> None:
    posts: list[httpx.Request] = []

    def meta(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        return httpx.Response(200, json={"messages": [{"id": "wamid.1"}]})

    results = Exchange()
    metrics = WorkerMetrics()
    async with httpx.AsyncClient(transport=httpx.MockTransport(meta)) as http:
        sender = Sender(
            topology=PoolTopology("p"), store=Store(), graphs=[GraphClient(http)],  # type: ignore[arg-type]
            limiter=Limiter(), policy=RetryPolicy(), publisher=Exchange(), results=results,  # type: ignore[arg-type]
            metrics=metrics, concurrency=4, inline_wait=2.0,
        )  # fmt: skip
        delivery = Delivery(channel)
        await sender.handle(delivery, 0)  # type: ignore[arg-type]
    assert len(posts) == sent
    assert (delivery.acked, len(results.published)) == (sent, sent)
    requeued = metrics.retried.labels("p", "requeued")._value.get()
    assert requeued == 1 - sent
