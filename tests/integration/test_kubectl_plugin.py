"""`kubectl whatsapp`, run through the real kubectl binary (the plugin found on PATH as
`kubectl-whatsapp`), against the real API server, the session operator, PostgreSQL,
RabbitMQ and a sender worker."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_operator import apply_tenant, cond, get

from conftest import (
    APP_ID,
    APP_SECRET,
    ISSUED_TOKENS,
    WORKERS_NAMESPACE,
    Cluster,
    Kubectl,
    make_world,
)  # fmt: skip
from whatsapp_testkit.amqp import Broker
from whatsapp_testkit.kubelet import KubeletVolume, mirror_pool_secrets
from whatsapp_testkit.services import VENV_BIN
from whatsapp_testkit.world import dump, secret, wait_for

pytestmark = pytest.mark.integration


def plugin(
    cluster: Cluster, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`kubectl whatsapp ARGS`: kubectl itself finds the plugin on PATH."""
    environ = {**cluster.env(), "PATH": f"{VENV_BIN}{os.pathsep}/usr/bin:/bin", **(env or {})}
    return subprocess.run(
        [cluster.kubectl_bin, "whatsapp", *args],
        env=environ, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def ready_tenant(
    kubectl: Kubectl, namespace: str, sim: Any, name: str = "acme", **spec: Any
) -> Any:
    world = make_world(sim)
    apply_tenant(kubectl, namespace, world, name, **spec)
    wait_for(
        lambda: cond(get(kubectl, namespace, name), "Ready").get("status") == "True",
        60, 0.3, f"{name} Ready",
    )  # fmt: skip
    return world


def test_kubectl_lists_the_plugin(cluster: Cluster) -> None:
    out = subprocess.run(
        [cluster.kubectl_bin, "plugin", "list", "--name-only"],
        env={**cluster.env(), "PATH": f"{VENV_BIN}{os.pathsep}/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "kubectl-whatsapp" in out.stdout.split()


def test_status_table_and_json(
    cluster: Cluster, kubectl: Kubectl, namespace: str, operator: Any, sim: Any
) -> None:
    ready_tenant(kubectl, namespace, sim, "acme")
    apply_tenant(kubectl, namespace, make_world(sim), "nokey", with_secret=False)
    wait_for(
        lambda: cond(get(kubectl, namespace, "nokey"), "Ready").get("reason") == "SecretNotFound",
        60, 0.3, "nokey SecretNotFound",
    )  # fmt: skip
    acme = get(kubectl, namespace, "acme")

    table = plugin(cluster, "status", "-n", namespace)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    print("\n" + table.stdout)
    assert lines[0].split() == [
        "NAME", "TENANT", "READY", "REASON", "TOKEN-EXPIRES", "LAST-VALIDATED", "WORKERS",
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["nokey"][2:4] == ["False", "SecretNotFound"]
    assert rows["acme"][1:4] == [acme["spec"]["tenantId"], "True", "<none>"]
    assert lines[1].startswith("nokey")  # the tenant needing a look comes first

    as_json = plugin(cluster, "status", "-o", "json", "--namespace", namespace)
    assert as_json.returncode == 0, as_json.stderr
    found = {r["name"]: r for r in json.loads(as_json.stdout)}
    assert found["acme"] == {
        "namespace": namespace,
        "name": "acme",
        "tenantId": acme["spec"]["tenantId"],
        "ready": "True",
        "reason": "",
        "message": "",
        "tokenExpires": acme["status"]["token"].get("expiresAt", "never"),
        "lastValidated": acme["status"]["token"]["lastValidatedAt"],
        "workers": acme["status"].get("published", {}).get("workers", ""),
    }
    assert found["nokey"]["reason"] == "SecretNotFound"

    everywhere = plugin(cluster, "status", "-A", "-o", "json")
    assert {(r["namespace"], r["name"]) for r in json.loads(everywhere.stdout)} >= {
        (namespace, "acme"),
        (namespace, "nokey"),
    }
    empty = plugin(cluster, "status", "-n", "kube-public")
    assert empty.returncode == 0
    assert empty.stderr == 'No WhatsAppTenants found in namespace "kube-public".\n'


def test_revalidate_prints_what_the_check_found(
    cluster: Cluster, kubectl: Kubectl, namespace: str, operator: Any, sim: Any
) -> None:
    world = ready_tenant(kubectl, namespace, sim, "acme")
    ok = plugin(cluster, "revalidate", "acme", "-n", namespace, "--timeout", "60")
    assert ok.returncode == 0, ok.stderr
    assert "TokenValid=True (TokenValid," in ok.stdout
    assert "whatsapp.operator.dev/revalidate" not in (
        get(kubectl, namespace, "acme")["metadata"].get("annotations") or {}
    )

    sim.expire_token(world.token)
    expired = plugin(cluster, "revalidate", "acme", "-n", namespace)
    assert expired.returncode == 1, expired.stdout + expired.stderr
    assert "TokenValid=False (TokenExpired, changed)" in expired.stdout
    assert "Ready=False (TokenExpired, changed)" in expired.stdout


@pytest.mark.parametrize("credentials", [True, False], ids=["refreshed", "refresh failed"])
def test_refresh_prints_the_rotation_outcome(
    cluster: Cluster,
    kubectl: Kubectl,
    namespace: str,
    operator: Any,
    sim: Any,
    credentials: bool,
) -> None:
    if credentials:
        kubectl.apply(
            dump(secret("meta-app", {"appId": APP_ID, "appSecret": APP_SECRET})), namespace
        )
    rotation = {"strategy": "Refresh", "appCredentialsSecretRef": {"name": "meta-app"}}
    world = make_world(sim, expires_in=3600)
    apply_tenant(kubectl, namespace, world, "acme", rotation=rotation)
    wait_for(
        lambda: cond(get(kubectl, namespace, "acme"), "Ready").get("status") == "True",
        60, 0.3, "acme Ready",
    )  # fmt: skip
    out = plugin(cluster, "refresh", "acme", "-n", namespace, "--timeout", "60")
    assert out.returncode == 0, out.stdout + out.stderr  # Ready either way: the old token works
    reason = "Refreshed" if credentials else "RefreshFailed"
    rotation_line = next(
        line for line in out.stdout.splitlines() if line.startswith("TokenRotation=")
    )
    assert f"({reason}, changed)" in rotation_line
    assert world.token not in out.stdout + out.stderr


def test_errors_are_one_line(
    cluster: Cluster, kubectl: Kubectl, namespace: str, operator: Any, tmp_path: Path
) -> None:
    missing = plugin(cluster, "revalidate", "nobody", "-n", namespace, "--timeout", "1")
    assert missing.returncode == 1
    assert missing.stderr == (
        f'error: whatsapptenant "nobody" in namespace "{namespace}": not found\n'
    )

    # a ServiceAccount without any role: its token, in a kubeconfig of its own
    kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    token = kubectl("create", "token", "nobody", "-n", namespace).stdout.strip()
    config = yaml.safe_load(kubectl("config", "view", "--minify", "--flatten").stdout)
    config["users"] = [{"name": "nobody", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "nobody"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    denied = plugin(cluster, "status", "-n", namespace, "--kubeconfig", str(path))
    assert denied.returncode == 1
    assert denied.stderr.startswith("error: listing whatsapptenants: forbidden (403")
    assert denied.stderr.count("\n") == 1

    nowhere = plugin(cluster, "status", "--kubeconfig", str(tmp_path / "none"))
    assert nowhere.returncode == 1
    assert nowhere.stderr == f"error: kubeconfig {tmp_path / 'none'} not found\n"


def test_audit_verify(
    cluster: Cluster,
    kubectl: Kubectl,
    namespace: str,
    operator: Any,
    sim: Any,
    postgres: Any,
    audit_key_file: Path,
    tmp_path: Path,
) -> None:
    ready_tenant(kubectl, namespace, sim, "acme")  # its TokenValid transition is audited
    intact = plugin(
        cluster, "audit", "verify",
        "--database-url", postgres.dsn, "--audit-key-file", str(audit_key_file),
    )  # fmt: skip
    assert intact.returncode == 0, intact.stderr
    assert intact.stdout.startswith("audit chain intact: ")

    wrong = tmp_path / "wrong-key"
    wrong.write_text("another-key-another-key-another-key-0123456789")
    broken = plugin(
        cluster, "audit", "verify", "--audit-key-file", str(wrong),
        env={"WHATSAPP_OPERATOR_DATABASE_URL": postgres.dsn},
    )  # fmt: skip
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert broken.stderr.startswith("audit chain broken at entry ")


def test_check_shows_what_the_operator_sees(
    cluster: Cluster, kubectl: Kubectl, namespace: str, operator: Any, sim: Any
) -> None:
    ready_tenant(kubectl, namespace, sim, "acme")  # a Graph API check made
    url = f"http://127.0.0.1:{operator.port}"

    def states() -> dict[str, Any] | None:
        out = plugin(cluster, "check", "--operator-url", url, "-o", "json")
        found = {d["component"]: d for d in json.loads(out.stdout)}
        # kopf caches the probes for 10 s: the first answer may predate the tenant's check
        return found if found["graph"]["state"] == "up" and out.returncode == 0 else None

    found = wait_for(states, 40, 1.0, "the operator's probes")
    assert found["postgresql"]["state"] == "up"
    assert found["rabbitmq"]["state"] == "up"
    assert found["rabbitmq"]["detail"].startswith("consuming worker heartbeats")
    assert found["graph"]["detail"].startswith("last call answered at ")

    table = plugin(cluster, "check", "--operator-url", url)
    assert table.returncode == 0, table.stderr
    print("\n" + table.stdout)
    assert [line.split()[:2] for line in table.stdout.splitlines()] == [
        ["COMPONENT", "STATE"], ["postgresql", "up"], ["rabbitmq", "up"], ["graph", "up"],
    ]  # fmt: skip

    down = plugin(cluster, "check", "--operator-url", "http://127.0.0.1:9")
    assert down.returncode == 1
    assert down.stderr == (
        "error: cannot reach the operator at http://127.0.0.1:9/healthz: ConnectError\n"
    )


def host_address() -> str | None:
    """This machine's first non-loopback IPv4 address (the API server refuses to proxy to
    loopback), or None."""
    found = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False)
    return next((a for a in found.stdout.split() if "." in a and not a.startswith("127.")), None)


def test_check_through_the_pod_proxy(
    cluster: Cluster, kubectl: Kubectl, namespace: str, operator: Any, sim: Any
) -> None:
    """No kubelet runs here: a Pod object labelled as the chart labels the operator, marked
    Running at this machine's address, where a relay serves the session operator's own
    /healthz; the plugin finds the pod and reads it through the API server's pod proxy."""
    address = host_address()
    if address is None:
        pytest.skip("no non-loopback address to stand in for a pod IP")
    ready_tenant(kubectl, namespace, sim, "acme")

    class Relay(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with urllib.request.urlopen(operator.health_url(), timeout=10) as got:  # noqa: S310
                body = got.read()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    relay = http.server.ThreadingHTTPServer((address, 0), Relay)
    threading.Thread(target=relay.serve_forever, daemon=True).start()
    try:
        kubectl("create", "serviceaccount", "default", "-n", namespace, check=False)
        labels = {
            "app.kubernetes.io/name": "whatsapp-operator",
            "app.kubernetes.io/component": "operator",
        }
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "whatsapp-operator-0", "labels": labels},
            "spec": {"automountServiceAccountToken": False,
                     "containers": [{"name": "operator", "image": "whatsapp-operator:dev"}]},
        }  # fmt: skip
        kubectl.apply(dump(pod), namespace)
        status = {"status": {"phase": "Running", "podIP": address, "podIPs": [{"ip": address}]}}
        kubectl(
            "patch", "pod", "whatsapp-operator-0", "-n", namespace, "--subresource=status",
            "--type=merge", "-p", json.dumps(status),
        )  # fmt: skip
        port = str(relay.server_address[1])

        def through_proxy() -> dict[str, Any] | None:
            out = plugin(
                cluster, "check", "-o", "json",
                "--operator-namespace", namespace, "--operator-port", port,
            )  # fmt: skip
            assert out.returncode in (0, 1), out.stderr
            found = {d["component"]: d for d in json.loads(out.stdout)}
            return found if found["graph"]["state"] == "up" else None

        found = wait_for(through_proxy, 40, 1.0, "the operator's probes through the pod proxy")
        assert found["postgresql"]["state"] == "up"
        assert found["rabbitmq"]["state"] == "up"
    finally:
        relay.shutdown()
        relay.server_close()
    nobody = plugin(cluster, "check", "--operator-namespace", "kube-public")
    assert nobody.returncode == 1
    assert nobody.stderr.startswith("error: no running operator pod (app.kubernetes.io/name=")


async def test_send_reaches_meta_through_the_pool(
    cluster: Cluster,
    kubectl: Kubectl,
    namespace: str,
    operator: Any,
    sim: Any,
    rabbitmq: Any,
    start_worker: Any,
    tmp_path: Path,
) -> None:
    pool = f"k{namespace[2:]}"
    world = ready_tenant(kubectl, namespace, sim, "acme", senderPool=pool)
    ready_tenant(kubectl, namespace, sim, "idle", senderPool=f"{pool}-idle")

    volume = KubeletVolume(tmp_path / "mount")
    volume.target.mkdir()
    wait_for(
        lambda: mirror_pool_secrets(kubectl.secrets, WORKERS_NAMESPACE, pool, volume),
        30, 0.2, "the pool's config published",
    )  # fmt: skip
    start_worker(volume.target, pool)

    def converged() -> bool:
        mirror_pool_secrets(kubectl.secrets, WORKERS_NAMESPACE, pool, volume)
        published = get(kubectl, namespace, "acme")["status"].get("published") or {}
        return bool(published.get("workers") == "1/1 current")

    wait_for(converged, 30, 0.3, "the worker on the current config")
    workers = plugin(cluster, "status", "-n", namespace, "-o", "json")
    assert {r["name"]: r["workers"] for r in json.loads(workers.stdout)}["acme"] == "1/1 current"

    env = {"WHATSAPP_WORKER_AMQP_URL": rabbitmq.amqp_url}
    async with Broker(rabbitmq.amqp_url, pool) as broker:
        sent = await asyncio.to_thread(
            plugin, cluster, "send", "acme", "-n", namespace,
            "--to", "+34 600 000 321", "--text", "hello from kubectl", env=env,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        key = sent.stdout.split()[0]
        assert key.startswith("kubectl-")
        events = await broker.collect(1, within=30)
    assert [(e["messageId"], e["status"]) for e in events] == [(key, "accepted")]
    assert [m["to"] for m in sim.messages(world.phone_number_id)] == ["+34600000321"]
    # it waited for the worker's outcome (the tenant has no WhatsAppApp: no status will come)
    assert sent.stdout.splitlines()[1:] == [f"accepted: Meta took it (wamid {events[0]['wamid']})"]

    # a pool whose workers never ran has no queue: refused, not parked
    idle = await asyncio.to_thread(
        plugin, cluster, "send", "idle", "-n", namespace, "--to", "+34600000321", "--text", "x",
        env=env,
    )  # fmt: skip
    assert idle.returncode == 1
    assert idle.stderr == (
        f'error: no queue of pool "{pool}-idle" took the message: are its workers running?\n'
    )
    await send_waits_for_failures_and_times_out(cluster, kubectl, namespace, sim, world, pool, env)


async def send_waits_for_failures_and_times_out(
    cluster: Cluster, kubectl: Kubectl, namespace: str, sim: Any, world: Any, pool: str,
    env: dict[str, str],
) -> None:  # fmt: skip
    """`send` prints the worker's dead letter with Meta's code and exits 1; a message held
    (its tenant not Ready) ends the bounded wait with a clear error; --no-wait only publishes."""
    sim.add_fault(
        "error_code", kind="messages", phone_number_id=world.phone_number_id, code=131026,
        count=1, message="Message Undeliverable",
    )  # fmt: skip
    refused = await asyncio.to_thread(
        plugin, cluster, "send", "acme", "-n", namespace, "--to", "+34600000322", "--text", "x",
        env=env,
    )  # fmt: skip
    assert refused.returncode == 1, refused.stderr
    key, outcome = refused.stdout.splitlines()
    assert key.startswith("kubectl-")
    assert outcome.startswith("dead-lettered: permanent_error (Meta code 131026): "), outcome

    apply_tenant(kubectl, namespace, make_world(sim), "held", with_secret=False, senderPool=pool)
    held = await asyncio.to_thread(
        plugin, cluster, "send", "held", "-n", namespace, "--to", "+34600000323", "--text", "x",
        "--wait", "3", env=env,
    )  # fmt: skip
    assert held.returncode == 1
    assert len(held.stdout.splitlines()) == 1  # its id, no outcome
    assert held.stderr.startswith("error: no outcome within 3 s: the message is still queued")

    quick = await asyncio.to_thread(
        plugin, cluster, "send", "acme", "-n", namespace, "--to", "+34600000324", "--text", "x",
        "--no-wait", env=env,
    )  # fmt: skip
    assert quick.returncode == 0, quick.stderr
    assert len(quick.stdout.splitlines()) == 1


async def test_send_follows_the_delivery_statuses_through_the_receiver(
    cluster: Cluster, kubectl: Kubectl, namespace: str, operator: Any, sim: Any, rabbitmq: Any,
    start_worker: Any, artifacts: Path, tmp_path: Path,
) -> None:  # fmt: skip
    """A tenant with a WhatsAppApp: `send` waits past the worker's `accepted` for Meta's
    statuses, as the real `whatsapp-webhook` publishes them from the simulator's signed
    webhooks (the chain of test_worker_webhooks.py), and exits on `delivered` or `failed`."""
    from test_worker_webhooks import caught_up, new_app, publish, receiver_tenant, receiving

    from whatsapp_contract.webhook import WINDOWS_EXCHANGE, window_record
    from whatsapp_testkit.pools import PoolWorld, new_pool_name, recipient

    pool = PoolWorld(sim, new_pool_name("kubectl"), tmp_path / "resolved", APP_ID)
    try:
        hooked = receiver_tenant(pool)  # webhook_app_id in its resolved config
        worker = start_worker(pool.directory, pool.name)
        await caught_up(worker, ("windows",))
        good, bad = recipient(31), recipient(32)
        for wa_id in (good, bad):  # the customers wrote: free-form texts may go
            record = window_record(pool=pool.name, phone_number_id=hooked.phone, wa_id=wa_id,
                                   timestamp=int(time.time()) - 60)  # fmt: skip
            await publish(rabbitmq.amqp_url, WINDOWS_EXCHANGE, pool.name, record)
        spec = {"tenantId": hooked.tenant_id, "wabaId": hooked.config.waba_id,
                "phoneNumberId": hooked.phone, "tokenSecretRef": {"name": "hooked-token"},
                "senderPool": pool.name, "appRef": {"name": "kubectl-hooks"}}  # fmt: skip
        body = {"apiVersion": "whatsapp.operator.dev/v1alpha1", "kind": "WhatsAppTenant",
                "metadata": {"name": "hooked"}, "spec": spec}  # fmt: skip
        kubectl.apply(dump(body), namespace)  # what the plugin reads (the worker: `pool`)
        env = {"WHATSAPP_WORKER_AMQP_URL": rabbitmq.amqp_url}

        def send(to: str) -> subprocess.CompletedProcess[str]:
            return plugin(cluster, "send", "hooked", "-n", namespace, "--to", f"+{to}",
                          "--text", "hello", "--wait", "30", env=env)  # fmt: skip

        with receiving(sim, rabbitmq, pool, new_app(sim), artifacts, tmp_path / "webhook"):
            delivered = await asyncio.to_thread(send, good)
            assert delivered.returncode == 0, delivered.stdout + delivered.stderr
            lines = delivered.stdout.splitlines()
            assert lines[1].startswith("accepted: Meta took it (wamid "), lines
            assert "sent: Meta sent it to WhatsApp" in lines[2:]
            assert lines[-1] == "delivered: on the recipient's phone"
            before = sim.webhook_config()["failure_ratio"]
            sim.webhook_config(failure_ratio=1.0)  # Meta accepts, then reports a failure
            try:
                failed = await asyncio.to_thread(send, bad)
            finally:
                sim.webhook_config(failure_ratio=before)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        lines = failed.stdout.splitlines()
        assert lines[1].startswith("accepted: Meta took it"), lines
        assert lines[-1].startswith("failed: Meta code 131026 "), lines
    finally:
        ISSUED_TOKENS.extend(pool.issued)
