"""The envtest-style control plane (testkit/whatsapp_testkit/controlplane.py) against real binaries.

Starts etcd + kube-apiserver (built by hack/build-control-plane.sh, or $KUBEBUILDER_ASSETS).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from whatsapp_testkit import procs
from whatsapp_testkit.controlplane import REPO_ROOT, ControlPlane, find_kubectl

pytestmark = pytest.mark.integration

EXPECTED_VERSION = "v1.36.3"
CLI = REPO_ROOT / "hack" / "control-plane"


@pytest.fixture(scope="module")
def control_plane() -> Iterator[ControlPlane]:
    # Local to this module for now; start() reports the version and start-up time on stderr.
    with ControlPlane() as plane:
        yield plane


def kubectl(
    plane: ControlPlane, *args: str, kubeconfig: Path | None = None
) -> subprocess.CompletedProcess[str]:
    config = kubeconfig or plane.kubeconfig_path
    return subprocess.run(
        [str(plane.kubectl), "--kubeconfig", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version_is_the_built_release(control_plane: ControlPlane) -> None:
    info = json.loads(control_plane.get("/version"))
    assert info["gitVersion"] == EXPECTED_VERSION
    assert (info["major"], info["minor"]) == ("1", "36")
    assert control_plane.version == EXPECTED_VERSION
    assert control_plane.startup_seconds > 0


def test_kubectl_lists_namespaces(control_plane: ControlPlane) -> None:
    # The "default" namespace is created by a post-start controller: give it a moment.
    deadline = time.monotonic() + 30
    while True:
        result = kubectl(control_plane, "get", "namespaces", "-o", "name")
        if (result.returncode == 0 and "namespace/default" in result.stdout) or (
            time.monotonic() > deadline
        ):
            break
        time.sleep(0.5)
    assert result.returncode == 0, result.stderr
    assert "namespace/default" in result.stdout.split()


def test_rbac_denies_an_unprivileged_user(control_plane: ControlPlane) -> None:
    config = control_plane.user_kubeconfig("alice", ["whatsapp:testers"])
    whoami = kubectl(
        control_plane, "auth", "whoami", "-o", "jsonpath={.status.userInfo}", kubeconfig=config
    )
    assert whoami.returncode == 0, whoami.stderr
    user_info = json.loads(whoami.stdout)
    assert user_info["username"] == "alice"
    assert "whatsapp:testers" in user_info["groups"]

    denied = kubectl(control_plane, "get", "secrets", "-n", "default", kubeconfig=config)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower(), denied.stderr
    assert kubectl(control_plane, "get", "secrets", "-n", "default").returncode == 0


def test_restart_apiserver_keeps_data(control_plane: ControlPlane) -> None:
    name = f"restart-{uuid.uuid4().hex[:8]}"
    created = kubectl(
        control_plane, "create", "configmap", name, "-n", "default", "--from-literal=key=kept"
    )
    assert created.returncode == 0, created.stderr
    server = control_plane.server_url

    control_plane.restart_apiserver()

    assert control_plane.server_url == server
    read = kubectl(
        control_plane, "get", "configmap", name, "-n", "default", "-o", "jsonpath={.data.key}"
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout == "kept"


def test_cli_up_down_round_trip(tmp_path: Path) -> None:
    state = tmp_path / "control-plane"
    env = {**os.environ, "WHATSAPP_CONTROL_PLANE_DIR": str(state)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLI), *args], env=env, capture_output=True, text=True, timeout=150, check=False
        )

    try:
        assert cli("status").returncode == 1
        first = cli("up")
        assert first.returncode == 0, first.stderr
        assert first.stdout == f"export KUBECONFIG={state / 'kubeconfig'}\n"
        assert f"Kubernetes {EXPECTED_VERSION}" in first.stderr

        again = cli("up")  # already up: same line, no second control plane
        assert again.returncode == 0, again.stderr
        assert again.stdout == first.stdout
        assert "already up" in again.stderr
        assert cli("env").stdout == first.stdout
        status = cli("status")
        assert status.returncode == 0
        assert f"up: Kubernetes {EXPECTED_VERSION}" in status.stdout

        namespaces = subprocess.run(
            [str(find_kubectl()), "--kubeconfig", str(state / "kubeconfig"), "get", "ns"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert namespaces.returncode == 0, namespaces.stderr
        pids = json.loads((state / "state.json").read_text())["pids"]
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stderr
    assert not any(procs.pid_running(int(pid), name) for name, pid in pids.items())
    assert not state.exists()
    assert cli("down").returncode == 0
    assert cli("status").returncode == 1
