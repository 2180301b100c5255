"""Tenant signals (whatsapp_contract.signals) against a real RabbitMQ, the operator process, a
real API server and the simulator: the consumer reconnects after a broker restart; a
credential_rejected signal has the tenant re-validated within 2 s; a sending_blocked signal
blocks the tenant (SendingBlocked, Ready=False, still published with its blocked_code) until a
check finds the number healthy again.

The tests publish the signals a worker would (worker/** publishes them in production)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from test_operator import apply_tenant, cond, events, get, wait_reason
from test_publish import published
from test_token_lifecycle import sim_fp

from conftest import Kubectl, make_world
from whatsapp_contract.signals import EXCHANGE, TenantSignal, dump_signal
from whatsapp_operator.pools.signals import WINDOW, SignalListener
from whatsapp_testkit.rabbitmq import RabbitMQ
from whatsapp_testkit.world import wait_for

pytestmark = pytest.mark.integration


async def _publish(url: str, bodies: list[bytes], routing_key: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        for body in bodies:
            await exchange.publish(aio_pika.Message(body), routing_key=routing_key)


def publish(url: str, *signals: TenantSignal | bytes, routing_key: str = "default") -> None:
    """Publish as a worker does: to whatsapp.signals, the pool as routing key, not persistent."""
    bodies = [s if isinstance(s, bytes) else dump_signal(s) for s in signals]
    asyncio.run(_publish(url, bodies, routing_key))


def tenant_signal(kind: str, tenant_id: str, world: Any, pool: str, code: int, fp: str,
                  detail: str = "") -> TenantSignal:  # fmt: skip
    return TenantSignal(
        kind, tenant_id, world.phone_number_id, pool, code, fp, "test-worker", time.time(),
        detail=detail,
    )  # type: ignore[arg-type]  # fmt: skip


# --- the consumer alone, against a RabbitMQ node of its own (restarted) ------------------


@pytest.fixture
def node(artifacts: Path) -> Iterator[RabbitMQ]:
    broker = RabbitMQ(artifacts_dir=artifacts / "rabbitmq-signals").start()
    yield broker
    broker.close()


async def test_the_consumer_receives_drops_malformed_and_reconnects_after_a_restart(
    node: RabbitMQ, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[TenantSignal] = []
    listener = SignalListener(node.amqp_url, got.append, reconnect_cap=2.0)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.connected.wait(), 20)
        first = TenantSignal("credential_rejected", "t_1", "1", "p", 190, "sha256:" + "a" * 16,
                             "w", time.time())  # fmt: skip
        await _publish(node.amqp_url, [b"not a signal", dump_signal(first)], "p")
        async with asyncio.timeout(10):
            while not got:  # noqa: ASYNC110 - the listener's callback has no event
                await asyncio.sleep(0.02)
        assert got == [first]
        assert "dropped 1 malformed tenant signal" in caplog.text

        started = time.monotonic()
        await asyncio.to_thread(node.restart)
        await asyncio.wait_for(listener.connected.wait(), 30)
        print(f"\n[figure] signals consumer back {time.monotonic() - started:.1f} s after the "
              "broker restart began", file=sys.stderr)  # fmt: skip
        second = TenantSignal("sending_blocked", "t_2", "2", "p", 131048, "sha256:" + "b" * 16,
                              "w", time.time())  # fmt: skip
        await _publish(node.amqp_url, [dump_signal(second)], "p")
        async with asyncio.timeout(10):
            while len(got) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert got == [first, second]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# --- end to end, with the session's operator --------------------------------------------


def test_credential_rejected_signal_revalidates_within_2s(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, rabbitmq: Any
) -> None:
    pool = f"p{namespace[2:]}"
    w = make_world(sim)
    tenant_id = f"t_sig_{namespace}"
    apply_tenant(kubectl, namespace, w, tenant_id=tenant_id, senderPool=pool)
    ready = wait_reason(kubectl, namespace, "acme", "Ready")
    fp = ready["status"]["token"]["fingerprint"]
    wait_for(lambda: tenant_id in published(kubectl, pool), 20, 0.2, "published")
    sim.revoke_token(w.token)  # Meta invalidated it; the operator's last check was seconds ago

    def calls() -> int:  # Graph calls about this tenant's token
        return int(sim.calls()["by_token"].get(sim_fp(w.token), 0))

    checks = calls()
    stale = "sha256:" + "f" * 16  # a token replaced since: ignored
    publish(rabbitmq.amqp_url, tenant_signal("credential_rejected", tenant_id, w, pool, 190,
                                             stale), routing_key=pool)  # fmt: skip
    time.sleep(1.5)
    assert cond(get(kubectl, namespace, "acme"), "TokenValid")["status"] == "True"
    assert calls() == checks

    storm = [tenant_signal("credential_rejected", tenant_id, w, pool, 190, fp)] * 50
    started = time.monotonic()
    publish(rabbitmq.amqp_url, *storm, routing_key=pool)
    obj = wait_reason(kubectl, namespace, "acme", "TokenInvalidated", "TokenValid", timeout=5)
    elapsed = time.monotonic() - started
    print(f"\n[figure] credential_rejected signal -> TokenValid False at the API server in "
          f"{elapsed:.2f} s", file=sys.stderr)  # fmt: skip
    assert elapsed < 2.0
    assert cond(obj, "TokenValid")["status"] == "False"
    assert cond(obj, "Ready")["reason"] == "TokenInvalidated"
    time.sleep(WINDOW + 1)  # the storm's second wake (end of the window) makes no second check
    assert calls() - checks == 1
    wait_for(lambda: tenant_id not in published(kubectl, pool), 10, 0.2, "unpublished")


def test_sending_blocked_signal_holds_the_number_until_a_check_finds_it_healthy(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, rabbitmq: Any
) -> None:
    pool = f"p{namespace[2:]}"
    w = make_world(sim)
    tenant_id = f"t_blk_{namespace}"
    apply_tenant(kubectl, namespace, w, tenant_id=tenant_id, senderPool=pool)
    fp = wait_reason(kubectl, namespace, "acme", "Ready")["status"]["token"]["fingerprint"]
    wait_for(lambda: tenant_id in published(kubectl, pool), 20, 0.2, "published")
    sim.set_enforcement(w.phone_number_id, 131048)  # Meta's spam rate limit on the number

    unrelated = tenant_signal("sending_blocked", tenant_id, w, pool, 131026, fp)
    blocked = tenant_signal("sending_blocked", tenant_id, w, pool, 131048, fp,
                            "Spam rate limit hit")  # fmt: skip
    started = time.monotonic()
    publish(rabbitmq.amqp_url, unrelated, blocked, routing_key=pool)
    obj = wait_reason(kubectl, namespace, "acme", "SpamRateLimit", "SendingBlocked", timeout=5)
    print(f"\n[figure] sending_blocked signal -> SendingBlocked True at the API server in "
          f"{time.monotonic() - started:.2f} s", file=sys.stderr)  # fmt: skip
    assert cond(obj, "SendingBlocked")["status"] == "True"
    assert "131048" in cond(obj, "SendingBlocked")["message"]
    assert cond(obj, "Ready")["status"] == "False"
    assert cond(obj, "Ready")["reason"] == "SendingBlocked"
    assert obj["status"]["sendingBlock"]["code"] == 131048
    entry = wait_for(lambda: published(kubectl, pool).get(tenant_id), 10, 0.1, "still published")
    wait_for(lambda: published(kubectl, pool)[tenant_id][0].blocked_code == 131048, 10, 0.1)
    warnings = [e for e in events(kubectl, namespace, "acme") if e["reason"] == "SpamRateLimit"]
    assert [e["type"] for e in warnings] == ["Warning"]
    assert entry is not None

    # a check while Meta still blocks it: still blocked, and it says what the check found
    kubectl("annotate", "wat", "acme", "-n", namespace, "whatsapp.operator.dev/revalidate=1")

    def last_check() -> str:
        return str(get(kubectl, namespace, "acme")["status"]["sendingBlock"].get("lastCheck", ""))

    assert "BLOCKED" in wait_for(last_check, 10, 0.2, "a check while blocked")
    obj = get(kubectl, namespace, "acme")
    assert cond(obj, "SendingBlocked")["status"] == "True"

    # Meta lifts it; the next check (asked for here, due 5 min later otherwise) resumes sending
    sim.clear_enforcement(w.phone_number_id)
    kubectl("annotate", "--overwrite", "wat", "acme", "-n", namespace,
            "whatsapp.operator.dev/revalidate=2")  # fmt: skip
    obj = wait_reason(kubectl, namespace, "acme", "SendingAllowed", "SendingBlocked", timeout=10)
    assert cond(obj, "SendingBlocked")["status"] == "False"
    assert cond(obj, "Ready")["reason"] == "Ready"
    assert "sendingBlock" not in obj["status"]
    wait_for(lambda: published(kubectl, pool)[tenant_id][0].blocked_code is None, 10, 0.1)
    normal = [e for e in events(kubectl, namespace, "acme") if e["reason"] == "SendingAllowed"]
    assert [e["type"] for e in normal] == ["Normal"]
