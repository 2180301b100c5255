"""Sender workers end to end: real RabbitMQ, real `whatsapp-worker` processes (Celery hosting
the sender service), the Graph API simulator. Each test has a pool (queues) of its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from typing import Any

import aio_pika
import pytest

from whatsapp_contract.resolved import TenantConfig
from whatsapp_contract.signals import EXCHANGE as SIGNALS_EXCHANGE
from whatsapp_contract.signals import TenantSignal, parse_signal
from whatsapp_contract.webhook import decode_callback
from whatsapp_testkit.amqp import Broker
from whatsapp_testkit.pools import (
    PoolWorld,
    SimTenant,
    delivered_ids,
    recipient,
    sent_to,
)
from whatsapp_testkit.reliability import Scenario
from whatsapp_worker.callback import stamp
from whatsapp_worker.celery_app import create_app
from whatsapp_worker.delivery import H_REASON, TASK_NAME
from whatsapp_worker.messages import parse_message

pytestmark = pytest.mark.integration


@pytest.fixture
def pool(make_pool: Any) -> Any:
    return make_pool()


def send_tasks(amqp_url: str, pool: str, messages: list[dict[str, Any]]) -> None:
    """Python producers' way in: Celery's task API (routed by number into the shards)."""
    app = create_app(amqp_url, pool)
    with app.producer_or_acquire() as producer:
        for message in messages:
            app.send_task(TASK_NAME, args=(message,), kwargs={"pool": pool}, producer=producer)


MEDIA = "https://example.com/media/"
PAYLOADS: list[dict[str, Any]] = [
    {"type": "text", "text": {"body": "hello there", "preview_url": False}},
    {"type": "image", "image": {"link": MEDIA + "a.jpg", "caption": "a picture"}},
    {"type": "audio", "audio": {"id": "1234567890"}},
    {"type": "video", "video": {"link": MEDIA + "v.mp4", "caption": "watch"}},
    {"type": "document", "document": {"link": MEDIA + "d.pdf", "filename": "d.pdf"}},
    {"type": "sticker", "sticker": {"id": "998877"}},
    {"type": "location", "location": {"latitude": 40.4, "longitude": -3.7, "name": "Madrid"}},
    {
        "type": "contacts",
        "contacts": [{"name": {"formatted_name": "Ana Ruiz", "first_name": "Ana"}}],
    },
    {
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "Choose"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                    {"type": "reply", "reply": {"id": "no", "title": "No"}},
                ]
            },
        },
    },
    {
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": "Pick one"},
            "action": {
                "button": "Options",
                "sections": [{"title": "S", "rows": [{"id": "r1", "title": "Row 1"}]}],
            },
        },
    },
    {
        "type": "template",
        "template": {
            "name": "order_update",
            "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}],
        },
    },
    {"type": "reaction", "reaction": {"message_id": "wamid.HBgLMTIzNDU2", "emoji": "👍"}},
]


async def test_1000_mixed_messages_through_both_entry_points_arrive_exactly_as_sent(
    pool: PoolWorld, sim: Any, rabbitmq: Any, start_worker: Any
) -> None:
    tenants = [pool.add_tenant(throughput="HIGH") for _ in range(4)]
    start_worker(pool.directory, pool.name)
    messages = [
        pool.message(
            tenants[i % 4], recipient(i), PAYLOADS[i % len(PAYLOADS)], mid=f"{pool.name}-{i}"
        )
        for i in range(1000)
    ]
    expected = {  # with the message id in front of the producer's callback data (issue 18)
        mid: stamp(parse_message(m), mid).payload
        for m in messages
        if (mid := m["metadata"]["messageId"])
    }
    async with Broker(rabbitmq.amqp_url, pool.name) as broker:
        started = time.monotonic()
        await broker.publish(messages[:500])  # the seed's plain JSON, any AMQP producer
        await asyncio.to_thread(send_tasks, rabbitmq.amqp_url, pool.name, messages[500:])
        events = await broker.collect(1000, within=90)
        elapsed = time.monotonic() - started
        assert await broker.dead_letters() == []
    assert Counter(e["status"] for e in events) == {"accepted": 1000}
    assert {e["messageId"] for e in events} == set(expected)
    bodies: dict[str, dict[str, Any]] = {}
    for tenant in tenants:
        for message in sim.messages(tenant.phone):
            mid, _ = decode_callback(message["body"]["biz_opaque_callback_data"])
            bodies[str(mid)] = message
    assert set(bodies) == set(expected)  # each delivered once
    for mid, payload in expected.items():
        assert bodies[mid]["body"] == payload, mid  # exactly as sent (plus messaging_product)
        assert bodies[mid]["token_fingerprint"] == pool_fingerprint(pool, bodies[mid])
    wamids = {e["messageId"]: e["wamid"] for e in events}
    assert all(wamids[mid] == bodies[mid]["wamid"] for mid in expected)
    print(f"\n[figure] 1000 mixed messages (500 plain JSON + 500 Celery tasks): {elapsed:.1f} s")


def pool_fingerprint(pool: PoolWorld, message: dict[str, Any]) -> str:
    """The fingerprint (as the simulator records it) of the token of the message's tenant."""
    from whatsapp_simulator.state import fingerprint

    for tenant in pool.tenants.values():
        if tenant.phone == message["phone_number_id"]:
            return fingerprint(tenant.token)
    raise AssertionError("no tenant for that number")


