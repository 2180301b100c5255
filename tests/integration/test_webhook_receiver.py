"""`whatsapp-webhook` as a real process against a real RabbitMQ: every refusal names its HTTP
answer and the metric that counts it, and every 200 is a message RabbitMQ holds. The broker
is read independently of the receiver: a tap queue bound to `whatsapp.webhooks` (each shard
key) gets a copy of every ingress message, and the messages are counted there."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from whatsapp_contract.webhook import INGRESS_EXCHANGE, RESULTS_EXCHANGE
from whatsapp_testkit.rabbitmq import RabbitMQ
from whatsapp_testkit.webhook import (
    App,
    Receiver,
    body_of,
    number,
    receiver_config,
    status_payload,
)
from whatsapp_testkit.world import new_id, wait_for
from whatsapp_webhook.broker import Broker, PublishFailed
from whatsapp_webhook.change import Change, parse_changes
from whatsapp_webhook.signature import sign

pytestmark = pytest.mark.integration

SHARDS = 4
REJECTED = "whatsapp_webhook_rejected_total"
DROPPED = "whatsapp_webhook_dropped_total"


@dataclass(frozen=True)
class Setup:
    app: App
    other: App  # an app of the config too: a valid secret, but not this number's
    waba: str
    phone: str
    pool: str

    def config(self, *extra_phones: str) -> Any:
        numbers = [number(self.phone, self.waba, self.app.app_id, pool=self.pool)]
        numbers += [number(p, self.waba, self.app.app_id, pool=self.pool) for p in extra_phones]
        return receiver_config([self.app, self.other], numbers)


def new_setup() -> Setup:
    app = App(new_id("9"), f"secret-{uuid.uuid4().hex}", f"verify-{uuid.uuid4().hex}")
    other = App(new_id("9"), f"secret-{uuid.uuid4().hex}", f"verify-{uuid.uuid4().hex}")
    return Setup(app, other, new_id("2"), new_id("3"), f"hook-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def setup() -> Setup:
    return new_setup()


def start_receiver(amqp_url: str, setup: Setup, base: Path, name: str, **settings: str) -> Receiver:
    receiver = Receiver(
        base / f"{name}.log", amqp_url=amqp_url, config=setup.config(),
        config_dir=base / f"{name}-config", settings=settings,
    )  # fmt: skip
    receiver.start()
    return receiver


@pytest.fixture(scope="module")
def receiver(
    rabbitmq: Any, setup: Setup, artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Receiver]:
    base = tmp_path_factory.mktemp("webhook")
    receiver = start_receiver(rabbitmq.amqp_url, setup, base, "webhook-receiver")
    yield receiver
    receiver.stop()
    (artifacts / "webhook-receiver.log").write_bytes(receiver.log_path.read_bytes())


class Tap:
    """A queue bound to every ingress shard: what RabbitMQ confirmed, seen by the test."""

    def __init__(self, url: str, *, durable: bool = False, name: str | None = None) -> None:
        self.url, self.durable = url, durable
        self.name = name or f"test.webhook-tap.{uuid.uuid4().hex[:8]}"
        self.connection: aio_pika.abc.AbstractConnection | None = None
        self.queue: aio_pika.abc.AbstractQueue | None = None

    async def open(self) -> Tap:
        self.connection = await aio_pika.connect(self.url)
        channel = await self.connection.channel()
        exchange = await channel.declare_exchange(
            INGRESS_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
        )
        self.queue = await channel.declare_queue(
            self.name, durable=self.durable, auto_delete=not self.durable
        )
        for shard in range(SHARDS):
            await self.queue.bind(exchange, routing_key=str(shard))
        return self

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()

    async def take(self, app_id: str) -> list[Change]:
        """Every change of `app_id` in the tap now, in order; removes the messages."""
        assert self.queue is not None
        found: list[Change] = []
        while (message := await self.queue.get(no_ack=True, fail=False)) is not None:
            changes, invalid = parse_changes(message.body)
            assert not invalid, message.body[:200]
            found += [change for change in changes if change.app_id == app_id]
        return found


@pytest.fixture
async def tap(rabbitmq: Any, receiver: Receiver) -> AsyncIterator[Tap]:
    opened = await Tap(rabbitmq.amqp_url).open()
    yield opened
    await opened.close()


def counted(receiver: Receiver, name: str, **labels: str) -> float:
    return receiver.metric(name, **labels)


# --- refusals: the answer and the metric ------------------------------------------------------
async def test_missing_signature_is_401_unsigned(
    receiver: Receiver, setup: Setup, tap: Tap
) -> None:
    before = counted(receiver, REJECTED, reason="unsigned")
    answer = receiver.post(
        f"/webhooks/{setup.app.app_id}", status_payload(setup.waba, setup.phone, "w.1")
    )
    assert answer.status == 401
    assert counted(receiver, REJECTED, reason="unsigned") == before + 1
    assert await tap.take(setup.app.app_id) == []


@pytest.mark.parametrize(
    "how", ["another app's secret", "not a signature", "the signature of another body"]
)
async def test_bad_signature_is_403(receiver: Receiver, setup: Setup, tap: Tap, how: str) -> None:
    payload = status_payload(setup.waba, setup.phone, "w.2")
    header = {
        "another app's secret": setup.other.sign(body_of(payload)),
        "not a signature": "sha256=not-hex",
        "the signature of another body": setup.app.sign(body_of(payload) + b" "),
    }[how]
    before = counted(receiver, REJECTED, reason="bad_signature")
    assert receiver.post(f"/webhooks/{setup.app.app_id}", payload, signature=header).status == 403
    if how == "another app's secret":  # on the app-less route that app would be the signer
        header = sign(body_of(payload), b"a secret no app of the config has")
    assert receiver.post("/webhook", payload, signature=header).status == 403
    assert counted(receiver, REJECTED, reason="bad_signature") == before + 2
    assert await tap.take(setup.app.app_id) == []


async def test_unknown_app_is_404(receiver: Receiver, setup: Setup) -> None:
    before = counted(receiver, REJECTED, reason="unknown_app")
    answer = receiver.post(
        "/webhooks/123456789", status_payload(setup.waba, setup.phone, "w"), app=setup.app
    )
    assert answer.status == 404
    assert counted(receiver, REJECTED, reason="unknown_app") == before + 1


async def test_body_not_json_is_400(receiver: Receiver, setup: Setup) -> None:
    before = counted(receiver, REJECTED, reason="not_json")
    assert receiver.post(f"/webhooks/{setup.app.app_id}", b"{not json", app=setup.app).status == 400
    assert counted(receiver, REJECTED, reason="not_json") == before + 1


async def test_not_metas_shape_is_400(receiver: Receiver, setup: Setup) -> None:
    before = counted(receiver, REJECTED, reason="bad_shape")
    answer = receiver.post(
        f"/webhooks/{setup.app.app_id}",
        {"object": "whatsapp_business_account", "entry": [1]},
        app=setup.app,
    )
    assert answer.status == 400
    assert counted(receiver, REJECTED, reason="bad_shape") == before + 1


async def test_oversized_body_is_413(receiver: Receiver, setup: Setup) -> None:
    before = counted(receiver, REJECTED, reason="too_large")
    answer = receiver.announce_length(f"/webhooks/{setup.app.app_id}", 3_000_001, setup.app)
    assert answer.status == 413
    assert counted(receiver, REJECTED, reason="too_large") == before + 1
    assert receiver.running  # and it still serves
    assert receiver.request("GET", "/healthz").status == 200


async def test_unknown_number_is_200_and_dropped(
    receiver: Receiver, setup: Setup, tap: Tap
) -> None:
    before = counted(receiver, DROPPED, reason="unknown_number")
    payload = status_payload(setup.waba, new_id("3"), "w.unknown")
    assert receiver.post(f"/webhooks/{setup.app.app_id}", payload, app=setup.app).status == 200
    assert counted(receiver, DROPPED, reason="unknown_number") == before + 1
    assert await tap.take(setup.app.app_id) == []


async def test_another_apps_signature_cannot_speak_for_this_number(
    receiver: Receiver, setup: Setup, tap: Tap
) -> None:
    before = counted(receiver, DROPPED, reason="app_mismatch")
    payload = status_payload(setup.waba, setup.phone, "w.hostile")
    assert receiver.post(f"/webhooks/{setup.other.app_id}", payload, app=setup.other).status == 200
    assert counted(receiver, DROPPED, reason="app_mismatch") == before + 1
    assert await tap.take(setup.other.app_id) == []


# --- handshake ----------------------------------------------------------------------------------
async def test_handshake_with_the_wrong_token_is_403(receiver: Receiver, setup: Setup) -> None:
    before = counted(receiver, REJECTED, reason="handshake_failed")
    assert receiver.handshake(f"/webhooks/{setup.app.app_id}", "wrong").status == 403
    assert (
        receiver.handshake(f"/webhooks/{setup.app.app_id}", setup.other.verify_token).status == 403
    )
    assert receiver.handshake("/webhook", "wrong").status == 403
    assert counted(receiver, REJECTED, reason="handshake_failed") == before + 3


async def test_handshake_with_the_right_token_answers_the_challenge(
    receiver: Receiver, setup: Setup
) -> None:
    answer = receiver.handshake(f"/webhooks/{setup.app.app_id}", setup.app.verify_token, "987654")
    assert (answer.status, answer.text) == (200, "987654")
    answer = receiver.handshake("/webhook", setup.other.verify_token, "123")
    assert (answer.status, answer.text) == (200, "123")
    assert counted(receiver, "whatsapp_webhook_requests_total", route="/webhook", code="200") >= 1


# --- accepted: in RabbitMQ before the 200 -------------------------------------------------------
async def test_a_signed_status_is_in_rabbitmq_when_answered_200(
    receiver: Receiver, setup: Setup, tap: Tap
) -> None:
    before = counted(receiver, "whatsapp_webhook_ingress_changes_total", field="messages")
    payload = status_payload(setup.waba, setup.phone, f"wamid.{uuid.uuid4().hex}")
    assert receiver.post(f"/webhooks/{setup.app.app_id}", payload, app=setup.app).status == 200
    (change,) = await tap.take(setup.app.app_id)  # already there: no waiting
    assert change.value == payload["entry"][0]["changes"][0]["value"]
    assert [r.pool for r in change.routes] == [setup.pool]
    assert (
        counted(receiver, "whatsapp_webhook_ingress_changes_total", field="messages") == before + 1
    )


@pytest.fixture
async def results(rabbitmq: Any, setup: Setup) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """The pool's result events (a queue bound to `<pool>.#` on whatsapp.results)."""
    connection = await aio_pika.connect(rabbitmq.amqp_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        RESULTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key=f"{setup.pool}.#")
    yield queue
    await connection.close()


