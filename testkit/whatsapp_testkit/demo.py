"""`make demo`: the whole system on this machine, no Docker.

Starts the control plane (hack/control-plane), the Graph API simulator seeded with the demo
tenant, and the operator; applies examples/tenant.yaml; waits for Ready; shows what a user
sees. `make demo-down` stops everything. State and logs live in .run/demo/.
"""

from __future__ import annotations

import json
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
    return 0


def up() -> int:
    down()
    RUN.mkdir(parents=True, exist_ok=True)
    say("starting the Kubernetes control plane (kube-apiserver + etcd, built from source once)")
    kubeconfig = control_plane_up()
    print(kubectl(kubeconfig, "version").strip())

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
    print(
        kubectl(kubeconfig, "apply", "-n", NAMESPACE, "-f", str(ROOT / "examples" / "tenant.yaml"))
    )

    say("starting the operator")
    op = Operator(RUN / "operator.log", kubeconfig=kubeconfig, graph_api_url=sim.url)
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