def malformed(pool: PoolWorld, good: Any, other: Any) -> list[tuple[str, Any, str]]:
    """(case, message or raw bytes, expected reason): each must be dead-lettered as such."""

    def msg(payload: dict[str, Any], **meta: Any) -> dict[str, Any]:
        metadata = {"tenantId": good.tenant_id, "phoneNumberId": good.phone, **meta}
        return {"metadata": metadata, "wabaPayload": payload}

    text = {"to": "34600000001", "type": "text", "text": {"body": "hi"}}
    return [
        ("not json", b"this is not json", "not_json"),
        ("json array", b"[1, 2, 3]", "not_json"),
        ("invalid utf-8", b'{"metadata": "\xff\xfe"}', "not_json"),
        # valid JSON, not encodable as UTF-8: was requeued forever (found by test_properties)
        ("lone surrogate", msg({**text, "biz_opaque_callback_data": "x\ud800"}), "invalid_payload"),
        ("oversized", json.dumps(msg({**text, "text": {"body": "x" * 300_000}})).encode(),
         "too_large"),
        ("no metadata", {"wabaPayload": text}, "invalid_envelope"),
        ("metadata not an object", {"metadata": "t1", "wabaPayload": text}, "invalid_envelope"),
        ("no tenantId", {"metadata": {"phoneNumberId": good.phone}, "wabaPayload": text},
         "invalid_envelope"),
        ("int phoneNumberId", {"metadata": {"tenantId": good.tenant_id,
                                            "phoneNumberId": int(good.phone)},
                               "wabaPayload": text}, "invalid_envelope"),
        ("no wabaPayload", {"metadata": {"tenantId": good.tenant_id,
                                         "phoneNumberId": good.phone}}, "invalid_envelope"),
        ("wabaPayload a string", msg("hello"), "invalid_envelope"),  # type: ignore[arg-type]
        ("no to", msg({"type": "text", "text": {"body": "hi"}}), "invalid_recipient"),
        ("to with letters", msg({**text, "to": "34abc000001"}), "invalid_recipient"),
        ("to too short", msg({**text, "to": "1234"}), "invalid_recipient"),
        ("unknown type", msg({**text, "type": "hologram", "hologram": {}}), "unknown_type"),
        ("type object missing", msg({"to": "34600000001", "type": "image"}), "invalid_payload"),
        ("empty text", msg({**text, "text": {"body": ""}}), "invalid_payload"),
        ("text too long", msg({**text, "text": {"body": "x" * 4097}}), "invalid_payload"),
        ("media id and link", msg({"to": "34600000001", "type": "image",
                                   "image": {"id": "1", "link": MEDIA + "a.jpg"}}),
         "invalid_payload"),
        ("four buttons", msg({"to": "34600000001", "type": "interactive", "interactive": {
            "type": "button", "body": {"text": "?"}, "action": {"buttons": [
                {"type": "reply", "reply": {"id": f"b{i}", "title": "B"}} for i in range(4)]}}}),
         "invalid_payload"),
        ("latitude 91", msg({"to": "34600000001", "type": "location",
                             "location": {"latitude": 91, "longitude": 0}}), "invalid_payload"),
        ("template without language", msg({"to": "34600000001", "type": "template",
                                           "template": {"name": "x"}}), "invalid_payload"),
        ("messaging_product sms", msg({**text, "messaging_product": "sms"}), "invalid_payload"),
        ("unknown top-level key", msg({**text, "priority": "high"}), "invalid_payload"),
        ("another tenant's number", msg(text, phoneNumberId=other.phone), "phone_number_mismatch"),
        ("unknown tenant", msg(text, tenantId="t_nobody"), "tenant_unavailable"),
    ]  # fmt: skip