async def drain(queue: aio_pika.abc.AbstractQueue, settle: float) -> list[dict[str, Any]]:
    """The events in `queue` once nothing new came for `settle` seconds."""
    events: list[dict[str, Any]] = []
    idle = 0.0
    while idle < settle:
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.1)
            idle += 0.1
            continue
        idle = 0.0
        events.append(json.loads(message.body))
    return events


async def test_a_replayed_delivery_is_200_twice_and_published_once(
    receiver: Receiver, setup: Setup, tap: Tap, results: aio_pika.abc.AbstractQueue
) -> None:
    wamid = f"wamid.{uuid.uuid4().hex}"
    payload = status_payload(setup.waba, setup.phone, wamid, status="delivered")
    body = body_of(payload)
    header = setup.app.sign(body)
    duplicates = counted(receiver, "whatsapp_webhook_duplicates_total", kind="status")
    path = f"/webhooks/{setup.app.app_id}"
    assert receiver.post(path, body, signature=header).status == 200
    assert receiver.post(path, body, signature=header).status == 200  # Meta delivers again
    copies = await tap.take(setup.app.app_id)
    assert len(copies) == 2  # both stored: the ingress does not dedupe
    assert copies[0].change_id == copies[1].change_id  # recognisably the same change
    # the processor publishes the status once and counts the other as a duplicate
    dupes = "whatsapp_webhook_duplicates_total"
    wait_for(lambda: counted(receiver, dupes, kind="status") >= duplicates + 1, timeout=30,
             what="the processor's duplicate count")  # fmt: skip
    events = [e for e in await drain(results, settle=2.0) if e.get("wamid") == wamid]
    assert [e["status"] for e in events] == ["delivered"]


