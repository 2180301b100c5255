"""The processor's decisions around I/O (whatsapp_webhook/processor.py) with a fake broker and
fake deliveries: ack only after every confirm, requeue on a failed publish (what was confirmed
is not published again), a copy waits for its original in flight, catch-up when redelivered or
after an idle spell, reject what is not a change."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from whatsapp_contract.webhook import NumberEntry
from whatsapp_webhook.change import Change, batch_body, dump_change
from whatsapp_webhook.processor import Processor, needs_catch_up
from whatsapp_webhook.processor_metrics import ProcessorMetrics

ROUTE = NumberEntry(
    phone_number_id="1065", waba_id="1022", tenant_id="acme", namespace="shop", name="acme",
    pool="eu", app_id="4242",
)  # fmt: skip


class FakeBroker:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, dict[str, Any]]] = []
        self.fail_keys: set[str] = set()  # routing keys whose publish raises
        self.fail_next = 0  # so many next publishes raise
        self.gate: asyncio.Event | None = None  # publishes wait for it when set
        self.connection: Any = None

    async def publish(
        self, exchange: str, routing_key: str, body: bytes, *, message_id: str | None = None,
        headers: Any = None,
    ) -> None:  # fmt: skip
        if self.gate is not None:
            await self.gate.wait()
        if routing_key in self.fail_keys or self.fail_next:
            self.fail_next = max(0, self.fail_next - 1)
            raise RuntimeError("not confirmed")
        self.published.append((exchange, routing_key, json.loads(body)))


@dataclass
class FakeChannel:
    is_closed: bool = False


@dataclass
class FakeDelivery:
    body: bytes
    redelivered: bool = False
    channel: FakeChannel = field(default_factory=FakeChannel)
    settled: list[str] = field(default_factory=list)

    async def ack(self) -> None:
        self.settled.append("ack")

    async def nack(self, requeue: bool = True) -> None:
        self.settled.append(f"nack requeue={requeue}")

    async def reject(self, requeue: bool = False) -> None:
        self.settled.append(f"reject requeue={requeue}")


class FakeLog:
    def __init__(self) -> None:
        self.catch_ups = 0
        self.failures = 0  # the next ones raise

    async def catch_up(self, *, within: float) -> None:
        self.catch_ups += 1
        if self.failures:
            self.failures -= 1
            raise TimeoutError


def delivery(*statuses: tuple[str, str], redelivered: bool = False) -> FakeDelivery:
    value = {
        "metadata": {"phone_number_id": ROUTE.phone_number_id},
        "statuses": [{"id": w, "status": s, "timestamp": "1"} for w, s in statuses],
    }
    change = Change("4242", ROUTE.waba_id, "messages", value, (ROUTE,), 1.0)
    return FakeDelivery(dump_change(change), redelivered=redelivered)


@pytest.fixture
def broker() -> FakeBroker:
    return FakeBroker()


@pytest.fixture
def processor(broker: FakeBroker) -> Processor:
    p = Processor(
        broker, shards=1, worker_name="t", retry_delay=0.0, idle_catch_up=60.0,
        metrics=ProcessorMetrics(CollectorRegistry()),
    )  # fmt: skip
    p.status_log = FakeLog()  # type: ignore[assignment]
    p._shards[0].last_arrival = 1e18  # not idle: no catch-up unless a test says so
    return p


async def handle(processor: Processor, *deliveries: FakeDelivery) -> None:
    shard = processor._shards[0]
    for d in deliveries:
        await processor._decide(shard, d)  # type: ignore[arg-type]
    while shard.tasks:
        await asyncio.gather(*shard.tasks)


def keys(broker: FakeBroker) -> list[str]:
    return [key for _, key, _ in broker.published]


async def test_acked_once_every_publish_is_confirmed(
    processor: Processor, broker: FakeBroker
) -> None:
    d = delivery(("w1", "sent"), ("w2", "delivered"))
    await handle(processor, d)
    assert keys(broker) == ["eu.sent", "eu.delivered"]
    assert d.settled == ["ack"]
    assert (processor.memory.last("w1"), processor.memory.last("w2")) == ("sent", "delivered")


async def test_a_failed_publish_requeues_and_what_was_confirmed_is_not_published_again(
    processor: Processor, broker: FakeBroker
) -> None:
    broker.fail_keys = {"eu.delivered"}
    first = delivery(("w1", "sent"), ("w2", "delivered"))
    await handle(processor, first)
    assert first.settled == ["nack requeue=True"]
    assert keys(broker) == ["eu.sent"]
    assert processor.memory.last("w2") is None  # not confirmed: not known
    assert processor._inflight == {}
    broker.fail_keys = set()
    again = delivery(("w1", "sent"), ("w2", "delivered"), redelivered=True)
    await handle(processor, again)
    assert keys(broker) == ["eu.sent", "eu.delivered"]  # each once
    assert again.settled == ["ack"]


async def test_a_copy_waits_for_its_original_in_flight(
    processor: Processor, broker: FakeBroker
) -> None:
    broker.gate = asyncio.Event()
    original, copy = delivery(("w1", "sent")), delivery(("w1", "sent"))
    shard = processor._shards[0]
    await processor._decide(shard, original)  # type: ignore[arg-type]
    deciding = asyncio.create_task(processor._decide(shard, copy))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    assert not deciding.done()  # planned only once the original's publish is settled
    broker.gate.set()
    await deciding
    await handle(processor)
    assert keys(broker) == ["eu.sent"]
    assert original.settled == copy.settled == ["ack"]


async def test_a_copy_of_a_failed_original_is_published(
    processor: Processor, broker: FakeBroker
) -> None:
    broker.gate = asyncio.Event()
    broker.fail_next = 1
    original, copy = delivery(("w1", "sent")), delivery(("w1", "sent"))
    shard = processor._shards[0]
    await processor._decide(shard, original)  # type: ignore[arg-type]
    deciding = asyncio.create_task(processor._decide(shard, copy))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    broker.gate.set()
    await deciding
    await handle(processor)
    assert original.settled == ["nack requeue=True"]
    assert copy.settled == ["ack"]
    assert keys(broker) == ["eu.sent"]


@pytest.mark.parametrize(
    ("redelivered", "idle_for", "catch_ups"),
    [
        pytest.param(False, 0.0, 0, id="a fresh delivery on a busy shard: no catch-up"),
        pytest.param(True, 0.0, 1, id="a redelivered delivery: catch-up first"),
        pytest.param(False, 120.0, 1, id="the first delivery after an idle spell: catch-up"),
    ],
)
async def test_catch_up_before_a_redelivered_or_first_delivery(
    processor: Processor, redelivered: bool, idle_for: float, catch_ups: int
) -> None:
    processor._shards[0].last_arrival = time.monotonic() - idle_for
    await handle(processor, delivery(("w1", "sent"), redelivered=redelivered))
    assert processor.status_log.catch_ups == catch_ups  # type: ignore[attr-defined]


async def test_a_failed_catch_up_is_tried_again_before_planning(
    processor: Processor, broker: FakeBroker
) -> None:
    processor.status_log.failures = 2  # type: ignore[attr-defined]
    d = delivery(("w1", "sent"), redelivered=True)
    await handle(processor, d)
    assert processor.status_log.catch_ups == 3  # type: ignore[attr-defined]
    assert keys(broker) == ["eu.sent"]
    assert d.settled == ["ack"]


async def test_a_delivery_that_is_not_a_change_is_rejected(
    processor: Processor, broker: FakeBroker
) -> None:
    d = FakeDelivery(b'{"format": 99}')
    await handle(processor, d)
    assert d.settled == ["reject requeue=False"]
    assert broker.published == []


async def test_a_delivery_whose_channel_closed_is_left_alone(
    processor: Processor, broker: FakeBroker
) -> None:
    d = delivery(("w1", "sent"))
    d.channel.is_closed = True
    await handle(processor, d)
    assert d.settled == []
    assert broker.published == []


async def test_duplicates_and_results_are_counted(processor: Processor) -> None:
    await handle(processor, delivery(("w1", "sent"), ("w1", "sent"), ("w1", "delivered")))
    await handle(processor, delivery(("w1", "sent")))
    m = processor.metrics
    assert m.duplicates.labels("status")._value.get() == 2
    assert m.results.labels("sent")._value.get() == 1
    assert m.results.labels("delivered")._value.get() == 1
    assert m.published.labels("status")._value.get() == 2


@pytest.mark.parametrize(
    ("redelivered", "arrived", "last_arrival", "caught_up_at", "expected"),
    [
        pytest.param(False, 100.0, 99.0, -1.0, False, id="busy shard, fresh delivery: no"),
        pytest.param(True, 100.0, 99.0, -1.0, True, id="redelivered: yes"),
        pytest.param(False, 100.0, 94.0, -1.0, True, id="first after more than 5 s idle: yes"),
        pytest.param(False, 100.0, float("-inf"), -1.0, True, id="the shard's first: yes"),
        pytest.param(
            True, 100.0, 99.0, 100.5, False,
            id="redelivered, but a catch-up begun after it arrived covers it: no",
        ),
        pytest.param(
            True, 101.0, 99.0, 100.5, True,
            id="redelivered after the last catch-up began: yes",
        ),
    ],
)  # fmt: skip
def test_needs_catch_up(
    redelivered: bool, arrived: float, last_arrival: float, caught_up_at: float, expected: bool
) -> None:
    assert (
        needs_catch_up(
            redelivered=redelivered, arrived=arrived, last_arrival=last_arrival,
            caught_up_at=caught_up_at, idle=5.0,
        )
        is expected
    )  # fmt: skip


async def test_one_catch_up_covers_the_redeliveries_that_arrived_before_it(
    processor: Processor, broker: FakeBroker
) -> None:
    shard = processor._shards[0]
    arrived = time.monotonic()
    burst = [delivery((f"w{i}", "sent"), redelivered=True) for i in range(5)]
    for d in burst:
        await processor._decide(shard, d, arrived)  # type: ignore[arg-type]
    await handle(processor)
    assert processor.status_log.catch_ups == 1  # type: ignore[attr-defined]
    assert len(broker.published) == 5


def batch(*changes: tuple[tuple[str, str], ...], extra: bytes = b"") -> FakeDelivery:
    """One ingress message holding several changes (batch.py), each a `delivery`'s change."""
    parts = [delivery(*statuses).body for statuses in changes] + ([extra] if extra else [])
    return FakeDelivery(batch_body(parts))