@pytest.mark.reliability
async def test_malformed_messages_are_dead_lettered_with_their_reason(
    pool: PoolWorld, sim: Any, rabbitmq: Any, start_worker: Any, scenario: Scenario
) -> None:
    good, other = pool.add_tenant(), pool.add_tenant()
    worker = start_worker(pool.directory, pool.name, hold_window=0)
    cases = malformed(pool, good, other)
    assert len(cases) >= 25
    scenario.describe(
        "malformed queue messages",
        load="1 worker, then a good message after them",
        faults=f"{len(cases) + 1} malformed messages ({len({r for _, _, r in cases})} reasons: "
        "not JSON, wrong types, unknown type, oversized, missing metadata, another tenant's "
        "number, unknown tenant...), one through the Celery entry point",
    )
    async with Broker(rabbitmq.amqp_url, pool.name) as broker:
        for case, body, _ in cases:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            # routed by the number the producer named, or any shard for unreadable ones
            await broker.publish([raw], routing_key=good.phone)
            del case
        # and one bad message through the Celery entry point
        await asyncio.to_thread(
            send_tasks, rabbitmq.amqp_url, pool.name, [{"metadata": {}, "wabaPayload": {}}]
        )
        dead = await broker.dead_letters(expect=len(cases) + 1, within=30)
        events = await broker.collect(len(cases) + 1, within=10)
        # the worker keeps going: a good message after all that is delivered
        await broker.publish([pool.message(good, recipient(1), mid=f"{pool.name}-ok")])
        after = await broker.collect(1, within=15)
    reasons = [headers[H_REASON] for headers, _ in dead]
    scenario.record(sent=len(cases) + 1, dead_lettered=len(dead))
    scenario.note(f"dead-letter reasons: {dict(sorted(Counter(reasons).items()))}")
    assert Counter(reasons) == Counter([r for _, _, r in cases] + ["invalid_envelope"])
    bodies = {body for _, body in dead}
    for _, body, _ in cases:  # the original body is kept, byte for byte
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        assert raw in bodies
    assert sorted(e["reason"] for e in events) == sorted(reasons)
    assert all(e["status"] == "failed" for e in events)
    assert after[0]["status"] == "accepted"
    assert sim.messages(other.phone) == []  # nothing went out through the other number
    assert worker.running
    assert worker.metric("whatsapp_worker_messages_failed_total") == len(cases) + 1


