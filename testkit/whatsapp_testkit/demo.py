"""`make demo`: the whole system on this machine, no Docker.

Starts the control plane (hack/control-plane), PostgreSQL, RabbitMQ, the Graph API simulator
seeded with the demo tenant, the operator, a sender worker and the webhook receiver; applies
examples/tenant-policy.yaml, examples/app.yaml and examples/tenant.yaml (pointed at the
app); waits for Ready; enqueues the customer's message (whatsapp.inbound; it opens the 24-hour
service window), then the seed's message, followed from accepted to sent and delivered (Meta's
status webhooks), and the customer's reply (demo_webhooks.py). `make demo-down` stops
everything. State and logs live in .run/demo/.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from whatsapp_testkit import controlplane, demo_webhooks
from whatsapp_testkit.procs import ControlPlaneError, pid_running, spawn, stop_pid
from whatsapp_testkit.services import GraphSimulator, Operator, Worker

ROOT = controlplane.REPO_ROOT
RUN = ROOT / ".run" / "demo"
NAMESPACE = "whatsapp-demo"
WORKERS = "whatsapp-workers"
OPERATOR_NS = "whatsapp-system"  # the shared app's Secrets, the receiver's config


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> str:
    cmd = [str(controlplane.find_kubectl()), "--kubeconfig", str(kubeconfig), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        sys.exit(f"kubectl {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def control_plane_up() -> Path:
    out = subprocess.run(
        [str(ROOT / "hack" / "control-plane"), "up"], stdout=subprocess.PIPE, text=True, check=True
    ).stdout
    return Path(out.strip().removeprefix("export KUBECONFIG="))


def harness(module: str, command: str) -> str:
    """`python -m whatsapp_testkit.<module> up|down`: the Postgres and RabbitMQ harnesses."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "testkit")}
    proc = subprocess.run(
        [sys.executable, "-m", f"whatsapp_testkit.{module}", command],
        stdout=subprocess.PIPE, text=True, env=env, check=False,
    )  # fmt: skip
    if command == "up" and proc.returncode != 0:  # the harness said why, in one line
        sys.exit(f"make demo: {module} did not start (the line above says why)")
    return proc.stdout.strip()


def missing_system_deps() -> list[str]:
    """Why PostgreSQL or RabbitMQ could not start here, one reason each (empty: all found)."""
    from whatsapp_testkit import postgres, rabbitmq

    found = []
    for find in (postgres.find_bin_dir, rabbitmq.find_scripts_dir, rabbitmq.find_epmd):
        try:
            find()
        except (postgres.PostgresError, rabbitmq.RabbitMQError) as exc:
            found.append(str(exc))
    return found