async def test_a_new_config_is_picked_up_without_a_restart(
    receiver: Receiver, setup: Setup, tap: Tap
) -> None:
    added = new_id("3")
    payload = status_payload(setup.waba, added, "w.added")
    assert receiver.post(f"/webhooks/{setup.app.app_id}", payload, app=setup.app).status == 200
    assert await tap.take(setup.app.app_id) == []  # unknown yet: dropped
    receiver.write_config(setup.config(added))
    loaded = counted(receiver, "whatsapp_webhook_config_load_timestamp_seconds")
    wait_for(lambda: counted(receiver, "whatsapp_webhook_config_numbers") == 2, timeout=15)
    assert counted(receiver, "whatsapp_webhook_config_load_timestamp_seconds") > loaded
    assert receiver.post(f"/webhooks/{setup.app.app_id}", payload, app=setup.app).status == 200
    assert len(await tap.take(setup.app.app_id)) == 1
    failures = counted(receiver, "whatsapp_webhook_config_failures_total", reason="invalid")
    receiver.write_config(b'{"schema_version": 1, "apps": "broken"}')  # the last good stays
    bad = "whatsapp_webhook_config_failures_total"
    wait_for(lambda: counted(receiver, bad, reason="invalid") == failures + 1, timeout=15)
    assert receiver.post(f"/webhooks/{setup.app.app_id}", payload, app=setup.app).status == 200
    assert len(await tap.take(setup.app.app_id)) == 1
    receiver.write_config(setup.config())


