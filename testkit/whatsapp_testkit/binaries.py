"""The control plane's binaries: kube-apiserver, etcd and kubectl, from $KUBEBUILDER_ASSETS or
built once by hack/build-control-plane.sh. Standard library only (see `controlplane`)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from whatsapp_testkit import daemon
from whatsapp_testkit.procs import ControlPlaneError, log

BUILD_SCRIPT = daemon.REPO_ROOT / "hack" / "build-control-plane.sh"


def _build() -> Path:
    """Run hack/build-control-plane.sh (a no-op once built) and return the folder it prints."""
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed with exit code {proc.returncode}")
    return Path(lines[-1])


def find_binaries() -> Path:
    """The folder holding ``kube-apiserver`` and ``etcd``: $KUBEBUILDER_ASSETS, else our build."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        folder = Path(assets)
        if all(os.access(folder / name, os.X_OK) for name in ("kube-apiserver", "etcd")):
            return folder
        log(f"KUBEBUILDER_ASSETS={assets} lacks kube-apiserver or etcd; using our build")
    return _build()


def find_kubectl(bin_dir: Path | None = None) -> Path:
    """``kubectl`` next to the other binaries if present, else the one our build makes."""
    folder = bin_dir or find_binaries()
    return folder / "kubectl" if os.access(folder / "kubectl", os.X_OK) else _build() / "kubectl"
