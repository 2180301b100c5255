"""The operator's consumer of the workers' tenant signals (operator/whatsapp_operator/
tenant_signals.py) against fakes: routing to the registry, one wake per tenant per window
however many signals come, what is ignored, malformed signals, and reconnecting."""

from __future__ import annotations

import asyncio
import logging
import sys
import types
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import REGISTRY

from whatsapp_contract.signals import EXCHANGE, TenantSignal, dump_signal
from whatsapp_operator.pools.signals import SignalListener, SignalRouter
from whatsapp_operator.runtime.registry import Flag, Registry

FP = "sha256:0123456789abcdef"


def signal(kind: str = "credential_rejected", code: int = 190, **kw: Any) -> TenantSignal:
    values: dict[str, Any] = {
        "kind": kind, "tenant_id": "t_acme", "phone_number_id": "106540352242922",
        "pool": "default", "code": code, "token_fingerprint": FP, "worker": "w-1", "at": 1.0,
    }  # fmt: skip
    return TenantSignal(**(values | kw))


def counted(kind: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "whatsapp_operator_signals_total", {"kind": kind, "outcome": outcome}
    )
    return value or 0.0


@dataclass
class Timers:
    """A fake `call_later`: the test runs the due callbacks itself."""

    armed: list[tuple[float, Callable[[], None], FakeTimer]] = field(default_factory=list)

    def __call__(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer()
        self.armed.append((delay, callback, timer))
        return timer

    def fire(self) -> None:
        armed, self.armed = self.armed, []
        for _, callback, timer in armed:
            if not timer.cancelled:
                callback()


@dataclass
class FakeTimer:
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Setup:
    registry: Registry
    router: SignalRouter
    timers: Timers
    now: list[float]
    wakes: list[str]
    paused: list[bool]

    def waker(self, key: tuple[str, str]) -> Flag:
        target = self.registry.wakers[key]
        assert isinstance(target, Flag)
        return target


class Counting(Flag):
    def __init__(self, log: list[str], name: str) -> None:
        super().__init__()
        self.log, self.name = log, name

    def set(self) -> None:
        super().set()
        self.log.append(self.name)


@pytest.fixture
def setup() -> Setup:
    registry = Registry()
    wakes: list[str] = []
    for name in ("acme", "globex"):
        registry.register(("shop", name), Counting(wakes, name))
        registry.keys_by_tenant_id[f"t_{name}"] = ("shop", name)
    now, paused, timers = [100.0], [False], Timers()
    router = SignalRouter(
        registry, paused=lambda: paused[0], clock=lambda: now[0], later=timers, window=5.0
    )
    return Setup(registry, router, timers, now, wakes, paused)


def test_the_first_signal_wakes_the_tenant_at_once_and_files_it(setup: Setup) -> None:
    assert setup.router.route(signal()) == "woken"
    assert setup.wakes == ["acme"]
    pending = setup.registry.take_signals(("shop", "acme"))
    assert pending is not None
    assert pending.refused == {FP}
    assert setup.registry.take_signals(("shop", "acme")) is None  # taken once


def test_a_storm_makes_one_wake_now_and_one_at_the_end_of_the_window(setup: Setup) -> None:
    before = counted("credential_rejected", "coalesced")
    outcomes = [setup.router.route(signal()) for _ in range(1000)]
    assert outcomes.count("woken") == 1
    assert setup.wakes == ["acme"]
    assert len(setup.timers.armed) == 1  # one timer, however many signals
    assert setup.timers.armed[0][0] == pytest.approx(5.0)
    assert counted("credential_rejected", "coalesced") - before == 999
    setup.now[0] += 5.0
    setup.timers.fire()
    assert setup.wakes == ["acme", "acme"]  # the signals after the first are not lost


def test_a_signal_after_the_window_wakes_at_once_again(setup: Setup) -> None:
    setup.router.route(signal())
    setup.now[0] += 2.0
    assert setup.router.route(signal()) == "coalesced"
    assert setup.timers.armed[0][0] == pytest.approx(3.0)  # what is left of the window
    setup.now[0] += 3.0
    setup.timers.fire()
    setup.now[0] += 5.0
    assert setup.router.route(signal()) == "woken"
    assert setup.wakes == ["acme", "acme", "acme"]


def test_windows_are_per_tenant(setup: Setup) -> None:
    assert setup.router.route(signal()) == "woken"
    assert setup.router.route(signal(tenant_id="t_globex")) == "woken"
    assert setup.wakes == ["acme", "globex"]


@pytest.mark.parametrize(
    ("sig", "outcome"),
    [
        pytest.param(signal(tenant_id="t_nobody"), "unknown_tenant", id="unknown tenant"),
        pytest.param(signal("sending_blocked", 131026), "unrelated_code", id="a code that does "
                     "not block"),
        pytest.param(signal("sending_blocked", 131048), "woken", id="a blocking code"),
    ],
)  # fmt: skip
def test_what_is_ignored(setup: Setup, sig: TenantSignal, outcome: str) -> None:
    before = counted(sig.kind, outcome)
    assert setup.router.route(sig) == outcome
    assert counted(sig.kind, outcome) - before == 1
    assert bool(setup.wakes) is (outcome == "woken")
    assert bool(setup.registry.signals) is (outcome == "woken")


def test_a_paused_replica_ignores_signals(setup: Setup) -> None:
    setup.paused[0] = True
    assert setup.router.route(signal()) == "paused"
    assert not setup.wakes
    assert not setup.registry.signals


def test_a_tenant_whose_passes_stopped_is_unknown(setup: Setup) -> None:
    setup.registry.unregister(("shop", "acme"))  # the scheduler forgot it (paused, deleted)
    assert setup.router.route(signal()) == "unknown_tenant"


def test_close_cancels_the_armed_wakes(setup: Setup) -> None:
    setup.router.route(signal())
    setup.router.route(signal())
    setup.router.close()
    setup.timers.fire()
    assert setup.wakes == ["acme"]


def test_the_registry_keeps_what_a_failed_pass_hands_back() -> None:
    registry = Registry()
    key = ("shop", "acme")
    registry.register(key)
    registry.post_signal(key, signal())
    taken = registry.take_signals(key)
    registry.post_signal(key, signal("sending_blocked", 368))
    registry.return_signals(key, taken)
    back = registry.take_signals(key)
    assert back is not None
    assert back.refused == {FP}
    assert back.blocked is not None
    registry.post_signal(key, signal())
    registry.unregister(key)
    assert key not in registry.signals
    registry.return_signals(key, taken)  # a tenant gone meanwhile keeps nothing
    assert key not in registry.signals


# --- SignalListener --------------------------------------------------------------------


def test_received_signals_are_handed_on(caplog: pytest.LogCaptureFixture) -> None:
    got: list[TenantSignal] = []
    listener = SignalListener("amqp://unused", got.append)
    assert listener.receive(dump_signal(signal())) == signal()
    assert got == [signal()]
    assert not caplog.records


def test_malformed_signals_are_dropped_with_one_log_line_per_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    got: list[TenantSignal] = []
    listener = SignalListener("amqp://unused", got.append, clock=lambda: now[0])
    secret = "EAAGsecretTOKENthatMustNeverBeLogged0123456789"
    before = counted("unreadable", "malformed")
    with caplog.at_level(logging.WARNING, "whatsapp_operator.pools.signals"):
        for body in (b"not json", b"[]", f'{{"token": "{secret}"}}'.encode(), b"{}"):
            assert listener.receive(body) is None
        now[0] += 10.0
        listener.receive(b"{}")
    assert not got
    assert counted("unreadable", "malformed") - before == 5
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2  # the first at once, the rest summed up ten seconds later
    assert "dropped 1 malformed" in lines[0]
    assert "dropped 4 malformed" in lines[1]
    assert all(secret not in line for line in lines)


class FakeChannel:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.close_callbacks = Callbacks()

    async def declare_exchange(self, name: str, kind: Any, *, durable: bool) -> str:
        self.broker.declared.append((name, kind, durable))
        return name

    async def declare_queue(self, *, exclusive: bool, auto_delete: bool) -> FakeQueue:
        assert exclusive
        assert auto_delete
        return FakeQueue(self.broker)


class FakeQueue:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker

    async def bind(self, exchange: str, routing_key: str) -> None:
        self.broker.bound.append((exchange, routing_key))

    async def consume(self, callback: Callable[[Any], Any], *, no_ack: bool) -> None:
        self.broker.consumers.append(callback)


class Callbacks:
    def __init__(self) -> None:
        self.callbacks: list[Callable[..., Any]] = []

    def add(self, callback: Callable[..., Any]) -> None:
        self.callbacks.append(callback)

    def fire(self) -> None:
        for callback in self.callbacks:
            callback(None, None)


class FakeConnection:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.close_callbacks = Callbacks()

    async def channel(self) -> FakeChannel:
        return FakeChannel(self.broker)

    async def __aenter__(self) -> FakeConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.broker.closed += 1


class FakeBroker:
    """A stand-in for aio_pika: `failures` connection attempts fail, then it accepts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0
        self.closed = 0
        self.connections: list[FakeConnection] = []
        self.declared: list[tuple[str, Any, bool]] = []
        self.bound: list[tuple[str, str]] = []
        self.consumers: list[Callable[[Any], Any]] = []

    async def connect(self, url: str) -> FakeConnection:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionRefusedError("broker down")
        self.connections.append(FakeConnection(self))
        return self.connections[-1]

    async def deliver(self, body: bytes) -> None:
        await self.consumers[-1](types.SimpleNamespace(body=body))

    def module(self) -> types.ModuleType:
        module = types.ModuleType(f"fake_aio_pika_{uuid.uuid4().hex}")
        module.connect = self.connect  # type: ignore[attr-defined]
        module.ExchangeType = types.SimpleNamespace(TOPIC="topic")  # type: ignore[attr-defined]
        return module


async def wait_until(condition: Callable[[], bool], seconds: float = 3.0) -> None:
    """Poll what the listener's task did (it has no event for a reconnection)."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def test_the_listener_retries_consumes_and_reconnects(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broker = FakeBroker(failures=2)
    monkeypatch.setitem(sys.modules, "aio_pika", broker.module())
    monkeypatch.setattr("whatsapp_operator.pools.consumer.backoff", lambda n, **_: 0.01 * n)
    got: list[TenantSignal] = []
    listener = SignalListener("amqp://fake", got.append)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.connected.wait(), 3.0)
        assert broker.attempts == 3  # two refused, then up
        assert broker.declared == [(EXCHANGE, "topic", True)]
        assert broker.bound == [(EXCHANGE, "#")]
        await broker.deliver(dump_signal(signal()))
        await broker.deliver(b"garbage")
        assert got == [signal()]

        broker.connections[-1].close_callbacks.fire()  # the broker went away
        await wait_until(lambda: len(broker.connections) == 2 and listener.connected.is_set())
        await broker.deliver(dump_signal(signal(tenant_id="t_globex")))
        assert [s.tenant_id for s in got] == ["t_acme", "t_globex"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert "tenant signals unavailable: ConnectionRefusedError" in caplog.text
    assert "connection to RabbitMQ lost" in caplog.text


async def test_a_failing_handler_does_not_stop_the_consumer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = FakeBroker(failures=0)
    monkeypatch.setitem(sys.modules, "aio_pika", broker.module())
    calls: list[TenantSignal] = []

    def handler(sig: TenantSignal) -> None:
        calls.append(sig)
        raise RuntimeError("bug")

    listener = SignalListener("amqp://fake", handler)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.connected.wait(), 3.0)
        await broker.deliver(dump_signal(signal()))
        await broker.deliver(dump_signal(signal()))
        assert len(calls) == 2
        assert broker.attempts == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_a_replaced_token_or_a_block_does_not_hold_back_the_current_token(setup: Setup) -> None:
    assert setup.router.route(signal(token_fingerprint="sha256:ffffffffffffffff")) == "woken"
    assert setup.router.route(signal()) == "woken"  # its own window: the check is not delayed
    assert setup.router.route(signal("sending_blocked", 131048)) == "woken"
    assert setup.router.route(signal()) == "coalesced"
    assert setup.wakes == ["acme", "acme", "acme"]


def test_a_token_in_metas_words_never_reaches_the_pass(setup: Setup) -> None:
    token = "EAAGleakedTOKENinTheDetail0123456789abcdefghij"
    setup.router.route(signal("sending_blocked", 131048, detail=f"blocked, token {token}"))
    pending = setup.registry.take_signals(("shop", "acme"))
    assert pending is not None
    assert pending.blocked is not None
    assert pending.blocked.detail == "blocked, token [REDACTED]"