# --- the broker down: 503, and no 200 without a confirmed message --------------------------------
@pytest.fixture
def node(artifacts: Path) -> Iterator[RabbitMQ]:
    """A RabbitMQ node of this test's own: stopping the session's would disturb others."""
    broker = RabbitMQ(artifacts_dir=artifacts / "rabbitmq-webhook").start()
    yield broker
    broker.close()


async def test_broker_down_is_503_and_nothing_is_200_unless_stored(
    node: RabbitMQ, artifacts: Path, tmp_path: Path
) -> None:
    setup = new_setup()
    receiver = start_receiver(
        node.amqp_url, setup, tmp_path, "webhook-broker-down", publish_timeout="2"
    )
    tap = await Tap(node.amqp_url, durable=True).open()  # durable: it outlives the restart
    await tap.close()
    path = f"/webhooks/{setup.app.app_id}"
    answered: dict[str, int] = {}

    def post(wamid: str) -> int:
        payload = status_payload(setup.waba, setup.phone, wamid)
        answered[wamid] = receiver.post(path, payload, app=setup.app).status
        return answered[wamid]

    try:
        assert post("wamid.before") == 200
        node.stop()
        assert post("wamid.during") == 503
        assert post("wamid.during-2") == 503
        assert receiver.request("GET", "/readyz").status == 503
        assert counted(receiver, "whatsapp_webhook_publish_failures_total") >= 2
        node.start()
        wait_for(lambda: receiver.request("GET", "/readyz").status == 200, timeout=60,
                 what="the receiver reconnected")  # fmt: skip
        assert post("wamid.after") == 200
        again = await Tap(node.amqp_url, durable=True, name=tap.name).open()
        stored = await again.take(setup.app.app_id)
        await again.close()
        wamids = sorted(c.value["statuses"][0]["id"] for c in stored)
        assert wamids == sorted(w for w, status in answered.items() if status == 200)
        assert wamids == ["wamid.after", "wamid.before"]
        assert node.list_queues().get(tap.name, 0) == 0  # all taken: none left uncounted
    finally:
        receiver.stop()
        (artifacts / "webhook-broker-down.log").write_bytes(receiver.log_path.read_bytes())


async def test_an_unroutable_publish_is_not_a_confirm(rabbitmq: Any, receiver: Receiver) -> None:
    """`Broker.publish(mandatory=True)` raises when no queue takes the message (a returned
    message is acked by RabbitMQ too: only `mandatory` tells the two apart)."""
    broker = await Broker.connect(rabbitmq.amqp_url, name="test webhook broker")
    try:
        with pytest.raises(PublishFailed):
            await broker.publish(INGRESS_EXCHANGE, "no-such-shard", b"{}", mandatory=True)
        await broker.publish(INGRESS_EXCHANGE, "no-such-shard", b"{}")  # dropped, not refused
        assert broker.connected
    finally:
        await broker.close()


async def test_sigterm_turns_readiness_off_then_exits_cleanly(
    rabbitmq: Any, artifacts: Path, tmp_path: Path
) -> None:
    setup = new_setup()
    receiver = start_receiver(rabbitmq.amqp_url, setup, tmp_path, "webhook-sigterm",
                              shutdown_delay="2")  # fmt: skip
    proc = receiver.proc
    assert proc is not None
    try:
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: receiver.request("GET", "/readyz").status == 503, timeout=5,
                 what="readiness off")  # fmt: skip
        # still serving during the delay: a webhook now is stored and answered 200
        payload = status_payload(setup.waba, setup.phone, "wamid.late")
        assert receiver.post(f"/webhooks/{setup.app.app_id}", payload, app=setup.app).status == 200
        assert proc.wait(timeout=30) == 0
    finally:
        receiver.stop()
        (artifacts / "webhook-sigterm.log").write_bytes(receiver.log_path.read_bytes())
    assert "stopped" in receiver.log_path.read_text()