def check() -> int:
    """The demo's dependency check: ONE line and exit code 1 when something is missing."""
    missing = missing_system_deps()
    if missing:
        print(f"make demo: {'; '.join(missing)}. Run `sudo hack/install-system-deps.sh`",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def postgres(command: str) -> str:
    return harness("postgres", command)


# The seed's queue message, as its producers publish it (seed: "Credential Retrieval Flow"),
# for the demo tenant of examples/tenant.yaml.
SEED_MESSAGE = {
    "metadata": {"tenantId": "t_a3eecb94bb822a92", "phoneNumberId": "106540352242922"},
    "wabaPayload": {"to": "919876543220", "type": "text", "text": {"body": "Hello!"}},
}


def show_simulator_log(sim_url: str) -> None:
    from whatsapp_simulator.client import SimulatorAdmin

    say("what Meta (the simulator) received and answered, and the webhooks it sent")
    with SimulatorAdmin(sim_url) as admin:
        for message in admin.messages("106540352242922"):
            print(f"    wamid {message['wamid']}  to {message['to']}  body {message['body']}")
        for delivery in admin.webhooks(kind="status"):
            print(
                f"    webhook {delivery['status']:<9} {delivery['wamid']}  attempts "
                f"{delivery['attempts']}  answered {delivery['last_code']}"
            )


def show_row(dsn: str, tenant_id: str) -> None:
    import psycopg  # the demo runs in the project's venv

    with psycopg.connect(dsn) as conn:
        cur = conn.execute(
            "SELECT id, tenant_id, waba_id, phone_number_id, display_phone_number, "
            "quality_rating, is_active, configured, managed_by, access_token, verify_token, "
            "updated_at "
            "FROM tenant_whatsapp_config WHERE tenant_id = %s",
            (tenant_id,),
        )
        names = [d.name for d in cur.description or ()]
        for row in cur.fetchall():
            for name, value in zip(names, row, strict=True):
                print(f"    {name:<22} {value}")


def down() -> int:
    state_file = RUN / "state.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        for name, pid in state.get("pids", {}).items():
            binary = name.split(" ")[0]  # "kubelet.py (webhook config)": the binary first
            if pid_running(int(pid), binary):
                stop_pid(int(pid), binary)
                say(f"stopped {name} (pid {pid})")
        state_file.unlink()
    subprocess.run([str(ROOT / "hack" / "control-plane"), "down"], check=False)
    postgres("down")
    harness("rabbitmq", "down")
    return 0


def start_control_plane() -> Path:
    say("starting the Kubernetes control plane (kube-apiserver + etcd, built from source once)")
    kubeconfig = control_plane_up()
    print(kubectl(kubeconfig, "version").strip())
    return kubeconfig


def start_postgres() -> tuple[str, Path]:
    """PostgreSQL's DSN, and the operator's encryption keys (one made on the first run)."""
    say("starting PostgreSQL (Debian's server, as the postgres user, on a free port)")
    dsn = postgres("up").splitlines()[-1].split("=", 1)[1]
    keys = RUN / "keys"
    keys.mkdir(exist_ok=True)
    if not any(keys.iterdir()):
        (keys / "demo-key-1").write_bytes(os.urandom(32))  # AES-256 key, id "demo-key-1"
    return dsn, keys


def start_rabbitmq() -> str:
    say("starting RabbitMQ (Debian's server, as the rabbitmq user, on free ports)")
    return harness("rabbitmq", "up").splitlines()[-1].split("=", 1)[1]


def start_simulator() -> GraphSimulator:
    say("starting the Graph API simulator with the demo tenant's WABA, number and token")
    sim = GraphSimulator(RUN / "graph-sim.log", seed=ROOT / "examples" / "simulator-seed.yaml")
    sim.start()
    print(f"simulator at {sim.url} (log {sim.log_path})")
    return sim


def install_example(kubeconfig: Path) -> None:
    say("installing the CRD and the example tenant")
    try:
        controlplane.install_crds(kubeconfig, NAMESPACE, WORKERS, OPERATOR_NS, field_manager="demo")
    except ControlPlaneError as exc:
        sys.exit(f"installing the CRDs failed: {exc}")
    say("the platform team allows the demo namespace the demo's tenant id (WhatsAppTenantPolicy)")
    print(kubectl(kubeconfig, "apply", "-f", str(ROOT / "examples" / "tenant-policy.yaml")))
    print(
        kubectl(kubeconfig, "apply", "-n", NAMESPACE, "-f", str(ROOT / "examples" / "tenant.yaml"))
    )


def save_pids(pids: dict[str, int]) -> None:
    """What `make demo-down` stops (besides the control plane, PostgreSQL and RabbitMQ)."""
    (RUN / "state.json").write_text(json.dumps({"pids": pids}))


def audit_key_file() -> Path:
    """The audit trail's HMAC key (made on the first run), as a mounted Secret's file."""
    path = RUN / "audit-key"
    if not path.exists():
        path.write_text(base64.b64encode(os.urandom(48)).decode() + "\n")
        path.chmod(0o600)
    return path


def start_operator(
    kubeconfig: Path, sim: GraphSimulator, dsn: str, amqp_url: str, keys: Path
) -> Operator:
    say("starting the operator")
    op = Operator(
        RUN / "operator.log",
        kubeconfig=kubeconfig,
        graph_api_url=sim.url,
        extra_args=[
            "--encryption-keys-dir",
            str(keys),
            "--audit-key-file",
            str(audit_key_file()),
            "--workers-namespace",
            WORKERS,
            "--operator-namespace",
            OPERATOR_NS,
            "--webhook-receiver",
        ],
        extra_env={"WHATSAPP_OPERATOR_DATABASE_URL": dsn, "WHATSAPP_OPERATOR_AMQP_URL": amqp_url},
    )
    op.start()
    return op


def wait_tenant_ready(kubeconfig: Path) -> None:
    say("waiting for the tenant to become Ready")
    started = time.monotonic()
    kubectl(
        kubeconfig,
        "wait",
        "-n",
        NAMESPACE,
        "--for=condition=Ready",
        "--timeout=60s",
        "wat/demo-tenant",
    )
    print(f"Ready after {time.monotonic() - started:.1f} s")

    say(f"kubectl get wat -n {NAMESPACE} -o wide")
    print(kubectl(kubeconfig, "get", "wat", "-n", NAMESPACE, "-o", "wide"))
    say(f"kubectl describe wat demo-tenant -n {NAMESPACE}")
    print(kubectl(kubeconfig, "describe", "wat", "demo-tenant", "-n", NAMESPACE))


def show_stored_and_published(kubeconfig: Path, dsn: str) -> None:
    say("the tenant's row in tenant_whatsapp_config (tokens as stored: ciphertext)")
    show_row(dsn, "t_a3eecb94bb822a92")

    say(f"the resolved config published for the workers (namespace {WORKERS})")
    time.sleep(1)
    print(kubectl(kubeconfig, "get", "secrets", "-n", WORKERS, "-L", "whatsapp.operator.dev/pool"))


def start_worker(
    kubeconfig: Path, amqp_url: str, sim: GraphSimulator, pids: dict[str, int]
) -> Worker:
    """The pool's Secrets mounted kubelet's way, then a sender worker on them (both recorded
    in `pids`); returns once the worker loaded the tenant and holds its shards."""
    say("mounting the pool's Secrets for the worker, kubelet's way (no kubelet runs here)")
    mount = RUN / "worker-config"
    mirror = spawn(
        [sys.executable, str(ROOT / "testkit" / "whatsapp_testkit" / "kubelet.py"),
         str(controlplane.find_kubectl()), str(kubeconfig), WORKERS, "default", str(mount)],
        RUN / "kubelet.log", detach=True,
    )  # fmt: skip
    pids["kubelet.py"] = mirror.pid
    say("starting a sender worker (whatsapp-worker: a Celery worker hosting the sender)")
    worker = Worker(
        RUN / "worker.log", amqp_url=amqp_url, graph_api_url=sim.url, config_dir=mount,
        worker_id="demo-worker",
    )  # fmt: skip
    worker.start()
    pids["whatsapp-worker"] = worker.proc.pid  # type: ignore[union-attr]
    save_pids(pids)
    deadline = time.monotonic() + 60
    while not (
        worker.metric("whatsapp_worker_config_tenants") == 1
        and worker.metric("whatsapp_worker_shards_held") == 8
    ):
        if time.monotonic() > deadline:
            sys.exit(f"the worker did not load the config and take its shards: {worker.log_path}")
        time.sleep(0.3)
    print(f"worker pid {worker.proc.pid}: 1 tenant loaded, 8 shards held (log {worker.log_path})")  # type: ignore[union-attr]
    return worker


def show_current_workers(kubeconfig: Path) -> None:
    say("which workers run the published config (the tenant's status, kubectl get -o wide)")
    deadline = time.monotonic() + 30
    while "1/1 current" not in kubectl(kubeconfig, "get", "wat", "-n", NAMESPACE, "-o", "wide"):
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    print(kubectl(kubeconfig, "get", "wat", "-n", NAMESPACE, "-o", "wide"))


def show_what_next(kubeconfig: Path, dsn: str, keys: Path, op: Operator, amqp_url: str) -> None:
    say("the seed's credentials lookup, for legacy services (whatsapp-credentials)")
    print(
        f"    WHATSAPP_OPERATOR_DATABASE_URL={dsn} \\\n"
        f"    WHATSAPP_OPERATOR_AUDIT_KEY_FILE={audit_key_file()} \\\n"
        f"      whatsapp-credentials get --tenant-id t_a3eecb94bb822a92 --keys-dir {keys} --json"
    )

    say("the demo keeps running. Try it:")
    print(f"""    export KUBECONFIG={kubeconfig}
    kubectl get wat -A -w
    kubectl -n {NAMESPACE} annotate wat demo-tenant whatsapp.operator.dev/revalidate=now
    kubectl -n {NAMESPACE} delete secret demo-tenant-meta-token   # watch Ready turn False
    kubectl get waapp -o wide
    tail -f {op.log_path} {RUN / "worker.log"} {RUN / "webhook.log"}
    export WHATSAPP_WORKER_AMQP_URL='{amqp_url}'
    .venv/bin/whatsapp-send --tenant-id t_a3eecb94bb822a92 --phone-number-id 106540352242922 \\
        --to 919876543220 --text 'Hello again'
Tear everything down with: make demo-down""")


def up() -> int:
    if check() != 0:
        return 1
    down()
    RUN.mkdir(parents=True, exist_ok=True)
    kubeconfig = start_control_plane()
    dsn, keys = start_postgres()
    amqp_url = start_rabbitmq()
    sim = start_simulator()
    install_example(kubeconfig)
    op = start_operator(kubeconfig, sim, dsn, amqp_url, keys)
    pids = {"whatsapp-graph-sim": sim.proc.pid, "whatsapp-operator": op.proc.pid}  # type: ignore[union-attr]
    save_pids(pids)
    print(f"operator pid {op.proc.pid} (log {op.log_path})")  # type: ignore[union-attr]

    def run_kubectl(*args: str) -> str:
        return kubectl(kubeconfig, *args)

    demo_webhooks.install_app(run_kubectl, ROOT, OPERATOR_NS, NAMESPACE)
    demo_webhooks.wait_app_ready(run_kubectl)
    wait_tenant_ready(kubeconfig)
    show_stored_and_published(kubeconfig, dsn)
    start_worker(kubeconfig, amqp_url, sim, pids)
    receiver = demo_webhooks.start_receiver(kubeconfig, amqp_url, RUN, OPERATOR_NS, pids)
    save_pids(pids)
    demo_webhooks.point_meta_at(sim.url, receiver, demo_webhooks.verify_token(ROOT))
    demo_webhooks.inbound_message(amqp_url, sim.url, "Hi! Is my order ready?")
    say("enqueueing the seed's message (plain JSON to the pool's exchange, key phoneNumberId)")
    demo_webhooks.follow_seed_message(amqp_url, sim.url, SEED_MESSAGE)
    show_simulator_log(sim.url)
    demo_webhooks.inbound_message(amqp_url, sim.url, "Thanks, got it!")
    demo_webhooks.describe(kubeconfig, NAMESPACE)
    show_current_workers(kubeconfig)
    show_what_next(kubeconfig, dsn, keys, op, amqp_url)
    return 0


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    if command == "up":
        return up()
    if command == "down":
        return down()
    if command == "check":
        return check()
    print("usage: python -m whatsapp_testkit.demo up|down|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
