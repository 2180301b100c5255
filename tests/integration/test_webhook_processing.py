"""The receiver's processing side against a real RabbitMQ (the session's node): changes put on
the ingress shard queues as the ingress does, processed by `Processor`s in this process, and
counted at the broker by taps (queues of the test's own bound to the exchanges the processor
publishes to): each status published once and forward only whatever the duplicates and the
order, nothing published twice when a processor dies between its publishes and its acks,
inbound messages and their windows, notices."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from aio_pika.abc import AbstractIncomingMessage

from whatsapp_contract.webhook import (
    DEFAULT_INGRESS_SHARDS,
    INBOUND_EXCHANGE,
    INGRESS_EXCHANGE,
    NOTICES_EXCHANGE,
    RESULTS_EXCHANGE,
    WINDOWS_EXCHANGE,
    NumberEntry,
    advances,
    encode_callback,
    ingress_shard,
)
from whatsapp_testkit.taps import Tap, per_status
from whatsapp_webhook.broker import Broker
from whatsapp_webhook.change import Change, dump_change
from whatsapp_webhook.processor import Processor

pytestmark = pytest.mark.integration

SHARDS = DEFAULT_INGRESS_SHARDS  # the queues' names are fixed: as the receiver declares them
Feed = Callable[[Change], Coroutine[Any, Any, None]]


def new_route(tag: str, *, phone: str | None = None) -> NumberEntry:
    unique = uuid.uuid4().hex[:8]
    return NumberEntry(
        phone_number_id=phone or str(random.randrange(10**14, 10**15)),
        waba_id=str(random.randrange(10**14, 10**15)), display_phone_number="15550100",
        tenant_id=f"{tag}-{unique}", namespace=f"ns-{unique}", name=f"{tag}-tenant",
        pool=f"{tag}-{unique}", app_id="424242",
    )  # fmt: skip


def statuses_change(route: NumberEntry, *items: tuple[str, str]) -> Change:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100", "phone_number_id": route.phone_number_id},
        "statuses": [
            {"id": wamid, "status": status, "timestamp": "1749416383",
             "recipient_id": "16505551234", "biz_opaque_callback_data": encode_callback(wamid[-6:])}
            for wamid, status in items
        ],
    }  # fmt: skip
    return Change("424242", route.waba_id, "messages", value, (route,), 1.0)


@pytest.fixture
async def broker(rabbitmq: Any) -> AsyncIterator[Broker]:
    b = await Broker.connect(rabbitmq.amqp_url, name="test-feeder")
    await b.declare(SHARDS)
    yield b
    await b.close()


@pytest.fixture
def feed(broker: Broker) -> Feed:
    """Put a change on its shard queue, as the ingress does."""

    async def put(change: Change) -> None:
        await broker.publish(
            INGRESS_EXCHANGE, str(ingress_shard(change.shard_key, SHARDS)), dump_change(change),
            message_id=change.change_id, mandatory=True,
        )  # fmt: skip

    return put


@pytest.fixture
async def processors(rabbitmq: Any) -> AsyncIterator[Callable[..., Any]]:
    """Start processors (each on a Broker of its own); all stopped after the test."""
    started: list[tuple[Processor, Broker]] = []

    async def start(kind: type[Processor] = Processor, **options: Any) -> Processor:
        b = await Broker.connect(rabbitmq.amqp_url, name=f"test-processor-{len(started)}")
        options.setdefault("retry_delay", 0.2)
        p = kind(b, shards=SHARDS, worker_name=f"p{len(started)}", **options)
        await p.start()
        started.append((p, b))
        return p

    yield start
    for p, b in started:
        await p.stop(within=5)
        await b.close()


async def consuming(processor: Processor) -> None:
    """Wait until the processor's status log tail runs (its shard consumers follow at once)."""
    for _ in range(100):
        if processor.status_log.tailing:
            await asyncio.sleep(0.3)
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the status log tail did not start")


def forward_filter(arrivals: list[str]) -> list[str]:
    published: list[str] = []
    for status in arrivals:
        if advances(published[-1] if published else None, status):
            published.append(status)
    return published


async def test_duplicates_and_reorderings_yield_each_status_once_forward_only(
    rabbitmq: Any, feed: Feed, processors: Callable[..., Any]
) -> None:
    route = new_route("dedupe")
    tap = await Tap(rabbitmq.amqp_url, RESULTS_EXCHANGE, f"{route.pool}.*").declare()
    rng = random.Random(18)
    arrivals: dict[str, list[str]] = {}
    changes: list[Change] = []
    for i in range(60):
        wamid = f"wamid.{uuid.uuid4().hex}{i:03d}"
        sequence = ["sent", "delivered"] + (["read"] if i % 3 == 0 else [])
        sequence += rng.sample(sequence, k=rng.randint(0, len(sequence)))  # duplicates
        if i % 2:
            rng.shuffle(sequence)  # reordered
        arrivals[wamid] = sequence
        changes += [statuses_change(route, (wamid, s)) for s in sequence]
    changes.append(statuses_change(route, *[(w, "read") for w in list(arrivals)[:3]]))
    for wamid in list(arrivals)[:3]:
        arrivals[wamid].append("read")
    processor = await processors()
    await consuming(processor)
    for change in changes:  # in order: one number, one shard, one queue
        await feed(change)
    expected = {w: forward_filter(s) for w, s in arrivals.items()}
    total = sum(len(s) for s in expected.values())
    assert await tap.wait_depth(total, 30, settle=1.0) == total
    events = await tap.drain()
    counts = per_status(events)
    assert max(counts.values()) == 1  # each (message, status) once
    published: dict[str, list[str]] = {}
    for event in events:
        published.setdefault(event["wamid"], []).append(event["status"])
    assert published == expected  # forward only, in the order the processor saw them
    assert all(e["messageId"] == e["wamid"][-6:] for e in events)  # joined to the sends
    duplicates = processor.metrics.duplicates.labels("status")._value.get()
    assert duplicates >= len(changes) - total


