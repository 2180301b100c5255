"""The worker with what the webhook receiver publishes (issue 18), on real RabbitMQ and the
simulator: a send whose answer never came (a timeout after Meta accepted it) is settled from
its status event, without a second call to Meta; without one it is sent again; a free-form
message needs the customer's message of the last 24 hours, a template does not. First with
status and window events published here the way the receiver publishes them (the contract's
`status_event` and `window_record`), then through the whole chain: the simulator's webhooks,
signed, to a real `whatsapp-webhook`. Calls are counted at the simulator.

The helpers here (a pool's own Meta app with the receiver, the worker's result events apart
from the receiver's, arrivals at the simulator by message id) serve the reliability scenarios
too (test_graph_faults.py, test_sender_replicas.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from conftest import ISSUED_TOKENS
from whatsapp_contract.webhook import (
    RESULTS_EXCHANGE,
    WINDOWS_EXCHANGE,
    decode_callback,
    status_event,
    window_record,
)
from whatsapp_testkit.amqp import SEEN, Broker
from whatsapp_testkit.pools import PoolWorld, SimTenant, new_pool_name, recipient, sent_to
from whatsapp_testkit.webhook import App, Receiver, number, receiver_config
from whatsapp_testkit.world import new_id

pytestmark = pytest.mark.integration


@pytest.fixture
def pool(make_pool: Any) -> Any:
    return make_pool("hooks")


def receiver_tenant(pool: PoolWorld, throughput: str = "HIGH") -> SimTenant:
    """A tenant whose webhooks reach the receiver: `webhook_app_id` (the pool's app) in its
    resolved config, as the operator writes it when the receiver runs."""
    tenant = pool.add_tenant(throughput=throughput, publish=False)
    config = tenant.config.model_copy(update={"webhook_app_id": pool.app_id})
    pool.tenants[tenant.tenant_id] = SimTenant(config, tenant.token)
    pool.publish()
    return pool.tenants[tenant.tenant_id]


def new_app(sim: Any) -> App:
    """A Meta app of a test's own in the shared simulator: its callback URL is the test's
    receiver, and other tests' apps send no webhooks anywhere."""
    app = App(new_id("4"), f"secret-{secrets.token_hex(8)}", f"verify-{secrets.token_hex(8)}")
    sim.add_app(app.app_id, app.secret)
    return app


@contextlib.contextmanager
def receiving(
    sim: Any,
    rabbitmq: Any,
    pool: PoolWorld,
    app: App,
    artifacts: Path,
    config_dir: Path,
    **knobs: Any,
) -> Iterator[Receiver]:
    """`whatsapp-webhook` for the pool's tenants, the simulator's webhooks of their WABAs
    sent to it (signed with the app's secret), until the block ends; `knobs`: the
    simulator's webhook settings meanwhile (restored after)."""
    before = sim.webhook_config()
    if knobs:
        sim.webhook_config(**knobs)
    numbers = [
        number(t.phone, t.config.waba_id, app.app_id, pool=pool.name, tenant_id=t.tenant_id)
        for t in pool.tenants.values()
    ]
    receiver = Receiver(
        artifacts / f"webhook-{pool.name}.log", amqp_url=rabbitmq.amqp_url,
        config=receiver_config([app], numbers), config_dir=config_dir,
    )  # fmt: skip
    receiver.start()
    try:
        sim.set_webhook(app.app_id, f"{receiver.url}/webhooks/{app.app_id}", app.verify_token)
        for waba in sorted({t.config.waba_id for t in pool.tenants.values()}):
            sim.subscribe_app(waba, app.app_id)
        yield receiver
    finally:
        with contextlib.suppress(Exception):
            sim.remove_webhook(app.app_id)
        if knobs:
            sim.webhook_config(**{k: before[k] for k in knobs})
        receiver.stop()


def lags(statuses: list[dict[str, Any]]) -> str:
    """How late the receiver's status events came, after Meta's timestamp (median, p99, max)."""
    late = sorted(s["at"] - s["timestamp"] for s in statuses if s.get("timestamp"))
    if not late:
        return "no status events"
    pick = lambda q: late[min(len(late) - 1, int(q * len(late)))]  # noqa: E731
    return f"{len(late)} status events, {pick(0.5):.1f} / {pick(0.99):.1f} / {late[-1]:.1f} s late"


def arrived(sim: Any, phones: list[str]) -> list[str]:
    """The message id of every message the simulator accepted for these numbers (from the
    biz_opaque_callback_data the worker sent: `wo1:<id>|<producer's>`), repeats included."""
    ids: list[str] = []
    for phone in phones:
        for message in sim.messages(phone):
            mid, producer = decode_callback(message["body"].get("biz_opaque_callback_data"))
            ids.append(mid or producer or "?")
    return ids


async def publish(url: str, exchange: str, key: str, body: bytes) -> None:
    """As the receiver publishes: to a topic exchange, persistent, confirmed."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        await target.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), key
        )


def sample(worker: Any, name: str, **labels: str) -> float:
    """The sum of the worker's metric `name` over the samples with these labels (0: none)."""
    wanted = {f'{k}="{v}"' for k, v in labels.items()}
    total = 0.0
    for key, value in worker.metrics().items():
        metric, _, rest = key.partition("{")
        if metric == name and wanted <= set(rest.rstrip("}").split(",")):
            total += float(value)
    return total


async def caught_up(worker: Any, streams: tuple[str, ...], within: float = 30.0) -> None:
    """Until the worker has read these webhook streams up to now."""
    deadline = time.monotonic() + within
    name = "whatsapp_worker_webhook_streams_caught_up"
    while True:
        if all(sample(worker, name, stream=stream) == 1 for stream in streams):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker did not read {streams} up to now")
        await asyncio.sleep(0.2)


def at_meta(sim: Any, phone: str) -> dict[str, list[dict[str, Any]]]:
    """The simulator's accepted messages of a number, by the message id in their callback."""
    found: dict[str, list[dict[str, Any]]] = {}
    for message in sim.messages(phone):
        mid, _ = decode_callback(message["body"].get("biz_opaque_callback_data"))
        found.setdefault(mid or "?", []).append(message)
    return found


async def results(
    broker: Broker,
    count: int,
    within: float,
    *,
    distinct: bool = False,
    statuses: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The worker's next result events, until `count` (of distinct message ids, with
    `distinct`) or `within` seconds: the receiver's status events, which share the pool's
    routing keys and message ids, are skipped (kept in `statuses` when given)."""
    assert broker.results is not None
    events: list[dict[str, Any]] = []
    ids: set[Any] = set()
    deadline = time.monotonic() + within
    async with broker.results.iterator() as stream:
        while (len(ids) if distinct else len(events)) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                message = await asyncio.wait_for(stream.__anext__(), left)
            except TimeoutError:
                break
            await message.ack()
            SEEN.append(message.body.decode(errors="replace"))  # for the leak scan
            event = json.loads(message.body)
            if event.get("source") != "webhook":
                events.append(event)
                ids.add(event.get("messageId"))
            elif statuses is not None:
                statuses.append({**event, "readAt": time.time()})
    return events


async def test_a_timed_out_send_is_settled_from_its_status_without_a_second_call(
    pool: PoolWorld, sim: Any, rabbitmq: Any, start_worker: Any
) -> None:
    tenant = receiver_tenant(pool)
    sim.add_fault("timeout", kind="messages", phone_number_id=tenant.phone, seconds=3.0,
                  after_accept=True, count=2)  # fmt: skip
    worker = start_worker(pool.directory, pool.name, graph_timeout=1, status_wait=8,
                          retry_base_delay=0.2, service_window_check="off")  # fmt: skip
    await caught_up(worker, ("statuses",))
    heard, silent = f"{pool.name}-heard", f"{pool.name}-silent"
    async with Broker(rabbitmq.amqp_url, pool.name) as broker:
        await broker.publish([pool.message(tenant, recipient(1), mid=heard)])
        for _ in range(100):  # Meta accepted it (then keeps the worker waiting 3 s)
            if heard in at_meta(sim, tenant.phone):
                break
            await asyncio.sleep(0.05)
        [accepted] = at_meta(sim, tenant.phone)[heard]
        event = status_event(
            pool=pool.name, tenant_id=tenant.tenant_id, phone_number_id=tenant.phone,
            status="sent", wamid=accepted["wamid"], recipient=recipient(1),
            timestamp=int(time.time()), message_id=heard, callback_data=heard, at=time.time(),
        )  # fmt: skip
        await publish(rabbitmq.amqp_url, RESULTS_EXCHANGE, f"{pool.name}.sent",
                      json.dumps(event).encode())  # fmt: skip
        [first] = await results(broker, 1, within=30)
        # the control: no status for this one, so it is sent again after status_wait
        await broker.publish([pool.message(tenant, recipient(2), mid=silent)])
        [second] = await results(broker, 1, within=40)
        await asyncio.sleep(2.0)  # time for a second call of the first, were there one
    arrivals = at_meta(sim, tenant.phone)
    assert (first["messageId"], first["status"], first["wamid"], first["resolvedBy"]) == (
        heard, "accepted", accepted["wamid"], "webhook",
    )  # fmt: skip
    assert len(arrivals[heard]) == 1  # one call at Meta: not sent again
    assert arrivals[heard][0]["body"]["to"] == sent_to(recipient(1))
    assert second["messageId"] == silent
    assert "resolvedBy" not in second
    assert len(arrivals[silent]) == 2  # no status within status_wait: sent again
    waits = "whatsapp_worker_status_waits_total"
    assert sample(worker, waits, case="timeout", outcome="found") == 1
    assert sample(worker, waits, case="timeout", outcome="quiet") == 1  # nothing else came


TEMPLATE = {"type": "template", "template": {"name": "order_update", "language": {"code": "en_US"}}}


async def test_free_form_messages_need_the_customers_message_of_the_last_24_hours(
    pool: PoolWorld, sim: Any, rabbitmq: Any, start_worker: Any
) -> None:
    tenant = receiver_tenant(pool)
    worker = start_worker(pool.directory, pool.name)
    await caught_up(worker, ("windows",))
    wrote, silent = recipient(11), recipient(12)
    record = window_record(pool=pool.name, phone_number_id=tenant.phone, wa_id=wrote,
                           timestamp=int(time.time()) - 600)  # fmt: skip
    await publish(rabbitmq.amqp_url, WINDOWS_EXCHANGE, pool.name, record)
    mids = {case: f"{pool.name}-{case}" for case in ("wrote", "silent", "template", "old")}
    async with Broker(rabbitmq.amqp_url, pool.name) as broker:
        await broker.publish([
            pool.message(tenant, wrote, mid=mids["wrote"]),  # free-form, window open
            pool.message(tenant, silent, mid=mids["silent"]),  # free-form, no window
            pool.message(tenant, silent, TEMPLATE, mid=mids["template"]),  # a template
        ])  # fmt: skip
        events = {e["messageId"]: e for e in await results(broker, 3, within=30)}
        dead = await broker.dead_letters(expect=1, within=10)
    arrivals = at_meta(sim, tenant.phone)
    assert events[mids["wrote"]]["status"] == "accepted"
    assert events[mids["template"]]["status"] == "accepted"
    refused = events[mids["silent"]]
    assert (refused["status"], refused["reason"], refused["code"]) == (
        "failed", "outside_service_window", 131047,
    )  # fmt: skip
    [(headers, body)] = dead
    assert headers["x-whatsapp-reason"] == "outside_service_window"
    assert json.loads(body)["metadata"]["messageId"] == mids["silent"]
    assert set(arrivals) == {mids["wrote"], mids["template"]}  # the refused one: no call
    assert [m["body"]["to"] for m in arrivals[mids["template"]]] == [sent_to(silent)]


async def window_records(url: str, pool: str) -> tuple[Any, Any]:
    """A queue of this test's own bound to the pool's window records: (connection, queue)."""
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        WINDOWS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key=pool)
    return connection, queue


async def test_through_the_receiver_a_status_settles_a_send_and_a_message_opens_the_window(
    sim: Any, rabbitmq: Any, start_worker: Any, artifacts: Path, tmp_path: Path
) -> None:
    """The whole chain: the simulator's signed webhooks -> `whatsapp-webhook` -> RabbitMQ ->
    the worker's streams."""
    app = new_app(sim)
    pool = PoolWorld(sim, new_pool_name("chain"), tmp_path / "resolved", app.app_id)
    try:
        tenant = receiver_tenant(pool)
        with receiving(sim, rabbitmq, pool, app, artifacts, tmp_path / "receiver"):
            worker = start_worker(pool.directory, pool.name, graph_timeout=1)
            await caught_up(worker, ("statuses", "windows"))
            customer, stranger = recipient(21), recipient(22)
            connection, records = await window_records(rabbitmq.amqp_url, pool.name)
            async with connection:
                sim.inject_inbound(tenant.phone, customer, "Where is my order?")
                for _ in range(300):  # the receiver published the customer's window
                    record = await records.get(no_ack=True, fail=False)
                    if record is not None:
                        break
                    await asyncio.sleep(0.1)
            assert record is not None
            assert json.loads(record.body)["waId"] == customer
            sim.add_fault("timeout", kind="messages", phone_number_id=tenant.phone,
                          seconds=3.0, after_accept=True, count=1)  # fmt: skip
            mids = {case: f"{pool.name}-{case}" for case in ("reply", "cold", "template")}
            async with Broker(rabbitmq.amqp_url, pool.name) as broker:
                await broker.publish([pool.message(tenant, customer, mid=mids["reply"])])
                [reply] = await results(broker, 1, within=30)
                await broker.publish([
                    pool.message(tenant, stranger, mid=mids["cold"]),
                    pool.message(tenant, stranger, TEMPLATE, mid=mids["template"]),
                ])  # fmt: skip
                events = {e["messageId"]: e for e in await results(broker, 2, within=30)}
                dead = await broker.dead_letters(expect=1, within=10)
            await asyncio.sleep(2.0)  # time for a second call of the reply, were there one
    finally:
        ISSUED_TOKENS.extend(pool.issued)
    arrivals = at_meta(sim, tenant.phone)
    assert (reply["messageId"], reply["status"], reply.get("resolvedBy")) == (
        mids["reply"], "accepted", "webhook",
    )  # fmt: skip
    assert [m["wamid"] for m in arrivals[mids["reply"]]] == [reply["wamid"]]  # one call
    assert events[mids["template"]]["status"] == "accepted"
    assert (events[mids["cold"]]["status"], events[mids["cold"]]["reason"]) == (
        "failed", "outside_service_window",
    )  # fmt: skip
    assert [h["x-whatsapp-reason"] for h, _ in dead] == ["outside_service_window"]
    assert set(arrivals) == {mids["reply"], mids["template"]}
