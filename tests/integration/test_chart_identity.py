"""RBAC proven, not assumed: the chart installed into the test API server, then the operator
run as the chart's own ServiceAccount (a token from the TokenRequest API, nothing else). It
reconciles and publishes a tenant in its watched namespace, ignores one elsewhere, and that
identity cannot read Secrets outside its namespaces; the workers' and the webhook receiver's
identities can do nothing. With the defaults, the Secrets policy keeps the operator's changes
to the Secrets it owns, and the NetworkPolicies are installed."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
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


# --- least privilege by default: the operator's identity, its Secrets, the network ------------

OWNED = "the whatsapp-operator changes only the Secrets it owns"


def as_identity(kubeconfig: Path, kubectl: Kubectl, *args: str, body: str | None = None
                ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """kubectl logged in with nothing but a ServiceAccount token."""
    return subprocess.run(
        [kubectl.cluster.kubectl_bin, "--kubeconfig", str(kubeconfig), *args],
        input=body, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def secret_manifest(name: str, labels: dict[str, str]) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "labels": labels},
        "stringData": {"accessToken": f"EAA-not-a-token-{name}"},
    })  # fmt: skip


def test_the_operators_identity_reads_and_writes_only_what_it_must(
    kubectl: Kubectl, namespace: str, installed: str, tmp_path: Path
) -> None:
    """With the chart's defaults (the watched namespace listed, nothing else widened), the
    operator's own token: no Secret of another namespace can be read or patched, and in its
    watched namespace the Secrets policy refuses an UPDATE or a patch of any Secret it does not
    own, while the ones it owns stay writable."""
    release_ns = installed
    kubeconfig = token_kubeconfig(kubectl, release_ns, OPERATOR_SA, tmp_path / "op.kubeconfig")
    sa = f"system:serviceaccount:{release_ns}:{OPERATOR_SA}"
    # no ClusterRole reaches Secrets: the chart rendered Roles in the listed namespace only
    other = f"other-{secrets.token_hex(3)}"
    kubectl("create", "namespace", other)
    try:
        kubectl("create", "-n", other, "-f", "-", input=secret_manifest("theirs", {}))
        for verb in ("get", "list", "watch", "patch", "update", "create", "delete"):
            assert not can_i(kubectl, sa, verb, "secrets", "-n", other), verb
            assert not can_i(kubectl, sa, verb, "secrets", "-n", "kube-system"), verb
        assert not can_i(kubectl, sa, "list", "secrets", "--all-namespaces")
        for args in (
            ("get", "secret", "theirs", "-n", other),
            ("get", "secrets", "-n", "kube-system"),
            ("patch", "secret", "theirs", "-n", other, "-p", '{"data": {"accessToken": null}}'),
        ):
            out = as_identity(kubeconfig, kubectl, *args)
            assert out.returncode != 0, args
            assert "Forbidden" in out.stderr, (args, out.stderr)
    finally:
        kubectl("delete", "namespace", other, "--wait=false", check=False)
    cluster_roles = kubectl.json("get", "clusterrolebindings")["items"]
    bound = [b["roleRef"]["name"] for b in cluster_roles
             if any(s.get("name") == OPERATOR_SA and s.get("namespace") == release_ns
                    for s in b.get("subjects") or [])]  # fmt: skip
    for name in bound:  # WhatsAppApps, namespaces (and tenant policies): no Secrets
        rules = kubectl.json("get", "clusterrole", name)["rules"]
        assert not any("secrets" in r.get("resources", []) for r in rules), name

    # in the watched namespace, RBAC allows patching every Secret; the policy narrows it
    cases = {
        "tenant-unlabelled": ({}, False),
        "tenant-helm": ({"app.kubernetes.io/managed-by": "Helm"}, False),
        "tenant-handed-over": ({"whatsapp.operator.dev/writable-by-operator": "true"}, True),
        "tenant-not-handed": ({"whatsapp.operator.dev/writable-by-operator": "false"}, False),
        "operator-made": ({"app.kubernetes.io/managed-by": "whatsapp-operator"}, True),
        "signup-code": ({"whatsapp.operator.dev/signup": "s-1"}, True),
    }
    for name, (labels, _) in cases.items():
        kubectl("create", "-n", namespace, "-f", "-", input=secret_manifest(name, labels))
    patch = '{"data": {"previousAccessToken": "b2xk"}}'
    deadline = time.monotonic() + 30  # a new policy takes a moment to be enforced
    while True:
        probe = as_identity(kubeconfig, kubectl, "patch", "secret", "tenant-unlabelled",
                            "-n", namespace, "-p", patch)  # fmt: skip
        if probe.returncode != 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for name, (_, writable) in cases.items():
        out = as_identity(kubeconfig, kubectl, "patch", "secret", name, "-n", namespace,
                          "-p", patch)  # fmt: skip
        if writable:
            assert out.returncode == 0, (name, out.stderr)
        else:
            assert out.returncode != 0, name
            assert OWNED in out.stderr, (name, out.stderr)
    # a PUT (kubectl replace) RBAC refuses already (no `update` there: patches only, which the
    # policy sees as UPDATE); and a patch cannot hand itself the label
    current = kubectl.json("get", "secret", "tenant-unlabelled", "-n", namespace)
    current["data"]["accessToken"] = "bmV3"
    replaced = as_identity(kubeconfig, kubectl, "replace", "-n", namespace, "-f", "-",
                           body=json.dumps(current))  # fmt: skip
    assert replaced.returncode != 0
    assert "Forbidden" in replaced.stderr, replaced.stderr
    adopt = '{"metadata": {"labels": {"app.kubernetes.io/managed-by": "whatsapp-operator"}}}'
    grabbed = as_identity(kubeconfig, kubectl, "patch", "secret", "tenant-unlabelled",
                          "-n", namespace, "-p", adopt)  # fmt: skip
    assert grabbed.returncode != 0
    assert OWNED in grabbed.stderr, grabbed.stderr
    untouched = kubectl.json("get", "secret", "tenant-unlabelled", "-n", namespace)
    assert "previousAccessToken" not in untouched["data"]
    assert not untouched["metadata"].get("labels")
    # and it still creates what it needs there (a signup's Secrets), Opaque only
    created = as_identity(kubeconfig, kubectl, "create", "-n", namespace, "-f", "-",
                          body=secret_manifest("signup-token", {
                              "app.kubernetes.io/managed-by": "whatsapp-operator"}))  # fmt: skip
    assert created.returncode == 0, created.stderr


def test_network_policies_are_on_by_default(kubectl: Kubectl, installed: str) -> None:
    """Installed without a networkPolicy value: the operator's, the workers' and the receiver's
    policies exist; no rule lets anyone reach the metrics ports (networkPolicy.metricsFrom is
    empty) or the operator's health port, which the kubelet reaches from the node."""
    release_ns = installed
    policies = {
        p["metadata"]["name"]: p["spec"]
        for p in kubectl.json("get", "networkpolicies", "-n", release_ns)["items"]
    }
    assert set(policies) == {f"{FULLNAME}-operator", f"{FULLNAME}-worker", f"{FULLNAME}-webhook"}
    for name, spec in policies.items():
        assert spec["policyTypes"] == ["Ingress", "Egress"], name
        opened = {p["port"] for rule in spec.get("ingress") or [] for p in rule["ports"]}
        assert 9090 not in opened, name
        assert opened == ({8080} if name.endswith("-webhook") else set()), name
    statefulset = kubectl.json("get", "statefulset", f"{FULLNAME}-operator", "-n", release_ns)
    args = statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--liveness-host=0.0.0.0" in args  # the probes reach the pod IP
    assert "--metrics-host=0.0.0.0" in args