class DiesBeforeItsAcks(Processor):
    """Publishes, then dies before it acks (its acks never sent)."""

    published_changes = 0

    async def _acknowledge(self, message: AbstractIncomingMessage, changes: int = 1) -> None:
        self.published_changes += changes


@pytest.mark.parametrize("standby", [True, False], ids=["standby-replica", "replica-started-after"])
async def test_a_processor_that_dies_before_its_acks_publishes_nothing_twice(
    rabbitmq: Any, feed: Feed, processors: Callable[..., Any], standby: bool
) -> None:
    route = new_route("takeover")
    tap = await Tap(rabbitmq.amqp_url, RESULTS_EXCHANGE, f"{route.pool}.*").declare()
    first = await processors(DiesBeforeItsAcks, prefetch=200)
    await consuming(first)
    second = await processors() if standby else None  # single active consumer: waits
    wamids = [f"wamid.{uuid.uuid4().hex}" for _ in range(40)]
    changes = [statuses_change(route, (w, s)) for s in ("sent", "delivered") for w in wamids]
    for change in changes:
        await feed(change)
    assert await tap.wait_depth(len(changes), 30) == len(changes)
    assert first.published_changes == len(changes)  # all published, none acked
    await first.broker.connection.close()  # as if killed: its deliveries return, redelivered
    await first.stop(within=1)
    if second is None:
        second = await processors()
    await asyncio.sleep(1.0)
    for _ in range(100):  # the second takes the shard and settles every change
        if second.metrics.changes.labels("acked")._value.get() >= len(changes):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    counts = per_status(await tap.drain())
    assert counts == {(w, s): 1 for w in wamids for s in ("sent", "delivered")}
    assert second.metrics.changes.labels("acked")._value.get() >= len(changes)
    assert second.metrics.duplicates.labels("status")._value.get() >= len(changes)
    assert second.metrics.catch_ups.labels("ok")._value.get() >= 1


async def test_inbound_messages_go_to_the_tenant_and_open_windows(
    rabbitmq: Any, feed: Feed, processors: Callable[..., Any]
) -> None:
    route = new_route("inbound")
    inbound = await Tap(rabbitmq.amqp_url, INBOUND_EXCHANGE, route.tenant_id).declare()
    windows = await Tap(rabbitmq.amqp_url, WINDOWS_EXCHANGE, route.pool).declare()
    wamid = f"wamid.{uuid.uuid4().hex}"
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100", "phone_number_id": route.phone_number_id},
        "contacts": [{"profile": {"name": "Sheena"}, "wa_id": "16505551234"}],
        "messages": [{"from": "16505551234", "id": wamid, "timestamp": "1749416383",
                      "type": "text", "text": {"body": "Does it come in another color?"}}],
    }  # fmt: skip
    change = Change("424242", route.waba_id, "messages", value, (route,), 1700000000.0)
    processor = await processors()
    await consuming(processor)
    await feed(change)
    await feed(change)  # Meta's retry of the same webhook
    assert await inbound.wait_depth(1, 20, settle=1.0) == 1
    assert await windows.wait_depth(2, 20) == 2  # idempotent records: one per copy
    (envelope,) = await inbound.drain()
    assert envelope == {
        "metadata": {
            "tenantId": route.tenant_id, "namespace": route.namespace, "name": route.name,
            "pool": route.pool, "phoneNumberId": route.phone_number_id,
            "displayPhoneNumber": "15550100", "wabaId": route.waba_id,
            "receivedAt": 1700000000.0,
        },
        "value": value,
    }  # fmt: skip
    records = {(r["phoneNumberId"], r["waId"], r["timestamp"]) for r in await windows.drain()}
    assert records == {(route.phone_number_id, "16505551234", 1749416383)}
    assert processor.metrics.duplicates.labels("message")._value.get() >= 1


async def test_notices_go_to_each_tenants_namespace(
    rabbitmq: Any, feed: Feed, processors: Callable[..., Any]
) -> None:
    a = new_route("notice")
    b = a.model_copy(update={"tenant_id": a.tenant_id + "-b", "namespace": a.namespace + "-b"})
    taps = [await Tap(rabbitmq.amqp_url, NOTICES_EXCHANGE, r.namespace).declare() for r in (a, b)]
    value = {"event": "FLAGGED", "display_phone_number": "15550100", "current_limit": "TIER_1K"}
    change = Change("424242", a.waba_id, "phone_number_quality_update", value, (a, b), 1.0)
    ignored = Change("424242", a.waba_id, "message_echoes", {"x": 1}, (a,), 1.0)
    processor = await processors()
    await consuming(processor)
    await feed(ignored)
    await feed(change)
    for tap, route in zip(taps, (a, b), strict=True):
        assert await tap.wait_depth(1, 20, settle=0.5) == 1
        (body,) = await tap.drain()
        assert (body["kind"], body["tenantId"], body["namespace"], body["value"]) == (
            "phone_number_quality_update", route.tenant_id, route.namespace, value,
        )  # fmt: skip
    assert processor.metrics.dropped.labels("unrouted_field")._value.get() >= 1
