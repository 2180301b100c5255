"""The wheel the Dockerfile installs: built from the tree, installed with the hashed pins of
requirements.lock (`--require-hashes`, as the image) into a clean virtualenv, and its
programs start from it and answer: the simulator, the operator (against the test API
server), a worker and the webhook receiver (against RabbitMQ)."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path
from typing import Any

import pytest

from conftest import Cluster
from whatsapp_testkit.services import GraphSimulator, Operator, Worker
from whatsapp_testkit.webhook import Receiver, receiver_config

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def run(*argv: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.timeout(600)  # 57 wheels from the index, hash-checked: minutes on a busy machine
def test_the_wheel_installs_from_the_lock_and_its_programs_start(
    tmp_path: Path, cluster: Cluster, namespace: str, rabbitmq: Any
) -> None:
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path, ".")
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("whatsapp_operator-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {n.split("/")[0] for n in names if not n.startswith("whatsapp_operator-")}
    assert packages == {
        "whatsapp_operator",
        "whatsapp_worker",
        "whatsapp_graph",
        "whatsapp_contract",
        "whatsapp_simulator",
        "whatsapp_webhook",
        "whatsapp_kubectl",
    }  # no testkit

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # as the Dockerfile installs it: every file checked against the lock's hashes
    lock = ROOT / "requirements.lock"
    pinned = run(python, "-m", "pip", "install", "-q", "--require-hashes", "--only-binary=:all:",
                 "-r", lock)  # fmt: skip
    assert pinned.returncode == 0, pinned.stderr
    installed = run(python, "-m", "pip", "install", "-q", "--no-deps", wheel)
    assert installed.returncode == 0, installed.stderr
    check = run(python, "-m", "pip", "check")  # the lock satisfies every declared dependency
    assert check.returncode == 0, check.stdout

    for command in (
        "whatsapp-operator", "whatsapp-worker", "whatsapp-send", "whatsapp-graph-sim",
        "whatsapp-credentials", "whatsapp-audit", "whatsapp-webhook", "kubectl-whatsapp",
    ):  # fmt: skip
        started = run(env_dir / "bin" / command, "--help", cwd=tmp_path)
        assert started.returncode == 0, f"{command}: {started.stderr}"
        assert "usage:" in started.stdout
    imports = run(
        python,
        "-c",
        "import whatsapp_worker.celery_app, whatsapp_operator.runtime.handlers",
        cwd=tmp_path,
    )
    assert imports.returncode == 0, imports.stderr

    # and they run: each started from the wheel's venv until its health endpoint answers 200
    sim = GraphSimulator(tmp_path / "sim.log")
    operator = Operator(
        tmp_path / "operator.log", kubeconfig=cluster.kubeconfig, graph_api_url=sim.url,
        namespaces=[namespace],
    )  # fmt: skip
    worker = Worker(
        tmp_path / "worker.log", amqp_url=rabbitmq.amqp_url, graph_api_url=sim.url,
        config_dir=tmp_path / "config", pool="wheel",
    )  # fmt: skip
    receiver = Receiver(
        tmp_path / "webhook.log", amqp_url=rabbitmq.amqp_url,
        config=receiver_config([], []), config_dir=tmp_path / "webhook-config",
    )  # fmt: skip
    services = (sim, operator, worker, receiver)
    try:
        for service in services:
            service.bin_dir = env_dir / "bin"
            service.start()
            assert service.proc is not None
            program = Path(f"/proc/{service.proc.pid}/cmdline").read_bytes().split(b"\0")
            assert str(env_dir / "bin").encode() in b" ".join(program), program
    finally:
        for service in reversed(services):
            service.stop()