async def test_a_5xx_storm_is_retried_to_success(
    pool: PoolWorld, sim: Any, rabbitmq: Any, start_worker: Any
) -> None:
    tenant = pool.add_tenant(throughput="HIGH")
    # the next 150 sends to this number fail: 1.5 failures per message on average
    fault = sim.add_fault(
        "http_status", kind="messages", phone_number_id=tenant.phone, http_status=503,
        count=150,
    )  # fmt: skip
    worker = start_worker(pool.directory, pool.name, retry_max_delay=2)
    try:
        async with Broker(rabbitmq.amqp_url, pool.name) as broker:
            await broker.publish(
                [pool.message(tenant, recipient(i), mid=f"{pool.name}-{i}") for i in range(100)]
            )
            events = await broker.collect(100, within=60)
            assert await broker.dead_letters() == []
    finally:
        with contextlib.suppress(Exception):  # gone already once its count is used up
            sim.remove_fault(fault)
    assert Counter(e["status"] for e in events) == {"accepted": 100}
    assert sorted(delivered_ids(sim, [tenant.phone])) == sorted(e["messageId"] for e in events)
    retries = worker.metric("whatsapp_worker_retries_total")
    assert retries >= 150  # each failed send was retried, none was given up
    print(f"\n[figure] 5xx storm (150 failures): 100 delivered after {retries:.0f} retries")


async def test_a_revoked_token_holds_messages_until_the_rotated_one_is_mounted(
    pool: PoolWorld, sim: Any, rabbitmq: Any, start_worker: Any
) -> None:
    tenant = pool.add_tenant()
    start_worker(pool.directory, pool.name, hold_recheck=1)
    async with Broker(rabbitmq.amqp_url, pool.name) as broker:
        await broker.publish([pool.message(tenant, recipient(0), mid=f"{pool.name}-first")])
        assert (await broker.collect(1, within=15))[0]["status"] == "accepted"
        sim.revoke_token(tenant.token)
        held = [pool.message(tenant, recipient(i), mid=f"{pool.name}-{i}") for i in range(1, 21)]
        await broker.publish(held)
        assert await broker.collect(1, within=4) == []  # held: neither sent nor failed
        assert await broker.dead_letters() == []
        new_token = pool.rotate(tenant.tenant_id)  # the kubelet-style swap of the mount
        events = await broker.collect(20, within=30)
        assert await broker.dead_letters() == []
    assert Counter(e["status"] for e in events) == {"accepted": 20}
    from whatsapp_simulator.state import fingerprint

    sent = [m for m in sim.messages(tenant.phone) if m["body"]["to"] != sent_to(recipient(0))]
    assert len(sent) == 20
    assert {m["token_fingerprint"] for m in sent} == {fingerprint(new_token)}


async def test_suspend_holds_then_releases_or_dead_letters(
    pool: PoolWorld, sim: Any, rabbitmq: Any, start_worker: Any
) -> None:
    back, gone = pool.add_tenant(), pool.add_tenant()
    start_worker(pool.directory, pool.name, hold_window=6, hold_recheck=1)
    pool.hidden |= {back.tenant_id, gone.tenant_id}  # the operator unpublishes suspended ones
    pool.publish()
    await asyncio.sleep(1.5)  # > the reload interval
    async with Broker(rabbitmq.amqp_url, pool.name) as broker:
        await broker.publish(
            [pool.message(t, recipient(i), mid=f"{pool.name}-{t.tenant_id}-{i}")
             for t in (back, gone) for i in range(5)]
        )  # fmt: skip
        assert await broker.collect(1, within=3) == []  # the kill switch: nothing goes out
        pool.hidden.discard(back.tenant_id)  # unsuspended within the hold window
        pool.publish()
        events = await broker.collect(10, within=30)
        dead = await broker.dead_letters(expect=5, within=10)
    by_tenant = Counter((e["tenantId"], e["status"]) for e in events)
    assert by_tenant == {(back.tenant_id, "accepted"): 5, (gone.tenant_id, "failed"): 5}
    assert {h[H_REASON] for h, _ in dead} == {"tenant_unavailable"}
    assert sim.messages(gone.phone) == []


