"""The webhook receiver under faults while the simulated Meta sends webhooks under load: (a) the
receiver process SIGKILLed and started again, (b) RabbitMQ restarted. Every status webhook is
eventually published exactly once after de-duplication, and nothing is lost.

Counted independently of the receiver on both sides: the simulator's own delivery log says
which (wamid, status) webhooks it delivered (answered 200, after as many retries as it took);
a tap (a durable queue of the test's own bound to `whatsapp.results` with `<pool>.*`) holds
every result event the receiver published. Exactly once: no (wamid, status) twice in the tap.
Nothing lost: for every message, the furthest status the simulator delivered is in the tap
(statuses only move forward, so a `sent` that reached the receiver after its `delivered` is
rightly not published), and nothing is in the tap that the simulator did not deliver.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ISSUED_TOKENS
from whatsapp_contract.webhook import RESULTS_EXCHANGE, advances, encode_callback, ingress_queue
from whatsapp_simulator.client import SimulatorAdmin
from whatsapp_testkit.rabbitmq import RabbitMQ
from whatsapp_testkit.reliability import Scenario
from whatsapp_testkit.services import GraphSimulator
from whatsapp_testkit.taps import Tap, per_status
from whatsapp_testkit.webhook import App, Receiver, number, receiver_config
from whatsapp_testkit.world import SCOPES, new_id, new_token, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

COUNT = 1500  # accepted sends: 3,000 statuses, and their duplicates
RATE = 100  # sends per second (15 s of load)
PHONES = 4
SHARDS = 4
DOWN_FOR = 5.0  # seconds RabbitMQ stays stopped
WEBHOOKS = {  # the simulated Meta's knobs (simulator/whatsapp_simulator/webhook_model.py)
    "duplicate_ratio": 0.2, "reorder_ratio": 0.2, "read_ratio": 0.0, "failure_ratio": 0.0,
    "sent_delay_ms": 50.0, "delivered_delay_ms": 150.0, "duplicate_delay_ms": 100.0,
    "retry_base_ms": 250.0, "retry_max_ms": 2000.0, "concurrency": 32, "seed": 18,
}  # fmt: skip
RANK = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}


@pytest.fixture
def node(artifacts: Path) -> Iterator[RabbitMQ]:
    """A RabbitMQ node of this test's own (restarted in one scenario)."""
    broker = RabbitMQ(artifacts_dir=artifacts / "rabbitmq-webhook").start()
    yield broker
    broker.close()


@pytest.fixture
def meta(artifacts: Path) -> Iterator[tuple[GraphSimulator, SimulatorAdmin]]:
    """A simulator of this test's own: its webhook knobs and delivery log are the test's."""
    simulator = GraphSimulator(artifacts / "graph-sim-webhooks.log")
    simulator.start()
    with SimulatorAdmin(simulator.url) as admin:
        yield simulator, admin
    simulator.stop()


@dataclass
class World:
    app: App
    waba: str
    phones: list[str]
    token: str
    pool: str


def make_world(admin: SimulatorAdmin) -> World:
    app = App(new_id("9"), f"secret-{uuid.uuid4().hex}", f"verify-{uuid.uuid4().hex}")
    waba, phones, token = new_id("2"), [new_id("3") for _ in range(PHONES)], new_token()
    ISSUED_TOKENS.extend([app.secret, app.verify_token, token])  # the run's leak scan
    admin.add_app(app.app_id, app.secret)
    admin.add_waba(waba)
    for phone in phones:
        admin.add_phone(phone, waba_id=waba, display_phone_number="+1 555-0100", mps=0,
                        pair_limit=False)  # fmt: skip
    admin.add_token(token, app_id=app.app_id, scopes=SCOPES,
                    targets={s: [waba] for s in SCOPES[1:]})  # fmt: skip
    admin.webhook_config(**WEBHOOKS)
    return World(app, waba, phones, token, f"hooks-{uuid.uuid4().hex[:8]}")


def start_receiver(node: RabbitMQ, world: World, tmp_path: Path, artifacts: Path) -> Receiver:
    numbers = [number(p, world.waba, world.app.app_id, pool=world.pool) for p in world.phones]
    receiver = Receiver(
        artifacts / f"webhook-{world.pool}.log", amqp_url=node.amqp_url,
        config=receiver_config([world.app], numbers), config_dir=tmp_path / "receiver-config",
    )  # fmt: skip
    receiver.start()
    return receiver


