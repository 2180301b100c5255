"""The operator's own health gauges (issue 20): `whatsapp_operator_leader` with the per-tenant
series exported only by the active replica, and `whatsapp_operator_postgres_up`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kopf._cogs.aiokits import aiotoggles
from prometheus_client import REGISTRY, generate_latest

from whatsapp_operator.runtime import metrics, metrics_http

LEADER = "whatsapp_operator_leader"
UP = "whatsapp_operator_postgres_up"
KEY = ("ns-leader", "acme", "t_leader")
READY = [{"type": "Ready", "status": "True", "reason": "Ready"}]


@dataclass
class Toggle:
    """kopf's `operator_paused` as far as the metrics read it."""

    on: bool

    def is_on(self) -> bool:
        return self.on

    async def wait_for(self, __state: bool) -> None:
        raise AssertionError("not awaited in these tests")


@pytest.fixture(autouse=True)
def restored() -> Iterator[None]:
    yield
    metrics.watch_leadership(None)
    metrics.watch_postgres(None)
    metrics.forget(*KEY[:2])


def tenant_lines() -> list[str]:
    text, _ = metrics_http.exposition(None)
    return [line for line in text.decode().splitlines() if 'namespace="ns-leader"' in line]


@pytest.mark.parametrize(
    ("paused", "leader"),
    [(None, 1.0), (Toggle(on=False), 1.0), (Toggle(on=True), 0.0)],
    ids=["standalone: always the leader", "peering, not paused", "paused by peering"],
)
def test_the_leader_gauge_follows_kopfs_pause(paused: Toggle | None, leader: float) -> None:
    watch(paused)
    assert REGISTRY.get_sample_value(LEADER) == leader


def watch(paused: Toggle | None) -> None:
    """`watch_leadership` outside the event loop: its task (none standalone) not run here."""

    async def watched() -> None:
        for task in metrics.watch_leadership(paused):
            task.cancel()

    asyncio.run(watched())


def test_a_paused_replica_exports_no_tenant_series_and_records_none() -> None:
    paused = Toggle(on=False)
    watch(paused)
    metrics.observe(*KEY, {"conditions": READY})
    assert any(line.startswith("whatsapp_tenant_condition{") for line in tenant_lines())
    assert (
        REGISTRY.get_sample_value(
            "whatsapp_tenant_ready", dict(zip(metrics.TENANT_LABELS, KEY, strict=True))
        )
        == 1.0
    )

    paused.on = True
    assert tenant_lines() == []  # /metrics's own renderer
    assert "ns-leader" not in generate_latest(REGISTRY).decode()  # prometheus-client's
    text, _ = metrics_http.exposition(None)
    assert b"# TYPE whatsapp_tenant_condition gauge" in text  # the families stay, empty
    late = [{"type": "Synced", "status": "True"}, *READY]
    metrics.observe(*KEY, {"conditions": late})  # a pass cancelled by the pause, ending late
    paused.on = False
    # the record is still there (follow_leadership drops it), but the late pass added nothing
    assert len(tenant_lines()) == 2  # ready and the one condition: the first observe's


def test_the_records_are_dropped_when_peering_pauses_the_replica() -> None:
    async def scenario() -> tuple[int, int, int]:
        paused = aiotoggles.ToggleSet(any)
        peer = await paused.make_toggle(False, name="a peer of higher priority")
        metrics.observe(*KEY, {"conditions": READY})
        (following,) = metrics.watch_leadership(paused)
        await asyncio.sleep(0.01)
        before = len(metrics.TENANTS.tenants)
        await peer.turn_to(True)
        await asyncio.sleep(0.01)
        during = KEY[:2] in metrics.TENANTS.tenants
        await peer.turn_to(False)
        metrics.observe(*KEY, {"conditions": READY})  # the resumed replica's pass
        await asyncio.sleep(0.01)
        after = KEY[:2] in metrics.TENANTS.tenants
        following.cancel()
        return before, during, after

    before, during, after = asyncio.run(scenario())
    assert before >= 1
    assert (during, after) == (False, True)


@dataclass
class Available:
    available: bool


@dataclass
class Rows:
    db: Available
    health: Available


@pytest.mark.parametrize(
    ("rows", "value"),
    [
        (None, None),
        (Rows(Available(True), Available(True)), 1.0),
        (Rows(Available(True), Available(False)), 0.0),  # a sync or its probe failed
        (Rows(Available(False), Available(True)), 0.0),  # a broken connection (drift pass)
        (Rows(Available(False), Available(False)), 0.0),
    ],
    ids=["no database: not exported", "answers", "sync failed", "pool down", "both down"],
)
def test_postgres_up(rows: Rows | None, value: float | None) -> None:
    assert metrics.postgres_up(rows) == value
    metrics.watch_postgres(rows)
    assert REGISTRY.get_sample_value(UP) == value
    text, _ = metrics_http.exposition(None)
    assert (f"# TYPE {UP} gauge".encode() in text) is (value is not None)