async def test_pair_limit_is_respected(
    pool: PoolWorld, sim: Any, rabbitmq: Any, start_worker: Any
) -> None:
    # Meta's pair limit scaled down (5 at once, then 1 per second at the simulator), to keep
    # the test short; the worker's defaults are Meta's 45 and 6 s. Scaled down, the worker's
    # 3 % headroom would leave 31 ms for requests to arrive late (180 ms at Meta's 6 s): the
    # worker is told 1.1 s, the same margin in time as at Meta's scale.
    tenant = pool.add_tenant(pair_limit={"burst": 5, "refill_seconds": 1})
    start_worker(pool.directory, pool.name, pair_burst=5, pair_refill_seconds=1.1)
    async with Broker(rabbitmq.amqp_url, pool.name) as broker:
        started = time.monotonic()
        await broker.publish(
            [pool.message(tenant, "34699999999", mid=f"{pool.name}-{i}") for i in range(12)]
        )
        events = await broker.collect(12, within=60)
        elapsed = time.monotonic() - started
    assert Counter(e["status"] for e in events) == {"accepted": 12}
    assert sim.stats()["throttled"]["by_phone"].get(tenant.phone, {}).get("131056", 0) == 0
    times = sorted(m["time"] for m in sim.messages(tenant.phone))
    assert times[-1] - times[0] >= 12 - 5 - 1.5  # 7 after the burst, at most 1 per second
    print(f"\n[figure] pair limit (5 + 1/s): 12 messages to one recipient in {elapsed:.1f} s")


async def test_config_swaps_while_sending_never_miss_a_tenant(
    pool: PoolWorld, sim: Any, rabbitmq: Any, start_worker: Any
) -> None:
    sender = pool.add_tenant(throughput="HIGH")
    others = [pool.add_tenant(publish=False) for _ in range(30)]
    pool.publish()
    worker = start_worker(pool.directory, pool.name, reload_interval=0.05)
    async with Broker(rabbitmq.amqp_url, pool.name) as broker:
        for round_ in range(20):
            await broker.publish(
                [pool.message(sender, recipient(round_ * 100 + i), mid=f"{pool.name}-{round_}-{i}")
                 for i in range(100)]
            )  # fmt: skip
            # a swap: neighbours come and go, and the sending tenant's token rotates
            pool.hidden ^= {others[round_].tenant_id}
            if round_ % 4 == 0:
                pool.rotate(sender.tenant_id, publish=False)
            assert pool.publish()
            await asyncio.sleep(0.1)
        events = await broker.collect(2000, within=90)
        assert await broker.dead_letters() == []
    assert Counter(e["status"] for e in events) == {"accepted": 2000}
    assert len(set(delivered_ids(sim, [sender.phone]))) == 2000
    samples = worker.metrics()
    holds = sum(v for k, v in samples.items() if k.startswith("whatsapp_worker_retries_total")
                and 'action="hold"' in k)  # fmt: skip
    assert holds == 0  # never a moment without the tenant
    assert pool.volume.writes >= 21


# --- issue 16: recipients keep their +, blocked numbers are held -------------------------


