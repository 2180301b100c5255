"""`make demo`: the whole system on this machine, no Docker.

Starts the control plane (hack/control-plane), the Graph API simulator seeded with the demo
tenant, and the operator; applies examples/tenant.yaml; waits for Ready; shows what a user
sees. `make demo-down` stops everything. State and logs live in .run/demo/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from whatsapp_testkit import controlplane
from whatsapp_testkit.procs import pid_running, stop_pid
from whatsapp_testkit.services import GraphSimulator, Operator

ROOT = controlplane.REPO_ROOT
RUN = ROOT / ".run" / "demo"
NAMESPACE = "whatsapp-demo"
WORKERS = "whatsapp-workers"


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


def postgres(command: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "testkit")}
    proc = subprocess.run(
        [sys.executable, "-m", "whatsapp_testkit.postgres", command],
        stdout=subprocess.PIPE, text=True, env=env, check=command == "up",
    )  # fmt: skip
    return proc.stdout.strip()


def show_row(dsn: str, tenant_id: str) -> None:
    import psycopg  # the demo runs in the project's venv

    with psycopg.connect(dsn) as conn:
        cur = conn.execute(
            "SELECT id, tenant_id, waba_id, phone_number_id, display_phone_number, "
            "quality_rating, is_active, configured, managed_by, access_token, updated_at "
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
            if pid_running(int(pid), name):
                stop_pid(int(pid), name)
                say(f"stopped {name} (pid {pid})")
        state_file.unlink()
    subprocess.run([str(ROOT / "hack" / "control-plane"), "down"], check=False)
    postgres("down")
    return 0


def up() -> int:
    down()
    RUN.mkdir(parents=True, exist_ok=True)
    say("starting the Kubernetes control plane (kube-apiserver + etcd, built from source once)")
    kubeconfig = control_plane_up()
    print(kubectl(kubeconfig, "version").strip())

    say("starting PostgreSQL (Debian's server, as the postgres user, on a free port)")
    dsn = postgres("up").splitlines()[-1].split("=", 1)[1]
    keys = RUN / "keys"
    keys.mkdir(exist_ok=True)
    if not any(keys.iterdir()):
        (keys / "demo-key-1").write_bytes(os.urandom(32))  # AES-256 key, id "demo-key-1"

    say("starting the Graph API simulator with the demo tenant's WABA, number and token")
    sim = GraphSimulator(RUN / "graph-sim.log", seed=ROOT / "examples" / "simulator-seed.yaml")
    sim.start()
    print(f"simulator at {sim.url} (log {sim.log_path})")

    say("installing the CRD and the example tenant")
    kubectl(kubeconfig, "apply", "--server-side", "-f", str(ROOT / "crds"))
    kubectl(
        kubeconfig,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/whatsapptenants.whatsapp.operator.dev",
    )
    kubectl(kubeconfig, "create", "namespace", NAMESPACE)
    kubectl(kubeconfig, "create", "namespace", WORKERS)
    print(
        kubectl(kubeconfig, "apply", "-n", NAMESPACE, "-f", str(ROOT / "examples" / "tenant.yaml"))
    )

    say("starting the operator")
    op = Operator(
        RUN / "operator.log",
        kubeconfig=kubeconfig,
        graph_api_url=sim.url,
        extra_args=["--encryption-keys-dir", str(keys), "--workers-namespace", WORKERS],
        extra_env={"WHATSAPP_OPERATOR_DATABASE_URL": dsn},
    )
    op.start()
    state = {"pids": {"whatsapp-graph-sim": sim.proc.pid, "whatsapp-operator": op.proc.pid}}  # type: ignore[union-attr]
    (RUN / "state.json").write_text(json.dumps(state))
    print(f"operator pid {op.proc.pid} (log {op.log_path})")  # type: ignore[union-attr]

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

    say("the tenant's row in tenant_whatsapp_config (access_token as stored: ciphertext)")
    show_row(dsn, "t_a3eecb94bb822a92")

    say(f"the resolved config published for the workers (namespace {WORKERS})")
    time.sleep(1)
    print(kubectl(kubeconfig, "get", "secrets", "-n", WORKERS, "-L", "whatsapp.operator.dev/pool"))

    say("the seed's credentials lookup, for legacy services (whatsapp-credentials)")
    print(
        f"    WHATSAPP_OPERATOR_DATABASE_URL={dsn} \\\n"
        f"      whatsapp-credentials get --tenant-id t_a3eecb94bb822a92 --keys-dir {keys} --json"
    )

    say("the demo keeps running. Try it:")
    print(f"""    export KUBECONFIG={kubeconfig}
    kubectl get wat -A -w
    kubectl -n {NAMESPACE} annotate wat demo-tenant whatsapp.operator.dev/revalidate=now
    kubectl -n {NAMESPACE} delete secret demo-tenant-meta-token   # watch Ready turn False
    tail -f {op.log_path}
Tear everything down with: make demo-down""")
    return 0


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    if command == "up":
        return up()
    if command == "down":
        return down()
    print("usage: python -m whatsapp_testkit.demo up|down", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
