"""Several worker processes on one pool: shards split between them, limits held across them,
nothing lost when one is killed."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_worker_webhooks import (
    arrived,
    lags,
    new_app,
    receiver_tenant,
    receiving,
    results,
    sample,
)

from whatsapp_testkit.amqp import Broker
from whatsapp_testkit.pools import PoolWorld, recipient
from whatsapp_testkit.reliability import Scenario
from whatsapp_testkit.webhook import App

pytestmark = pytest.mark.integration


@pytest.fixture
def pool(make_pool: Any) -> Any:
    return make_pool()


@pytest.fixture
def app(sim: Any) -> App:
    return new_app(sim)


@pytest.fixture
def hooked_pool(make_pool: Any, app: App) -> Any:
    """A pool whose tenants use an app of their own, whose webhooks reach a receiver."""
    return make_pool("kills", app.app_id)


async def wait_shards(workers: list[Any], within: float = 30.0) -> list[int]:
    """Until every shard is held by exactly one of the workers, each holding some."""
    deadline = time.monotonic() + within
    while True:
        held = [int(w.metric("whatsapp_worker_shards_held")) for w in workers]
        if sum(held) == 8 and all(held):
            return held
        if time.monotonic() > deadline:
            raise AssertionError(f"shards not split: {held}")
        await asyncio.sleep(0.3)


async def send_to_one_number(
    pool: PoolWorld, sim: Any, rabbitmq: Any, start_worker: Any, *, join_midway: bool
) -> tuple[Any, str]:
    tenant = pool.add_tenant()  # STANDARD: 80 msg/s at the simulator
    workers = [start_worker(pool.directory, pool.name)]
    if not join_midway:
        workers.append(start_worker(pool.directory, pool.name))
        await wait_shards(workers)
    count = 640  # 8 s at 80 msg/s
    async with Broker(rabbitmq.amqp_url, pool.name) as broker:
        await broker.publish(
            [pool.message(tenant, recipient(i), mid=f"{pool.name}-{i}") for i in range(count)]
        )
        if join_midway:
            await asyncio.sleep(2.0)
            workers.append(start_worker(pool.directory, pool.name))
        events = await broker.collect(count, within=60)
        split = await wait_shards(workers)
    assert Counter(e["status"] for e in events) == {"accepted": count}
    stats = sim.stats()
    assert stats["throttled"]["by_phone"].get(tenant.phone, {}).get("130429", 0) == 0
    peak = stats["peak_window"][tenant.phone]  # attempts, refused ones included
    assert peak <= 80
    times = sorted(m["time"] for m in sim.messages(tenant.phone))
    achieved = (len(times) - 1) / (times[-1] - times[0])
    figure = (
        f"worst 1-s window {peak} ({peak / 80:.1%} of the rate), achieved {achieved:.1f} msg/s "
        f"({achieved / 80:.1%}), shards split {split}"
    )
    return achieved, figure


async def test_two_workers_hold_a_numbers_throughput_exactly(
    pool: PoolWorld, sim: Any, rabbitmq: Any, start_worker: Any
) -> None:
    """80 msg/s on one number with two worker processes: never over it, and close to it."""
    achieved, figure = await send_to_one_number(
        pool, sim, rabbitmq, start_worker, join_midway=False
    )
    assert achieved >= 0.95 * 80
    print(f"\n[figure] limiter, 2 worker processes, one number at 80 msg/s: {figure}")


async def test_a_worker_joining_mid_stream_never_exceeds_the_throughput(
    pool: PoolWorld, sim: Any, rabbitmq: Any, start_worker: Any
) -> None:
    """Shards move to a second process while their messages are in flight: the old owner
    finishes what it started before the new one may begin, so 130429 never happens."""
    _, figure = await send_to_one_number(pool, sim, rabbitmq, start_worker, join_midway=True)
    print(f"\n[figure] limiter across a hand-over of shards: {figure}")


KILLS = (0.2, 0.45, 0.7)  # SIGKILL a worker when this share of the messages is delivered


@pytest.mark.reliability
@pytest.mark.timeout(600)  # up to 205 s measured on a loaded machine (webhooks lagging)
async def test_workers_killed_repeatedly_mid_stream_lose_nothing(
    hooked_pool: PoolWorld,
    app: App,
    sim: Any,
    rabbitmq: Any,
    start_worker: Any,
    scenario: Scenario,
    artifacts: Path,
    tmp_path: Path,
) -> None:
    """Nothing lost: every message reaches Meta (the simulator) with a result event, or is
    dead-lettered as `outcome_unknown` because a killed process had sent it without recording
    Meta's answer and no status webhook told whether Meta had it. A message whose outcome was
    published before its ack is not sent again (the send journal): duplicates <= 0.1 %.

    The webhook receiver runs (issue 18): the next owner of a message a killed process had
    sent unanswered waits for its status webhook; found, it is settled as accepted, not sent
    again; none within `status_wait`, it is sent. `outcome_unknown` went from 127 of 10,000
    (before the receiver) to <= 10."""
    pool = hooked_pool
    count = 10_000
    scenario.describe(
        "worker SIGKILL, repeatedly",
        load=f"{count:,} messages over 6 numbers, 2 worker processes; the webhook receiver "
        "takes the simulator's status webhooks",
        faults=f"{len(KILLS)} x SIGKILL of a worker (at {', '.join(f'{k:.0%}' for k in KILLS)} "
        "delivered), a replacement started each time",
    )
    tenants = [receiver_tenant(pool) for _ in range(6)]
    phones = [t.phone for t in tenants]
    messages = [
        pool.message(tenants[i % 6], recipient(i), mid=f"{pool.name}-{i}") for i in range(count)
    ]
    # the recipients never wrote: the service window is not this scenario's subject
    settings = {"service_window_check": "off"}
    statuses: list[dict[str, Any]] = []
    with receiving(sim, rabbitmq, pool, app, artifacts, tmp_path / "receiver"):
        workers = [start_worker(pool.directory, pool.name, **settings) for _ in range(2)]
        await wait_shards(workers)
        async with Broker(rabbitmq.amqp_url, pool.name) as broker:
            started = time.monotonic()
            await broker.publish(messages)
            for share in KILLS:
                for _ in range(2400):  # poll the simulator (<= 120 s)
                    if len(arrived(sim, phones)) >= share * count:
                        break
                    await asyncio.sleep(0.05)
                victim = workers.pop(0)
                victim.kill()  # SIGKILL: no drain, its unacked deliveries go back to the queues
                scenario.note(f"killed {victim.worker_id} at {len(arrived(sim, phones))}")
                workers.append(start_worker(pool.directory, pool.name, **settings))
            events = await results(broker, count, within=300, distinct=True, statuses=statuses)
            elapsed = time.monotonic() - started
            dead = await broker.dead_letters()
            await wait_shards(workers)
            verdicts = Counter[str]()  # of the workers still running (the killed ones' are gone)
            for worker in workers:
                for key, value in worker.metrics().items():
                    if key.startswith("whatsapp_worker_redeliveries_total{"):
                        verdicts[key.split('verdict="')[1].split('"')[0]] += int(value)
            waits = {
                outcome: sum(
                    sample(w, "whatsapp_worker_status_waits_total", outcome=outcome)
                    for w in workers
                )
                for outcome in ("found", "past", "quiet", "lagging", "unknown")
            }
    hooks = sim.webhooks(phone_number_id=phones[0], kind="status")
    queued = sorted((h["first_attempt_at"] or 0) - h["created_at"] for h in hooks)
    scenario.note(
        f"simulator webhooks of one number: {len(hooks)}, waiting for their first POST "
        f"{queued[len(queued) // 2]:.1f} / {queued[-1]:.1f} s (median / max), "
        f"{sum(h['attempts'] for h in hooks)} attempts"
    )
    delivered = arrived(sim, phones)
    unique = set(delivered)
    duplicates = len(delivered) - len(unique)
    twice = sorted(m for m, n in Counter(delivered).items() if n > 1)
    for mid in twice[:5]:  # why: when each copy reached Meta, what the results said
        times = [
            m["time"]
            for p in phones
            for m in sim.messages(p)
            if m["body"].get("biz_opaque_callback_data", "").startswith(f"wo1:{mid}|")
        ]
        said = [
            (e["status"], e.get("possibleDuplicate"), e.get("resolvedBy"))
            for e in events
            if e["messageId"] == mid
        ]
        seen = [
            (s["status"], round(s["at"] - min(times), 1))
            for s in statuses
            if s.get("messageId") == mid
        ]
        scenario.note(f"{mid}: at Meta +{[round(t - min(times), 1) for t in times]} s, "
                      f"results {said}, statuses {seen}")  # fmt: skip
    unknown = {json.loads(body)["metadata"]["messageId"] for _, body in dead}
    reached = len(unknown & unique)
    resolved = sum(1 for e in events if e.get("resolvedBy") == "webhook")
    scenario.record(
        sent=count, delivered=len(unique), dead_lettered=len(dead), duplicates=duplicates,
        converged_s=elapsed, convergence_of="all results in",
    )  # fmt: skip
    scenario.note(
        f"{len(dead)} dead-lettered as outcome_unknown ({reached} of them had reached Meta); "
        f"{resolved} unanswered sends settled from their status webhook; redeliveries by "
        f"send-journal verdict, on the surviving workers: {dict(verdicts)}; status waits "
        f"there: {waits}; {lags(statuses)}"
    )
    assert {headers["x-whatsapp-reason"] for headers, _ in dead} <= {"outcome_unknown"}
    assert len(unknown) == len(dead)  # each once
    assert unique | unknown == {m["metadata"]["messageId"] for m in messages}  # none lost
    assert {e["messageId"] for e in events} == unique | unknown  # a result for every one
    # Left: a send whose answer arrived after a kill's journal read could not see it (the
    # journal is read once per hand-over); at most a few.
    assert duplicates <= count // 1000
    # issue 18: what the statuses tell is no longer dead-lettered (127 of 10,000 before)
    assert len(dead) <= 10
    print(
        f"\n[figure] {len(KILLS)} SIGKILLs during {count} messages: {len(unique)} delivered, "
        f"{len(dead)} dead-lettered as outcome_unknown ({reached} had reached Meta), "
        f"{resolved} settled from their status webhook, "
        f"{duplicates} duplicates ({duplicates / count:.2%}), {len(events)} result events, "
        f"{elapsed:.1f} s"
    )