def changes_counted(processor: Processor, outcome: str) -> float:
    return processor.metrics.changes.labels(outcome)._value.get()


async def test_a_batch_is_planned_in_order_and_acked_once(
    processor: Processor, broker: FakeBroker
) -> None:
    d = batch((("w1", "sent"),), (("w1", "delivered"),), (("w2", "sent"),), (("w1", "sent"),))
    await handle(processor, d)
    assert keys(broker) == ["eu.sent", "eu.delivered", "eu.sent"]  # w1's late copy: nothing
    assert d.settled == ["ack"]
    assert changes_counted(processor, "acked") == 4


async def test_a_batch_with_a_failed_publish_is_redone_whole_and_nothing_twice(
    processor: Processor, broker: FakeBroker
) -> None:
    broker.fail_keys = {"eu.delivered"}
    first = batch((("w1", "sent"),), (("w2", "delivered"),))
    await handle(processor, first)
    assert first.settled == ["nack requeue=True"]
    assert changes_counted(processor, "requeued") == 2
    broker.fail_keys = set()
    again = batch((("w1", "sent"),), (("w2", "delivered"),))
    again.redelivered = True
    await handle(processor, again)
    assert keys(broker) == ["eu.sent", "eu.delivered"]  # each once
    assert again.settled == ["ack"]


async def test_a_batch_entry_that_is_not_a_change_is_dropped_alone(
    processor: Processor, broker: FakeBroker
) -> None:
    d = batch((("w1", "sent"),), extra=b'{"format":1,"appId":7}')
    await handle(processor, d)
    assert keys(broker) == ["eu.sent"]
    assert d.settled == ["ack"]
    assert processor.metrics.dropped.labels("invalid_change")._value.get() == 1
