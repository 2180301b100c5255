"""`make demo`'s webhook half: the shared app (examples/app.yaml), the receiver
(`whatsapp-webhook`) on the config the operator publishes, the simulator's app pointed at it
(Meta's verification GET included), then the seed's message followed from `accepted` to
`sent` and `delivered`, and a customer's reply arriving on `whatsapp.inbound`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from whatsapp_contract.webhook import CONFIG_KEY, CONFIG_SECRET, INBOUND_EXCHANGE
from whatsapp_testkit import controlplane
from whatsapp_testkit.procs import spawn
from whatsapp_testkit.webhook import Receiver

APP_ID = "1111111111"  # examples/simulator-seed.yaml and examples/app.yaml
APP_NAME = "demo-app"
WABA_ID = "102290129340398"
PHONE_ID = "106540352242922"
CUSTOMER = "919876543220"
VERIFY_TOKEN_FILE = "verify-token"

Kubectl = Callable[..., str]


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def install_app(kubectl: Kubectl, root: Path, operator_ns: str, namespace: str) -> None:
    """The platform team's part: the app and its Secrets (operator's namespace), and the
    namespace label its namespaceSelector asks for; then the tenant points at the app."""
    say("installing the shared Meta app (WhatsAppApp, cluster-scoped; its Secrets in "
        f"{operator_ns})")  # fmt: skip
    print(kubectl("apply", "-n", operator_ns, "-f", str(root / "examples" / "app.yaml")))
    label = "whatsapp.operator.dev/app=demo-app"  # what the app's namespaceSelector asks for
    print(kubectl("label", "--overwrite", "namespace", namespace, label))
    patch = json.dumps({"spec": {"appRef": {"name": APP_NAME}}})
    print(kubectl("patch", "wat", "demo-tenant", "-n", namespace, "--type=merge", "-p", patch))


def verify_token(root: Path) -> str:
    """The verify token examples/app.yaml puts in its Secret (what the platform team also
    types into Meta's App Dashboard)."""
    import yaml

    for doc in yaml.safe_load_all((root / "examples" / "app.yaml").read_text()):
        if doc and doc.get("kind") == "Secret":
            token = (doc.get("stringData") or {}).get("verifyToken")
            if isinstance(token, str):
                return token
    sys.exit("examples/app.yaml has no Secret with stringData.verifyToken")


def wait_app_ready(kubectl: Kubectl) -> None:
    say("waiting for the app to be checked at Meta (the simulator)")
    kubectl("wait", "--for=condition=Ready", "--timeout=60s", f"waapp/{APP_NAME}")
    print(kubectl("get", "waapp", "-o", "wide"))


def start_receiver(
    kubeconfig: Path, amqp_url: str, run: Path, workers_ns: str, pids: dict[str, int]
) -> Receiver:
    """The config Secret mounted kubelet's way, then `whatsapp-webhook` on it."""
    say(f"mounting the receiver's config (Secret {workers_ns}/{CONFIG_SECRET}), kubelet's way")
    mount = run / "webhook-config"
    mirror = spawn(
        [sys.executable, str(Path(__file__).with_name("kubelet.py")),
         str(controlplane.find_kubectl()), str(kubeconfig), workers_ns, f"secret/{CONFIG_SECRET}",
         str(mount)],
        run / "kubelet-webhook.log", detach=True,
    )  # fmt: skip
    pids["kubelet.py (webhook config)"] = mirror.pid
    deadline = time.monotonic() + 60
    while not _lists_number(mount / CONFIG_KEY):
        if time.monotonic() > deadline:
            sys.exit(f"the operator did not publish the receiver's config: see {run}")
        time.sleep(0.3)
    say("starting the webhook receiver (whatsapp-webhook: no Kubernetes access, RabbitMQ only)")
    receiver = Receiver(run / "webhook.log", amqp_url=amqp_url, config=None, config_dir=mount)
    receiver.start()
    pids["whatsapp-webhook"] = receiver.proc.pid  # type: ignore[union-attr]
    print(f"receiver at {receiver.url} (log {receiver.log_path})")
    return receiver


def _lists_number(path: Path) -> bool:
    try:
        config = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return any(n.get("phone_number_id") == PHONE_ID for n in config.get("numbers", []))


def point_meta_at(sim_url: str, receiver: Receiver, verify_token: str) -> None:
    from whatsapp_simulator.client import SimulatorAdmin

    say("pointing the app's Callback URL at the receiver (Meta's verification GET first)")
    callback = f"{receiver.url}/webhooks/{APP_ID}"
    with SimulatorAdmin(sim_url) as admin:
        admin.set_webhook(APP_ID, callback, verify_token, verify=True)
        apps = admin.subscribe_app(WABA_ID, APP_ID)
    print(f"    callback {callback}: verified; WABA {WABA_ID} subscribed apps {apps}")


def follow_seed_message(amqp_url: str, sim_url: str, message: dict[str, Any]) -> None:
    """Publish the seed's message; print its result events as they come (accepted by the
    worker, then sent and delivered from Meta's status webhooks)."""
    from whatsapp_testkit.amqp import Broker
    from whatsapp_worker import tracing

    async def run() -> list[dict[str, Any]]:
        async with Broker(amqp_url, "default") as broker:  # its results queue is bound first
            broker.headers = lambda: tracing.producer_headers() or {}  # traceparent, if tracing
            with tracing.publish(broker.topology.exchange, message["metadata"].get("messageId")):
                await broker.publish([message])
            events: list[dict[str, Any]] = []
            deadline = time.monotonic() + 30
            while len(events) < 3 and time.monotonic() < deadline:
                events += await broker.collect(1, within=deadline - time.monotonic())
            return events

    print(json.dumps(message, indent=2))
    tracing.configure("whatsapp-demo")  # the OTEL_* environment decides, as for the workers
    try:
        events = asyncio.run(run())
    finally:
        tracing.shutdown()
    statuses = [e.get("status") for e in events]
    say(f"its result events on whatsapp.results: {' -> '.join(map(str, statuses))}")
    for event in events:
        print(json.dumps(event, indent=2))
    if statuses[:1] != ["accepted"] or not {"sent", "delivered"} <= set(statuses):
        sys.exit("expected accepted, sent and delivered: see the worker's and receiver's logs")


def inbound_message(amqp_url: str, sim_url: str, text: str) -> None:
    """A customer's message, injected at the simulator, read from whatsapp.inbound. It also
    opens the customer's 24-hour service window: the workers send free-form messages to a
    customer only within it (outside, Meta accepts templates only)."""
    import aio_pika

    from whatsapp_simulator.client import SimulatorAdmin

    async def run() -> dict[str, Any]:
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(
                INBOUND_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(exclusive=True)
            await queue.bind(exchange, routing_key="#")
            with SimulatorAdmin(sim_url) as admin:
                admin.inject_inbound(PHONE_ID, CUSTOMER, text, name="Asha")
            message = await queue.get(timeout=30, fail=False)
            for _ in range(60):
                if message is not None:
                    break
                await asyncio.sleep(0.5)
                message = await queue.get(fail=False)
            if message is None:
                sys.exit("no inbound message on whatsapp.inbound within 30 s: see webhook.log")
            await message.ack()
            body: dict[str, Any] = json.loads(message.body)
            return body

    say(f"the customer writes {text!r} (injected at the simulator): on {INBOUND_EXCHANGE}")
    print(json.dumps(asyncio.run(run()), indent=2))


def describe(kubeconfig: Path, namespace: str) -> None:
    out = subprocess.run(
        [str(controlplane.find_kubectl()), "--kubeconfig", str(kubeconfig), "get", "events",
         "-n", namespace, "--sort-by=.lastTimestamp"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    say(f"kubectl get events -n {namespace}")
    print(out)
