"""The operator's consumer of Meta's notices (operator/whatsapp_operator/pools/notices.py)
against a fake aio_pika: the queue as the receiver declares it, a notice acknowledged only once
its pass settles it (malformed ones at once, counted and logged without their content), the
notices of a lost connection void (the broker hands them out again), no consumer while peering
pauses the replica, the consumer cancelled on a pause and back on the resume, reconnection."""

from __future__ import annotations

import asyncio
import sys
import types
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from whatsapp_contract.webhook import NOTICES_EXCHANGE, NOTICES_QUEUE, notice
from whatsapp_operator.model.notices import Notice
from whatsapp_operator.pools.notices import NoticeListener


class Pause:
    """kopf's operator_paused toggle set, as the listener reads it."""

    def __init__(self, on: bool = False) -> None:
        self.on = on
        self.changed = asyncio.Condition()

    def is_on(self) -> bool:
        return self.on

    async def wait_for(self, state: bool) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: self.on == state)

    async def turn(self, state: bool) -> None:
        async with self.changed:
            self.on = state
            self.changed.notify_all()


class Callbacks(list[Callable[..., Any]]):
    def add(self, callback: Callable[..., Any]) -> None:
        self.append(callback)

    def fire(self) -> None:
        for callback in self:
            callback(None, None)


class Message:
    def __init__(self, body: bytes, broker: Broker) -> None:
        self.body = body
        self.broker = broker

    async def ack(self) -> None:
        self.broker.acked.append(self.body)


