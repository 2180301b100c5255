"""RBAC proven, not assumed: the chart installed into the test API server, then the operator
run as the chart's own ServiceAccount (a token from the TokenRequest API, nothing else). It
reconciles and publishes a tenant in its watched namespace, ignores one elsewhere, and that
identity cannot read Secrets outside its namespaces; the workers' and the webhook receiver's
identities can do nothing."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_chart import tools_dir
from test_operator import apply_tenant, cond, get, wait_reason

from conftest import ROOT, Kubectl, make_world
from whatsapp_testkit.services import Operator
from whatsapp_testkit.world import wait_for

pytestmark = pytest.mark.integration

HELM = tools_dir() / "helm"  # hack/build-tools.sh's (honours WHATSAPP_OPERATOR_CACHE)
RELEASE = "wa"
FULLNAME = f"{RELEASE}-whatsapp-operator"
OPERATOR_SA = f"{FULLNAME}-operator"


def helm(kubectl: Kubectl, *args: str) -> subprocess.CompletedProcess[str]:
    context = ["--kube-context", kubectl.cluster.context] if kubectl.cluster.context else []
    return subprocess.run(
        [str(HELM), "--kubeconfig", str(kubectl.cluster.kubeconfig), *context, *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture
def installed(kubectl: Kubectl, namespace: str) -> Iterator[str]:
    """The chart installed in a namespace of its own, watching the test's namespace."""
    if not HELM.exists():
        pytest.fail(f"helm is missing at {HELM}: run `make tools`")
    release_ns = f"wsys-{secrets.token_hex(3)}"
    kubectl("create", "namespace", release_ns)
    # Pod Security "restricted", enforced: the API server refuses pods that break it and
    # warns about workloads whose pod template would
    kubectl(
        "label", "namespace", release_ns,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
    )  # fmt: skip
    out = helm(
        kubectl, "install", RELEASE, str(ROOT / "charts" / "whatsapp-operator"),
        "-n", release_ns, "--set", f"watchNamespaces={{{namespace}}}",
        "--set", "workers.pools[0].name=default",
        "--set", "amqp.existingSecret=whatsapp-amqp",
        "--set", "webhook.enabled=true",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "PodSecurity" not in out.stderr, out.stderr  # no "would violate PodSecurity" warning
    yield release_ns
    helm(kubectl, "uninstall", RELEASE, "-n", release_ns)
    kubectl("delete", "namespace", release_ns, "--wait=false", check=False)


def token_kubeconfig(kubectl: Kubectl, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig holding only a ServiceAccount token (the TokenRequest API)."""
    token = kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    raw = json.loads(kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    cluster = raw["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": cluster["name"], "user": account}}],
        "current-context": account,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def can_i(kubectl: Kubectl, who: str, *args: str) -> bool:
    out = kubectl("auth", "can-i", *args, "--as", who, check=False)
    return out.stdout.strip() == "yes"


def test_the_operator_works_as_the_charts_service_account_and_no_more(
    kubectl: Kubectl, namespace: str, installed: str, graph_sim: Any, sim: Any,
    artifacts: Path, tmp_path: Path,
) -> None:  # fmt: skip
    release_ns = installed
    kubeconfig = token_kubeconfig(kubectl, release_ns, OPERATOR_SA, tmp_path / "sa.kubeconfig")
    operator = Operator(
        artifacts / "operator-as-chart-sa.log",
        kubeconfig=kubeconfig,
        graph_api_url=graph_sim.url,
        namespaces=[namespace],
        # the chart's own arguments: peering on (its KopfPeering object is installed), the
        # resolved config published in the release namespace; with webhook.enabled it reads
        # (and would write) the receiver's config there and watches the apps' Secrets
        extra_args=[
            "--workers-namespace",
            release_ns,
            "--peering",
            FULLNAME,
            "--operator-namespace",
            release_ns,
            "--webhook-receiver",
        ],
        extra_env={"WHATSAPP_OPERATOR_PRIORITY": "0"},
    )
    operator.start()
    try:
        world = make_world(sim)
        apply_tenant(kubectl, namespace, world, "acme", tenant_id=f"t_sa_{namespace[2:]}")
        tenant = wait_reason(kubectl, namespace, "acme", "Ready", timeout=60)
        assert cond(tenant, "TokenValid")["status"] == "True"
        published = wait_for(
            lambda: (get(kubectl, namespace, "acme")["status"].get("published") or {}).get(
                "secret"
            ),
            30, 0.3, "published by the chart's identity",
        )  # fmt: skip
        secret = kubectl.json("get", "secret", published, "-n", release_ns)
        assert secret["metadata"]["labels"]["whatsapp.operator.dev/pool"] == "default"
        log = operator.log_path.read_text()
        assert "Forbidden" not in log, "the operator hit a denial"
        assert " 403" not in log, "the operator hit a denial"
    finally:
        operator.stop()

    sa = f"system:serviceaccount:{release_ns}:{OPERATOR_SA}"
    assert can_i(kubectl, sa, "get", "secrets", "-n", namespace)
    assert not can_i(kubectl, sa, "get", "secrets", "-n", "kube-system")
    assert not can_i(kubectl, sa, "list", "secrets", "--all-namespaces")
    assert not can_i(kubectl, sa, "delete", "whatsapptenants", "-n", namespace)
    assert can_i(kubectl, sa, "delete", "secrets", "-n", release_ns)  # superseded shards
    assert not can_i(kubectl, sa, "delete", "secrets", "-n", namespace)  # tenants' Secrets
    workers = f"system:serviceaccount:{release_ns}:{FULLNAME}-worker"
    for verb, resource in (("get", "secrets"), ("list", "pods"), ("get", "whatsapptenants")):
        assert not can_i(kubectl, workers, verb, resource, "-n", release_ns)
        assert not can_i(kubectl, workers, verb, resource, "-n", namespace)
    worker_pods = kubectl.json("get", "deployments", "-n", release_ns)["items"]
    assert worker_pods, "the chart installed no worker Deployment"
    for deployment in worker_pods:
        assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_the_webhook_receivers_identity_can_do_nothing(
    kubectl: Kubectl, namespace: str, installed: str, tmp_path: Path
) -> None:
    """The receiver's ServiceAccount, logged in with a real token: every request it makes to
    the API server is refused, its own config Secret included (the kubelet mounts it)."""
    release_ns = installed
    account = f"{FULLNAME}-webhook"
    deployment = kubectl.json("get", "deployment", account, "-n", release_ns)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account
    assert pod["automountServiceAccountToken"] is False
    sa = kubectl.json("get", "serviceaccount", account, "-n", release_ns)
    assert sa["automountServiceAccountToken"] is False
    kubectl(
        "create", "secret", "generic", "whatsapp-webhook-config", "-n", release_ns,
        "--from-literal=config.json={}",
    )  # fmt: skip
    kubeconfig = token_kubeconfig(kubectl, release_ns, account, tmp_path / "webhook.kubeconfig")
    as_receiver = [kubectl.cluster.kubectl_bin, "--kubeconfig", str(kubeconfig)]
    for args in (
        ("get", "secret", "whatsapp-webhook-config", "-n", release_ns),
        ("get", "secrets", "-n", release_ns),
        ("get", "pods", "-n", release_ns),
        ("get", "configmaps", "-n", release_ns),
        ("get", "whatsapptenants", "-n", namespace),
        ("get", "namespaces"),
    ):
        out = subprocess.run([*as_receiver, *args], capture_output=True, text=True, timeout=60,
                             check=False)  # fmt: skip
        assert out.returncode != 0, args
        assert "Forbidden" in out.stderr, (args, out.stderr)
    # the same, asked of the authorizer: nothing beyond what every identity may do
    who = f"system:serviceaccount:{release_ns}:{account}"
    for verb, resource in (("get", "secrets"), ("list", "pods"), ("create", "events"),
                           ("get", "whatsapptenants"), ("create", "tokenreviews")):  # fmt: skip
        assert not can_i(kubectl, who, verb, resource, "-n", release_ns)
        assert not can_i(kubectl, who, verb, resource, "-n", namespace)