async def test_recipients_reach_meta_in_e164_with_their_plus(
    pool: PoolWorld, sim: Any, rabbitmq: Any, start_worker: Any
) -> None:
    tenant = pool.add_tenant()
    start_worker(pool.directory, pool.name)
    written = {
        "plus": ("+44 7700 900123", "+447700900123"),
        "double-zero": ("0044 7700 900124", "+447700900124"),
        "digits-only": ("919876543220", "+919876543220"),
        "trunk-zero": ("+44 (0)7700 900125", "+447700900125"),
    }
    async with Broker(rabbitmq.amqp_url, pool.name) as broker:
        await broker.publish(
            [pool.message(tenant, raw, mid=f"{pool.name}-{case}") for case, (raw, _) in
             written.items()]
            + [pool.message(tenant, "+34 600 000 0001", mid=f"{pool.name}-too-long")]
        )  # fmt: skip
        events = await broker.collect(len(written) + 1, within=30)
        dead = await broker.dead_letters(expect=1, within=10)
    by_id = {e["messageId"]: e for e in events}
    at_meta = {
        str(decode_callback(m["body"]["biz_opaque_callback_data"])[0]): m
        for m in sim.messages(tenant.phone)
    }
    for case, (_, e164) in written.items():
        mid = f"{pool.name}-{case}"
        assert at_meta[mid]["body"]["to"] == e164, case  # what Meta received, + and all
        assert at_meta[mid]["to"] == e164
        event = by_id[mid]
        assert (event["status"], event["to"], event["wamid"]) == (
            "accepted", e164, at_meta[mid]["wamid"],
        )  # fmt: skip
        assert event["waId"] == e164[1:]  # Meta's wa_id: digits only
        if "messageStatus" in event:  # Meta's (and a strict simulator's) newer answers
            assert event["messageStatus"] in ("accepted", "held_for_quality_assessment", "paused")
    assert f"{pool.name}-too-long" not in at_meta
    assert [h[H_REASON] for h, _ in dead] == ["invalid_recipient"]
    (refused,) = [e for e in events if e["status"] == "failed"]  # unparsed: no messageId
    assert refused["reason"] == "invalid_recipient"
    assert refused["detail"] == (
        "wabaPayload.to: is too long for country code 34: 10 digits after it; numbers there "
        "have 9 digits"
    )


def with_block(pool: PoolWorld, tenant: SimTenant, code: int | None) -> None:
    """The operator's move: publish the tenant's config with (or without) `blocked_code`."""
    config = TenantConfig.model_validate({**dict(tenant.config), "blocked_code": code})
    pool.tenants[tenant.tenant_id] = SimTenant(config, tenant.token)
    assert pool.publish()


async def ready_in_queues(broker: Broker, pool: str, shards: int = 8) -> int:
    """Messages ready in the pool's shard and delay queues (the held ones wait there)."""
    from whatsapp_worker.topology import DELAY_TIERS

    assert broker.channel is not None
    names = [broker.topology.shard_queue(k) for k in range(shards)]
    names += [broker.topology.delay_queue(k, t) for k in range(shards) for t in DELAY_TIERS]
    total = 0
    for name in names:
        queue = await broker.channel.declare_queue(name, passive=True)
        total += queue.declaration_result.message_count or 0
    return total


async def wait_ready(broker: Broker, pool: str, count: int, within: float) -> int:
    deadline = time.monotonic() + within
    seen = 0
    while time.monotonic() < deadline:
        seen = await ready_in_queues(broker, pool)
        if seen == count:
            return seen
        await asyncio.sleep(0.1)
    return seen


def meta_sends(sim: Any, tenant: SimTenant) -> int:
    """Send calls the simulator saw with the tenant's token (its own call log)."""
    from whatsapp_simulator.state import fingerprint

    by_token = sim.calls()["by_kind_token"].get("messages", {})
    return int(by_token.get(fingerprint(tenant.token), 0))


async def signals_of(broker: Broker, pool: str) -> Any:
    """A queue bound to the tenant signals exchange for the pool (the operator's view)."""
    assert broker.channel is not None
    exchange = await broker.channel.declare_exchange(
        SIGNALS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await broker.channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key=pool)
    return queue


async def drain_signals(queue: Any) -> list[TenantSignal]:
    found = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        signal = parse_signal(message.body)
        assert signal is not None
        found.append(signal)
    return found


