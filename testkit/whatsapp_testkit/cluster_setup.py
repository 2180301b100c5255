"""What kubectl puts into a running cluster for the tests, the demo and the benchmarks: the
project's CRDs and namespaces, and WhatsAppTenantPolicy objects. Standard library only (see
`controlplane`)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from whatsapp_testkit import daemon
from whatsapp_testkit.binaries import find_kubectl
from whatsapp_testkit.procs import ControlPlaneError

CRDS = daemon.REPO_ROOT / "crds"

CRD_NAMES = (
    "whatsapptenants.whatsapp.operator.dev",
    "whatsappsignups.whatsapp.operator.dev",
    "whatsappapps.whatsapp.operator.dev",
    "whatsapptenantpolicies.whatsapp.operator.dev",
)


def install_crds(
    kubeconfig: Path,
    *namespaces: str,
    field_manager: str = "whatsapp-testkit",
    kubectl: Path | None = None,
) -> None:
    """Apply the project's CRDs (crds/, server-side), wait until both are Established, then
    create `namespaces` (with `kubectl`, else `find_kubectl()`). Raises ControlPlaneError
    with kubectl's words when a step fails."""
    binary = str(kubectl or find_kubectl())
    steps: list[list[str]] = [
        ["apply", "--server-side", f"--field-manager={field_manager}", "-f", str(CRDS)],
        ["wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in CRD_NAMES)],
        *(["create", "namespace", ns] for ns in namespaces),
    ]
    for args in steps:
        for attempt in range(20):
            proc = subprocess.run(
                [binary, "--kubeconfig", str(kubeconfig), *args],
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            # `kubectl wait` on a CRD created a moment ago can find no status yet (".status.
            # conditions accessor error: <nil>"): asked again, it waits as meant
            if proc.returncode == 0 or "accessor error" not in proc.stderr or attempt == 19:
                break
            time.sleep(0.25)
        if proc.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args[:2])}: {proc.stderr.strip()}")


def tenant_policy(
    name: str,
    selector: dict[str, object],
    tenant_ids: tuple[str, ...] = ("*",),
    *,
    adopt: bool = False,
) -> dict[str, object]:
    """A WhatsAppTenantPolicy (docs/tenancy.md): the namespaces `selector` selects ({}: all)
    may use the tenant ids `tenant_ids` (shell-style patterns); `adopt` approves adoption."""
    return {
        "apiVersion": "whatsapp.operator.dev/v1alpha1",
        "kind": "WhatsAppTenantPolicy",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": selector,
            "tenantIds": list(tenant_ids),
            "adoptExistingRows": adopt,
        },
    }


def apply_object(kubeconfig: Path, obj: dict[str, object], *, kubectl: Path | None = None) -> None:
    """`kubectl apply` one object (server-side); ControlPlaneError with kubectl's words."""
    proc = subprocess.run(
        [str(kubectl or find_kubectl()), "--kubeconfig", str(kubeconfig), "apply",
         "--server-side", "--field-manager=whatsapp-testkit", "-f", "-"],
        input=json.dumps(obj), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise ControlPlaneError(f"kubectl apply {obj.get('kind')}: {proc.stderr.strip()}")
