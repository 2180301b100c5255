"""From `kubectl apply` to a message at Meta: the operator publishes the pool's config, a worker
loads it (mounted the kubelet way), reports the hash it runs, the tenant's status says how
many workers run the current config, and `whatsapp-send` gets a message delivered."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from test_operator import apply_tenant, get

from conftest import WORKERS_NAMESPACE, Kubectl, make_world
from whatsapp_testkit.amqp import Broker
from whatsapp_testkit.kubelet import KubeletVolume, mirror_pool_secrets
from whatsapp_testkit.procs import reachable
from whatsapp_testkit.services import VENV_BIN
from whatsapp_testkit.world import wait_for

pytestmark = pytest.mark.integration


def operator_metric(operator: Any, name: str, **labels: str) -> float | None:
    status, body = reachable(f"http://127.0.0.1:{operator.metrics_port}/metrics")
    assert status == 200
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in body.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.rsplit(" ", 1)[1])
    return None


def whatsapp_send(amqp_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The `whatsapp-send` command, the URL in its environment as documented."""
    return subprocess.run(
        [str(VENV_BIN / "whatsapp-send"), *args],
        env={"WHATSAPP_WORKER_AMQP_URL": amqp_url, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


async def test_published_config_reaches_a_worker_and_a_message_is_delivered(
    kubectl: Kubectl,
    namespace: str,
    operator: Any,
    sim: Any,
    rabbitmq: Any,
    start_worker: Any,
    tmp_path: Path,
) -> None:
    pool = f"e{namespace[2:]}"
    world = make_world(sim)
    tenant_id = f"t_e2e_{namespace[2:]}"
    apply_tenant(kubectl, namespace, world, "acme", tenant_id=tenant_id, senderPool=pool)

    volume = KubeletVolume(tmp_path / "mount")
    volume.target.mkdir()
    wait_for(
        lambda: mirror_pool_secrets(kubectl.secrets, WORKERS_NAMESPACE, pool, volume),
        30, 0.2, "the pool's config published",
    )  # fmt: skip
    worker = start_worker(volume.target, pool)

    # convergence: the tenant's status and the operator's metric count the worker. kubelet
    # keeps syncing the volume: the first copy can predate the publisher's last write (the
    # pool's Secrets are written one by one), and a worker on that copy is rightly not current.
    def converged() -> bool:
        mirror_pool_secrets(kubectl.secrets, WORKERS_NAMESPACE, pool, volume)
        published = get(kubectl, namespace, "acme")["status"].get("published") or {}
        return bool(published.get("workers") == "1/1 current")

    status = wait_for(converged, 30, 0.3, "status.published.workers")
    assert status
    assert operator_metric(operator, "whatsapp_operator_pool_workers", pool=pool, config="current")
    assert worker.metric("whatsapp_worker_config_tenants") == 1

    # the CLI, both ways in; the result events carry Meta's wamid
    async with Broker(rabbitmq.amqp_url, pool) as broker:
        for via, mid in (("plain", "cli-plain"), ("task", "cli-task")):
            out = await asyncio.to_thread(
                whatsapp_send, rabbitmq.amqp_url, "--pool", pool, "--via", via,
                "--tenant-id", tenant_id, "--phone-number-id", world.phone_number_id,
                "--to", "+34 600 000 123", "--text", f"hello via {via}", "--message-id", mid,
            )  # fmt: skip
            assert out.returncode == 0, out.stderr
            assert out.stdout.strip() == mid
        events = await broker.collect(2, within=30)
    assert {e["messageId"]: e["status"] for e in events} == {
        "cli-plain": "accepted",
        "cli-task": "accepted",
    }
    sent = sim.messages(world.phone_number_id)
    assert sorted(m["wamid"] for m in sent) == sorted(e["wamid"] for e in events)
    assert {m["to"] for m in sent} == {"+34600000123"}  # the documented rule: E.164 with +

    # a bad message is refused by the CLI before it reaches the queue
    bad = await asyncio.to_thread(
        whatsapp_send, rabbitmq.amqp_url, "--pool", pool, "--tenant-id", tenant_id,
        "--phone-number-id", world.phone_number_id, "--to", "not-a-number", "--text", "x",
    )  # fmt: skip
    assert bad.returncode == 2
    assert "invalid_recipient" in bad.stderr

    # the kill switch reaches the worker through the same mount
    started = time.monotonic()
    kubectl(
        "patch", "wat", "acme", "-n", namespace, "--type=merge",
        "-p", json.dumps({"spec": {"suspend": True}}),
    )  # fmt: skip

    def gone() -> bool:
        mirror_pool_secrets(kubectl.secrets, WORKERS_NAMESPACE, pool, volume)  # kubelet's sync
        return worker.metric("whatsapp_worker_config_tenants") == 0

    wait_for(gone, 30, 0.2, "the suspended tenant gone from the worker")
    print(f"\n[figure] suspend -> gone from the worker's loaded config in "
          f"{time.monotonic() - started:.1f} s")  # fmt: skip