@pytest.mark.parametrize("clears", ["operator", "probe"])
async def test_a_blocked_number_is_held_then_sent_once_the_block_clears(
    pool: PoolWorld, sim: Any, rabbitmq: Any, start_worker: Any, clears: str
) -> None:
    """Meta answers 131048 (spam rate limit): the worker pauses the number, signals the
    operator once, and holds every message in the broker without calling Meta again; the
    messages are sent once the operator clears the block in the config (`operator`) or, with
    no operator, once a probe after `block_probe_interval` is accepted (`probe`)."""
    tenant, other = pool.add_tenant(), pool.add_tenant()
    # the probe is due 12 s after the first block: after the checks below that nothing is
    # sent while the number is paused (a probe before the fault is removed would be blocked)
    probe = 12.0 if clears == "probe" else 3600.0
    worker = start_worker(
        pool.directory, pool.name, hold_recheck=1, block_probe_interval=probe, hold_window=1
    )  # fmt: skip  (the credential window: blocks ignore it)
    fault = sim.add_fault(
        "error_code", kind="messages", phone_number_id=tenant.phone, code=131048,
        message="(#131048) Spam rate limit hit",
    )  # fmt: skip
    count = 20
    async with Broker(rabbitmq.amqp_url, pool.name) as broker:
        signals = await signals_of(broker, pool.name)
        await broker.publish([pool.message(tenant, recipient(0), mid=f"{pool.name}-first")])
        await asyncio.sleep(2)  # the first send meets the block: the number is paused
        await broker.publish(
            [pool.message(tenant, recipient(i), mid=f"{pool.name}-{i}") for i in range(1, count)]
            + [pool.message(other, recipient(1), mid=f"{pool.name}-other")]
        )  # fmt: skip
        # another tenant's number is not held
        other_events = await broker.collect(1, within=15)
        assert [(e["messageId"], e["status"]) for e in other_events] == [
            (f"{pool.name}-other", "accepted")
        ]
        calls = meta_sends(sim, tenant)
        assert calls == 1  # only the first send reached Meta
        assert await wait_ready(broker, pool.name, count, within=10) == count  # all in the queue
        await asyncio.sleep(2 if clears == "operator" else 1)  # several rechecks pass...
        assert meta_sends(sim, tenant) == calls  # ...without a call to Meta
        assert await broker.collect(1, within=1) == []  # no result: neither sent nor failed
        assert await broker.dead_letters() == []
        assert worker.metric("whatsapp_worker_paused_numbers") == 1
        assert worker.metrics()[
            f'whatsapp_worker_holds_total{{pool="{pool.name}",reason="tenant_blocked"}}'
        ] >= count  # fmt: skip
        blocked = await drain_signals(signals)
        assert [(s.kind, s.tenant_id, s.phone_number_id, s.code) for s in blocked] == [
            ("sending_blocked", tenant.tenant_id, tenant.phone, 131048)
        ]
        assert tenant.token not in repr(blocked)

        if clears == "operator":
            with_block(pool, tenant, 131048)  # the operator sets SendingBlocked...
            await asyncio.sleep(2.5)  # (the worker confirms the pause on a recheck)
            sim.remove_fault(fault)  # ...someone fixes it at Meta...
            await asyncio.sleep(2)
            assert meta_sends(sim, tenant) == calls  # the config holds: still no call
            started = time.monotonic()
            with_block(pool, tenant, None)  # ...and the operator's check clears it
        else:
            sim.remove_fault(fault)
            started = time.monotonic()
        events = await broker.collect(count, within=30)
        elapsed = time.monotonic() - started
        assert await broker.dead_letters() == []
    assert Counter(e["status"] for e in events) == {"accepted": count}
    delivered = delivered_ids(sim, [tenant.phone])
    assert sorted(delivered) == sorted(e["messageId"] for e in events)  # each exactly once
    assert meta_sends(sim, tenant) == calls + count  # the held ones went once the block cleared
    assert worker.metric("whatsapp_worker_paused_numbers") == 0
    print(f"\n[figure] blocked number ({clears}): {count} held messages sent {elapsed:.1f} s "
          "after the block cleared")  # fmt: skip