class Sender(threading.Thread):
    """Sends `COUNT` messages to the simulator at `RATE`: each accepted send makes Meta's
    statuses (and their duplicates) come to the receiver."""

    def __init__(self, url: str, world: World) -> None:
        super().__init__(name="sender", daemon=True)
        self.url, self.world = url, world
        self.wamids: list[str] = []
        self.error: BaseException | None = None
        self.finished_at = 0.0  # wall clock

    def run(self) -> None:
        try:
            with httpx.Client(timeout=30) as http:
                started = time.monotonic()
                for i in range(COUNT):
                    time.sleep(max(0.0, started + i / RATE - time.monotonic()))
                    phone = self.world.phones[i % PHONES]
                    body = {
                        "messaging_product": "whatsapp", "to": f"+1555{i:07d}", "type": "text",
                        "text": {"body": f"hello {i}"},
                        "biz_opaque_callback_data": encode_callback(f"m-{i}"),
                    }  # fmt: skip
                    response = http.post(
                        f"{self.url}/v25.0/{phone}/messages", json=body,
                        headers={"Authorization": f"Bearer {self.world.token}"},
                    )  # fmt: skip
                    response.raise_for_status()
                    self.wamids.append(response.json()["messages"][0]["id"])
        except BaseException as exc:  # reported by the test
            self.error = exc
        self.finished_at = time.time()


@dataclass
class Outcome:
    delivered_posts: int  # status POSTs the simulator got a 200 for (duplicates included)
    failed_attempts: int  # attempts answered otherwise or not at all (retried)
    published: int  # distinct (wamid, status) result events in the tap
    twice: int  # (wamid, status) published more than once
    late_sent: int  # `sent` webhooks delivered after their `delivered` was published
    last_delivered_at: float  # wall clock of the simulator's last successful POST


def check(admin: SimulatorAdmin, tap_events: list[dict[str, Any]], wamids: list[str]) -> Outcome:
    """Compare the simulator's delivery log with the tap; assert exactly once, nothing lost."""
    log = admin.webhooks(kind="status")
    assert not [d for d in log if d["gave_up"] or d["pending"]]
    delivered: dict[str, set[str]] = defaultdict(set)
    for d in log:
        if d["delivered"]:
            delivered[d["wamid"]].add(d["status"])
    counts = per_status(tap_events)
    published: dict[str, list[str]] = defaultdict(list)
    for event in tap_events:
        published[event["wamid"]].append(event["status"])
    assert set(wamids) <= set(delivered)  # every accepted send's statuses came in
    for wamid, statuses in delivered.items():
        furthest = max(statuses, key=RANK.__getitem__)
        assert furthest in published[wamid], (wamid, statuses, published[wamid])  # not lost
        assert set(published[wamid]) <= statuses  # nothing invented
        for before, after in zip(published[wamid], published[wamid][1:], strict=False):
            assert advances(before, after), published[wamid]  # forward only
    twice = sum(1 for n in counts.values() if n > 1)
    assert twice == 0, [k for k, n in counts.items() if n > 1][:5]  # exactly once
    summary = admin.webhook_summary()
    late = sum(len(s - set(published[w])) for w, s in delivered.items())
    last = max(d["last_attempt_at"] for d in log if d["delivered"])
    return Outcome(sum(1 for d in log if d["delivered"]), summary["failed_attempts"],
                   len(counts), twice, late, last)  # fmt: skip


def settle(node: RabbitMQ, admin: SimulatorAdmin, tap: Tap, within: float) -> None:
    """Wait until Meta has nothing pending, the ingress queues are empty and the tap stops
    growing."""
    deadline = time.monotonic() + within
    while not admin.drain_webhooks(timeout=10)["idle"]:
        assert time.monotonic() < deadline, admin.webhook_summary()
    queues = [ingress_queue(i) for i in range(SHARDS)]
    wait_for(lambda: all(node.list_queues().get(q, 0) == 0 for q in queues),
             max(1.0, deadline - time.monotonic()), 0.2, "ingress queues empty")  # fmt: skip
    last = -1
    while (depth := asyncio.run(tap.depth())) != last:
        last = depth
        time.sleep(1.0)


