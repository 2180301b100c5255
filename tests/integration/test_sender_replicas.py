"""Several worker processes on one pool: shards split between them, limits held across them,
nothing lost when one is killed."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from conftest import APP_ID, ISSUED_TOKENS
from whatsapp_testkit.amqp import Broker
from whatsapp_testkit.pools import PoolWorld, delivered_ids, new_pool_name, recipient

pytestmark = pytest.mark.integration


@pytest.fixture
def pool(sim: Any, tmp_path: Path) -> Any:
    world = PoolWorld(sim, new_pool_name(), tmp_path / "resolved", APP_ID)
    yield world
    ISSUED_TOKENS.extend(world.issued)


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


async def test_a_worker_killed_mid_stream_loses_nothing(
    pool: PoolWorld, sim: Any, rabbitmq: Any, start_worker: Any
) -> None:
    tenants = [pool.add_tenant(throughput="HIGH") for _ in range(6)]
    phones = [t.phone for t in tenants]
    workers = [start_worker(pool.directory, pool.name) for _ in range(2)]
    await wait_shards(workers)
    count = 5000
    messages = [
        pool.message(tenants[i % 6], recipient(i), mid=f"{pool.name}-{i}") for i in range(count)
    ]
    async with Broker(rabbitmq.amqp_url, pool.name) as broker:
        started = time.monotonic()
        await broker.publish(messages)
        for _ in range(1200):  # poll the simulator until 1,500 are delivered (<= 60 s)
            if len(delivered_ids(sim, phones)) >= 1500:
                break
            await asyncio.sleep(0.05)
        workers[0].kill()  # SIGKILL: no drain, its unacked deliveries go back to the queues
        killed_at = len(delivered_ids(sim, phones))
        replacement = start_worker(pool.directory, pool.name)
        events = await broker.collect(count, within=120, distinct=True)
        elapsed = time.monotonic() - started
        assert await broker.dead_letters() == []
        await wait_shards([workers[1], replacement])
    delivered = delivered_ids(sim, phones)
    unique = set(delivered)
    duplicates = len(delivered) - len(unique)
    assert unique == {m["metadata"]["messageId"] for m in messages}  # every one delivered
    assert {e["messageId"] for e in events} == unique
    assert duplicates <= 256  # at most what the killed process had in flight
    print(
        f"\n[figure] SIGKILL of 1 of 2 workers after {killed_at} of {count} messages: all "
        f"{count} delivered, {duplicates} duplicates ({duplicates / count:.2%}), "
        f"{len(events)} result events, {elapsed:.1f} s"
    )