class Broker:
    """A stand-in for aio_pika; records what the listener declared, consumed and acked."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.attempts = 0
        self.connections: list[Any] = []
        self.declared: list[tuple[Any, ...]] = []
        self.consumers: list[Callable[[Any], Any]] = []
        self.cancelled: list[str] = []
        self.acked: list[bytes] = []
        self.prefetch: list[int] = []

    async def connect(self, url: str) -> Any:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionRefusedError("broker down")
        broker = self

        class Queue:
            async def bind(self, exchange: str, routing_key: str) -> None:
                broker.declared.append(("bind", exchange, routing_key))

            async def consume(self, callback: Callable[[Any], Any]) -> str:
                broker.consumers.append(callback)
                return f"ctag-{len(broker.consumers)}"

            async def cancel(self, tag: str) -> None:
                broker.cancelled.append(tag)

        class Channel:
            close_callbacks = Callbacks()

            async def set_qos(self, *, prefetch_count: int) -> None:
                broker.prefetch.append(prefetch_count)

            async def declare_exchange(self, name: str, kind: Any, *, durable: bool) -> str:
                broker.declared.append(("exchange", name, kind, durable))
                return name

            async def declare_queue(self, name: str, *, durable: bool, arguments: Any) -> Queue:
                broker.declared.append(("queue", name, durable, arguments))
                return Queue()

        class Connection:
            close_callbacks = Callbacks()

            async def channel(self) -> Channel:
                return Channel()

            async def __aenter__(self) -> Connection:
                return self

            async def __aexit__(self, *exc: object) -> None:
                pass

        self.connections.append(Connection())
        return self.connections[-1]

    async def deliver(self, body: bytes) -> None:
        await self.consumers[-1](Message(body, self))

    def module(self) -> types.ModuleType:
        module = types.ModuleType(f"fake_aio_pika_{uuid.uuid4().hex}")
        module.connect = self.connect  # type: ignore[attr-defined]
        module.ExchangeType = types.SimpleNamespace(TOPIC="topic")  # type: ignore[attr-defined]
        return module


async def wait_until(condition: Callable[[], bool], seconds: float = 3.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - the listener's task has no event for it
            await asyncio.sleep(0.005)


def malformed_count() -> float:
    labels = {"kind": "unreadable", "outcome": "malformed"}
    return REGISTRY.get_sample_value("whatsapp_operator_notices_total", labels) or 0.0


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Broker:
    fake = Broker(failures=1)
    monkeypatch.setitem(sys.modules, "aio_pika", fake.module())
    monkeypatch.setattr("whatsapp_operator.pools.consumer.backoff", lambda n, **_: 0.01 * n)
    return fake


async def test_declares_consumes_acks_and_reconnects(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[Notice] = []
    listener = NoticeListener("amqp://fake", got.append)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.connected.wait(), 3.0)
        assert broker.attempts == 2  # refused once, then up
        assert broker.declared == [
            ("exchange", NOTICES_EXCHANGE, "topic", True),
            ("queue", NOTICES_QUEUE, True, {"x-queue-type": "quorum"}),
            ("bind", NOTICES_EXCHANGE, "#"),
        ]
        assert broker.prefetch == [listener.prefetch]
        before = malformed_count()
        secret = b'{"accessToken": "EAAG-not-a-notice"}'
        good = notice(kind="account_update", namespace="shop", name="acme", tenant_id="t_acme",
                      waba_id="1", value={"event": "ACCOUNT_DELETED"}, at=1.8e9)  # fmt: skip
        for body in (good, secret, b"\xff"):
            await broker.deliver(body)
        assert [n.value for n in got] == [{"event": "ACCOUNT_DELETED"}]
        await wait_until(lambda: len(broker.acked) == 2)
        assert broker.acked == [secret, b"\xff"]  # unreadable: none would read better
        assert malformed_count() == before + 2
        assert "EAAG" not in caplog.text
        receipt = got[0].receipt
        assert receipt is not None
        assert not receipt.void
        receipt.settle()  # its pass wrote the tenant's status: now it is acknowledged
        receipt.settle()  # once
        await wait_until(lambda: len(broker.acked) == 3)
        await asyncio.sleep(0.02)
        assert broker.acked == [secret, b"\xff", good]

        broker.connections[-1].close_callbacks.fire()  # the broker went away
        await wait_until(lambda: len(broker.connections) == 2 and listener.connected.is_set())
        await broker.deliver(good)
        assert len(got) == 2
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert "notices unavailable: ConnectionRefusedError" in caplog.text


async def test_a_paused_replica_does_not_consume(broker: Broker) -> None:
    pause = Pause(on=True)
    broker.failures = 0
    listener = NoticeListener("amqp://fake", lambda n: None, paused=pause)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.sleep(0.05)
        assert broker.attempts == 0  # standby: the active replica takes the notices
        await pause.turn(False)
        await asyncio.wait_for(listener.connected.wait(), 3.0)
        assert len(broker.consumers) == 1

        await pause.turn(True)  # peering found a replica of higher priority
        await wait_until(lambda: broker.cancelled == ["ctag-1"] and not listener.connected.is_set())
        await asyncio.sleep(0.05)
        assert broker.attempts == 1  # no reconnection while paused

        await pause.turn(False)
        await wait_until(listener.connected.is_set)
        assert len(broker.consumers) == 2
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_failing_handler_does_not_stop_the_consumer(broker: Broker) -> None:
    def handler(n: Notice) -> None:
        raise RuntimeError("bug")

    listener = NoticeListener("amqp://fake", handler)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.connected.wait(), 3.0)
        good = notice(kind="account_update", namespace="shop", name="acme", tenant_id="t_acme",
                      waba_id="1", value={}, at=1.8e9)  # fmt: skip
        await broker.deliver(good)
        await broker.deliver(good)
        await wait_until(lambda: broker.acked == [good, good])  # a bug: it would do no better
        assert broker.attempts == 2
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_notice_is_acknowledged_only_when_its_pass_settles_it(broker: Broker) -> None:
    """Unsettled when the connection goes (the replica lost, RabbitMQ restarted): never
    acknowledged, and void (the broker delivers it again, that copy is the one applied)."""
    got: list[Notice] = []
    listener = NoticeListener("amqp://fake", got.append)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.connected.wait(), 3.0)
        body = notice(kind="account_update", namespace="shop", name="acme", tenant_id="t_acme",
                      waba_id="1", value={"event": "ACCOUNT_DELETED"}, at=1.8e9)  # fmt: skip
        await broker.deliver(body)
        await asyncio.sleep(0.05)
        assert broker.acked == []  # not written yet: the broker keeps it
        first = got[0].receipt
        assert first is not None

        broker.connections[-1].close_callbacks.fire()  # lost before the pass wrote it
        await wait_until(lambda: len(broker.connections) == 2 and listener.connected.is_set())
        assert first.void
        first.settle()  # a pass that took it before the loss: no ack on a dead channel
        await broker.deliver(body)  # the broker's redelivery, on the new connection
        second = got[1].receipt
        assert second is not None
        assert not second.void
        second.settle()
        await wait_until(lambda: broker.acked == [body])
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