@pytest.mark.parametrize("fault", ["receiver-killed", "rabbitmq-restarted"])
def test_every_webhook_is_published_exactly_once_through_faults(
    fault: str,
    node: RabbitMQ,
    meta: tuple[GraphSimulator, SimulatorAdmin],
    artifacts: Path,
    tmp_path: Path,
    scenario: Scenario,
) -> None:
    simulator, admin = meta
    killed = fault == "receiver-killed"
    scenario.describe(
        "webhook receiver SIGKILLed under load" if killed else "RabbitMQ restarted under webhooks",
        load=(
            f"{COUNT:,} accepted sends at {RATE}/s on {PHONES} numbers: sent + delivered "
            f"webhooks, {WEBHOOKS['duplicate_ratio']:.0%} duplicated, "
            f"{WEBHOOKS['reorder_ratio']:.0%} reordered, 1 receiver"
        ),
        faults=(
            "receiver SIGKILLed at a third of the load, started again at once"
            if killed
            else f"RabbitMQ stopped for {DOWN_FOR:.0f} s at a third of the load, then started"
        ),
    )
    world = make_world(admin)
    receiver = start_receiver(node, world, tmp_path, artifacts)
    tap = asyncio.run(Tap(node.amqp_url, RESULTS_EXCHANGE, f"{world.pool}.*").declare())
    try:
        admin.set_webhook(world.app.app_id, f"{receiver.url}/webhooks/{world.app.app_id}",
                          world.app.verify_token)  # fmt: skip
        admin.subscribe_app(world.waba, world.app.app_id)
        sender = Sender(simulator.url, world)
        started = time.monotonic()
        sender.start()
        wait_for(lambda: len(sender.wamids) >= COUNT // 3 or sender.error, 60, 0.05, "a third")
        if killed:
            receiver.kill()
            receiver.start()
        else:
            with node.outage():
                time.sleep(DOWN_FOR)
        back = time.time()  # the events' `at` is the receiver's wall clock
        sender.join(120)
        assert sender.error is None, sender.error
        settle(node, admin, tap, within=180)
        events = asyncio.run(tap.drain())
        seen = {  # by the receiver running at the end (after the restart, when killed)
            what: int(receiver.metric(f"whatsapp_webhook_{name}", **labels))
            for what, name, labels in (
                ("duplicates", "duplicates_total", {"kind": "status"}),
                ("catch-ups", "status_log_catch_ups_total", {"outcome": "ok"}),
                ("requeued", "changes_processed_total", {"outcome": "requeued"}),
            )
        }
    finally:
        with contextlib.suppress(Exception):
            admin.remove_webhook(world.app.app_id)
        receiver.stop()
    outcome = check(admin, events, sender.wamids)
    converged = max(e["at"] for e in events) - back
    scenario.record(
        sent=outcome.delivered_posts, delivered=outcome.published, duplicates=outcome.twice,
        converged_s=converged, convergence_of="last result event published, after the fault",
    )  # fmt: skip
    scenario.note(
        f"sent = status webhooks the simulator delivered (200, duplicates included), after "
        f"{outcome.failed_attempts} failed attempts it retried; delivered = distinct "
        f"(wamid, status) result events at the broker; {outcome.late_sent} `sent` webhooks "
        f"came after their `delivered` and were rightly not published; the receiver at the "
        f"end counted {seen['duplicates']} duplicate or late statuses, {seen['catch-ups']} "
        f"status-log catch-ups, {seen['requeued']} changes requeued after a failed publish; "
        f"the load went on until {sender.finished_at - back:.1f} s after the fault, the "
        f"simulator's last webhook was delivered {outcome.last_delivered_at - back:.1f} s "
        f"after it (its retries' backoff) and the last event published "
        f"{converged - (outcome.last_delivered_at - back):.1f} s after that; "
        f"{time.monotonic() - started:.1f} s in all"
    )
    print(
        f"\n[figure] webhook {fault}: {outcome.delivered_posts} status POSTs delivered "
        f"({outcome.failed_attempts} failed attempts retried), {outcome.published} result "
        f"events, 0 twice, {outcome.late_sent} late `sent` dropped, all published "
        f"{converged:.1f} s after the fault"
    )
