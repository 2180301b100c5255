"""The Helm chart against real API servers: lint, server-side validation, kubeconform,
install/uninstall, RBAC by impersonation, and the operator running with the chart's own
arguments and ServiceAccount.

helm and kubeconform come from hack/build-tools.sh (`make tools`); without them these tests
are skipped, saying so. No pod ever runs (there is no kubelet): objects are only stored, and
the operator runs as a local process authenticated with its ServiceAccount's token.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ROOT, Cluster, Kubectl, make_world
from whatsapp_contract.resolved import parse_document
from whatsapp_testkit.controlplane import tenant_policy
from whatsapp_testkit.procs import free_ports, reachable
from whatsapp_testkit.reliability import Scenario
from whatsapp_testkit.services import Service
from whatsapp_testkit.world import dump, secret, tenant, wait_for

pytestmark = pytest.mark.integration

CHART = ROOT / "charts" / "whatsapp-operator"
PRODUCTION = CHART / "ci" / "production-values.yaml"
VENV_BIN = ROOT / ".venv" / "bin"


def tools_dir() -> Path:
    """Where hack/build-tools.sh puts helm and kubeconform (same rules as the script)."""
    cache = os.environ.get("WHATSAPP_OPERATOR_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "whatsapp-operator"
    )
    return Path(cache) / "tools" / "bin"


HELM = tools_dir() / "helm"
KUBECONFORM = tools_dir() / "kubeconform"
if not os.access(HELM, os.X_OK):
    pytest.skip(
        f"helm not built ({HELM} missing): run hack/build-tools.sh (make tools)",
        allow_module_level=True,
    )

# prometheus-operator's ServiceMonitor, reduced to a name: the production values render two
# ServiceMonitors, and the test API server knows nothing of prometheus-operator.
SERVICE_MONITOR_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors,
          singular: servicemonitor}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


class Helm:
    """helm bound to one cluster, with its config and cache in a folder of its own."""

    def __init__(self, cluster: Cluster, home: Path) -> None:
        self.cluster = cluster
        self.env = cluster.env()
        for name in ("CONFIG", "CACHE", "DATA"):
            self.env[f"HELM_{name}_HOME"] = str(home / name.lower())

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(HELM), *args, "--kubeconfig", str(self.cluster.kubeconfig)]
        if self.cluster.context:
            cmd += ["--kube-context", self.cluster.context]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=120, env=self.env, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def helm(cluster: Cluster, tmp_path: Path) -> Helm:
    return Helm(cluster, tmp_path / "helm")


@pytest.fixture
def namespaces(kubectl: Kubectl) -> Iterator[dict[str, str]]:
    """Fresh namespaces for one installation: release, three watched, workers, unwatched."""
    names = {
        role: unique(role)
        for role in ("release", "shop", "payments", "signups", "workers", "unwatched")
    }
    for name in names.values():
        kubectl("create", "namespace", name)
    yield names
    for name in names.values():
        kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def chart_crds(kubectl: Kubectl) -> None:
    """The chart's CRDs (the repository's, plus kopf's peering) and a ServiceMonitor stand-in."""
    kubectl("apply", "--server-side", "--field-manager=tests", "-f", str(CHART / "crds"))
    kubectl.apply(SERVICE_MONITOR_CRD)
    kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/kopfpeerings.kopf.dev",
        "crd/clusterkopfpeerings.kopf.dev",
        "crd/servicemonitors.monitoring.coreos.com",
    )


def production_overrides(ns: dict[str, str]) -> list[str]:
    """The production values, moved to this test's namespaces."""
    return [
        "-f",
        str(PRODUCTION),
        "--set",
        f"watchNamespaces={{{ns['shop']},{ns['payments']},{ns['signups']}}}",
        "--set",
        f"operator.signupCallback.namespace={ns['signups']}",
        "--set",
        f"workersNamespace={ns['workers']}",
    ]


def variants(ns: dict[str, str]) -> dict[str, list[str]]:
    # "default": the defaults with their one required choice made the wide way (a ClusterRole)
    return {
        "default": ["--set", "allNamespaces=true", "--set", f"workersNamespace={ns['workers']}"],
        "production": production_overrides(ns),
        # the webhook receiver's processor in a Deployment of its own (webhook.processor.mode)
        "processor separate": [
            *production_overrides(ns),
            "--set",
            "webhook.processor.mode=separate",
        ],
    }


VAP = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"


def template(helm: Helm, ns: dict[str, str], values: list[str]) -> str:
    """Rendered as for the test API server (>= 1.30: with the Secrets admission policy)."""
    return helm(
        "template", "rel", str(CHART), "--namespace", ns["release"], "--api-versions", VAP,
        *values,
    ).stdout  # fmt: skip


# --- lint, server-side validation, kubeconform ------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [["--set", "allNamespaces=true"], ["-f", str(PRODUCTION)]],
    ids=["all namespaces", "production"],
)
def test_helm_lint_strict(helm: Helm, values: list[str]) -> None:
    proc = helm("lint", "--strict", str(CHART), *values)
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout, proc.stdout


@pytest.mark.parametrize("variant", ["default", "production", "processor separate"])
def test_every_object_passes_server_side_strict_validation(
    helm: Helm, kubectl: Kubectl, chart_crds: None, namespaces: dict[str, str], variant: str
) -> None:
    manifest = template(helm, namespaces, variants(namespaces)[variant])
    count = sum(1 for d in yaml.safe_load_all(manifest) if d)
    proc = kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-", input=manifest)
    accepted = [line for line in proc.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == count, proc.stdout + proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr


def strict_schema(schema: Any) -> Any:
    """An OpenAPI v3 schema as kubeconform's -strict JSON schemas are: local references and
    every object with properties closed (additionalProperties: false)."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if isinstance(out.get("$ref"), str):
        out["$ref"] = out["$ref"].replace("#/components/schemas/", "#/definitions/")
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: strict_schema(v) for k, v in out["properties"].items()}
        if "additionalProperties" not in out and not out.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = strict_schema(out[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(out.get(key), list):
            out[key] = [strict_schema(s) for s in out[key]]
    return out


def write_schemas(kubectl: Kubectl, kinds: set[tuple[str, str]], folder: Path) -> int:
    """kubeconform schemas (<kind>-<group>-<version>.json) for `kinds`, made from the API
    server's own OpenAPI v3 documents: kubeconform downloads its schemas from GitHub, which
    this machine cannot reach."""
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for api_version in sorted({a for a, _ in kinds}):
        prefix = "apis" if "/" in api_version else "api"
        document = json.loads(kubectl("get", "--raw", f"/openapi/v3/{prefix}/{api_version}").stdout)
        schemas = document["components"]["schemas"]
        definitions = {name: strict_schema(s) for name, s in schemas.items()}
        group, _, version = api_version.rpartition("/")
        for name, schema in schemas.items():
            for gvk in schema.get("x-kubernetes-group-version-kind", []):
                if (gvk["group"], gvk["version"]) != (group, version):
                    continue
                if (api_version, gvk["kind"]) not in kinds:
                    continue
                suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
                standalone = {**definitions[name], "definitions": definitions}
                (folder / f"{gvk['kind'].lower()}{suffix}.json").write_text(json.dumps(standalone))
                written += 1
    return written


def kubeconform(manifest: str, schemas: Path) -> subprocess.CompletedProcess[str]:
    location = str(schemas) + "/{{ .ResourceKind }}{{ .KindSuffix }}.json"
    return subprocess.run(
        [str(KUBECONFORM), "-strict", "-summary", "-ignore-missing-schemas",
         "-schema-location", location, "-"],
        input=manifest, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.skipif(not os.access(KUBECONFORM, os.X_OK), reason="kubeconform not built")
def test_kubeconform_strict_with_schemas_from_the_api_server(
    helm: Helm, kubectl: Kubectl, chart_crds: None, namespaces: dict[str, str], tmp_path: Path
) -> None:
    manifests = [template(helm, namespaces, v) for v in variants(namespaces).values()]
    docs = [d for m in manifests for d in yaml.safe_load_all(m) if d]
    kinds = {(d["apiVersion"], d["kind"]) for d in docs}
    schemas = tmp_path / "schemas"
    assert write_schemas(kubectl, kinds, schemas) == len(kinds)  # every kind, CRDs included
    proc = kubeconform("\n---\n".join(manifests), schemas)
    summary = proc.stdout.strip().splitlines()[-1]
    print(f"\n[kubeconform] {summary}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Valid: {len(docs)}, Invalid: 0, Errors: 0, Skipped: 0" in summary
    # and the schemas are strict: an unknown field and a wrong type are caught
    broken = manifests[0].replace(
        "podManagementPolicy: Parallel", "podManagementPolicy: Parallel\n  replicaz: 2"
    )
    broken = broken.replace("containerPort: 8080", 'containerPort: "8080"')
    proc = kubeconform(broken, schemas)
    assert proc.returncode == 1
    assert "additional properties 'replicaz' not allowed" in proc.stdout
    assert "got string, want integer" in proc.stdout


# --- install, RBAC, uninstall -----------------------------------------------------------------


def can_i(kubectl: Kubectl, user: str, *args: str) -> bool:
    proc = kubectl("auth", "can-i", f"--as={user}", *args, check=False)
    return proc.stdout.strip() == "yes"


def allowed(
    kubectl: Kubectl, user: str, verb: str, group: str, resource: str, **extra: str
) -> bool:
    """A SubjectAccessReview: unlike `kubectl auth can-i`, it needs no discovery (the CRD of
    `resource` may be missing), only the authorizer's answer."""
    attributes = {"verb": verb, "group": group, "resource": resource, **extra}
    spec: dict[str, Any] = {"user": user, "resourceAttributes": attributes}
    if user.startswith("system:serviceaccount:"):
        namespace = user.split(":")[2]
        spec["groups"] = [
            "system:serviceaccounts",
            f"system:serviceaccounts:{namespace}",
            "system:authenticated",
        ]
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
    out = kubectl("create", "-f", "-", "-o", "json", input=json.dumps(review))
    return bool(json.loads(out.stdout)["status"].get("allowed"))


def permissions(kubectl: Kubectl, user: str, namespace: str) -> str:
    return kubectl("auth", "can-i", f"--as={user}", "--list", "-n", namespace).stdout


def create_secret_as(
    kubectl: Kubectl, user: str, namespace: str, name: str, **extra: Any
) -> subprocess.CompletedProcess[str]:
    body = {"apiVersion": "v1", "kind": "Secret", **extra}
    body["metadata"] = {**extra.get("metadata", {}), "name": name}
    return kubectl("create", f"--as={user}", "-n", namespace, "-f", "-",
                   input=json.dumps(body), check=False)  # fmt: skip


def secrets_policy_narrows_what_rbac_allows(kubectl: Kubectl, sa: str, ns: dict[str, str]) -> None:
    """The chart's ValidatingAdmissionPolicy, enforced by the API server: RBAC lets the operator
    create Secrets, the policy keeps it to Opaque ones (no ServiceAccount token minted) and, in
    the workers namespace, to its labelled resolved-config Secrets."""
    token = {
        "type": "kubernetes.io/service-account-token",
        "metadata": {"annotations": {"kubernetes.io/service-account.name": "default"}},
    }
    deadline = time.monotonic() + 30  # a new policy takes a moment to be enforced
    while True:
        minted = create_secret_as(kubectl, sa, ns["shop"], "minted", **token)
        if minted.returncode != 0 or time.monotonic() > deadline:
            break
        kubectl("delete", "secret", "minted", "-n", ns["shop"])
        time.sleep(0.5)
    assert minted.returncode != 0
    assert "the whatsapp-operator creates only Opaque Secrets" in minted.stderr
    assert create_secret_as(kubectl, sa, ns["shop"], "opaque", type="Opaque").returncode == 0
    stray = create_secret_as(kubectl, sa, ns["workers"], "not-a-shard", type="Opaque")
    assert stray.returncode != 0
    assert "writes only its resolved-config Secrets" in stray.stderr
    # as the publisher labels them (pools/publisher.py)
    pool = {"labels": {"whatsapp.operator.dev/pool": "p",
                       "app.kubernetes.io/managed-by": "whatsapp-operator"}}  # fmt: skip
    shard = create_secret_as(kubectl, sa, ns["workers"], "whatsapp-pool-p-0-of-1",
                             type="Opaque", metadata=pool)  # fmt: skip
    assert shard.returncode == 0, shard.stderr
    kubectl("create", "secret", "generic", "platform-owned", "-n", ns["workers"])
    denied = kubectl("delete", "secret", "platform-owned", f"--as={sa}", "-n", ns["workers"],
                     check=False)  # fmt: skip
    assert denied.returncode != 0
    assert "writes only its resolved-config Secrets" in denied.stderr
    kubectl("delete", "secret", "whatsapp-pool-p-0-of-1", f"--as={sa}", "-n", ns["workers"])
    # its own namespace (webhook.enabled): the receiver's config Secret, and no other
    owned = {"labels": {"app.kubernetes.io/managed-by": "whatsapp-operator"}}  # apps/receiver.py
    config = create_secret_as(kubectl, sa, ns["release"], "whatsapp-webhook-config",
                              type="Opaque", metadata=owned)  # fmt: skip
    assert config.returncode == 0, config.stderr
    body = '{"stringData": {"config.json": "{}"}}'
    patched = kubectl("patch", "secret", "whatsapp-webhook-config", f"--as={sa}",
                      "-n", ns["release"], "-p", body, check=False)  # fmt: skip
    assert patched.returncode == 0, patched.stderr
    other = create_secret_as(kubectl, sa, ns["release"], "not-the-config", type="Opaque")
    assert other.returncode != 0
    assert "writes only the Secret whatsapp-webhook-config" in other.stderr


def test_install_grants_least_privilege_and_uninstall_keeps_crds_and_tenants(
    helm: Helm, kubectl: Kubectl, chart_crds: None, namespaces: dict[str, str], sim: Any
) -> None:
    ns = namespaces
    release = unique("wa")
    installed = helm("install", release, str(CHART), "--namespace", ns["release"],
                     *production_overrides(ns))  # fmt: skip
    notes = installed.stdout.split("NOTES:", 1)[1]
    assert "kind: WhatsAppTenant" in notes
    assert "kubectl get wat -A -o wide" in notes
    assert "kubectl apply --server-side -f" in notes
    assert f"kubectl -n {ns['shop']} apply -f -" in notes
    assert f"helm test {release} -n {ns['release']} --logs" in notes  # tests.enabled
    listed = json.loads(helm("list", "--namespace", ns["release"], "-o", "json").stdout)
    assert [(r["name"], r["status"], r["app_version"]) for r in listed] == [
        (release, "deployed", "0.1.0")
    ]

    sa = f"system:serviceaccount:{ns['release']}:{release}-whatsapp-operator-operator"
    worker = f"system:serviceaccount:{ns['workers']}:{release}-whatsapp-operator-worker"
    for watched in (ns["shop"], ns["payments"], ns["signups"]):
        assert can_i(kubectl, sa, "get", "secrets", "-n", watched)
        assert can_i(kubectl, sa, "watch", "whatsapptenants", "-n", watched)
        assert can_i(kubectl, sa, "patch", "whatsapptenants", "--subresource=status", "-n", watched)
        assert can_i(kubectl, sa, "create", "events", "-n", watched)
        assert can_i(kubectl, sa, "patch", "kopfpeerings.kopf.dev", "-n", watched)
        assert not can_i(kubectl, sa, "delete", "secrets", "-n", watched)
        assert not can_i(kubectl, sa, "update", "whatsapptenants", "-n", watched)
    assert not can_i(kubectl, sa, "get", "secrets", "-n", ns["unwatched"])
    assert not can_i(kubectl, sa, "list", "whatsapptenants", "-n", ns["unwatched"])
    assert not can_i(kubectl, sa, "list", "secrets", "--all-namespaces")
    assert not can_i(kubectl, sa, "get", "customresourcedefinitions")
    # WhatsAppApps (cluster-scoped) and the namespaces their selectors match: read and patch
    group = "whatsapp.operator.dev"
    assert allowed(kubectl, sa, "watch", group, "whatsappapps")
    assert allowed(kubectl, sa, "patch", group, "whatsappapps", subresource="status")
    assert can_i(kubectl, sa, "list", "namespaces")
    for verb in ("create", "delete", "update"):
        assert not allowed(kubectl, sa, verb, group, "whatsappapps")
        assert not can_i(kubectl, sa, verb, "namespaces")
    assert not allowed(kubectl, worker, "watch", group, "whatsappapps")
    # its own namespace: the apps' Secrets (read), the receiver's config (write, by name)
    own = ns["release"]
    assert can_i(kubectl, sa, "watch", "secrets", "-n", own)
    assert can_i(kubectl, sa, "create", "events", "-n", own)
    assert can_i(kubectl, sa, "create", "secrets", "-n", own)
    assert can_i(kubectl, sa, "update", "secrets/whatsapp-webhook-config", "-n", own)
    assert not can_i(kubectl, sa, "update", "secrets/whatsapp-operator-database", "-n", own)
    assert not can_i(kubectl, sa, "patch", "secrets/whatsapp-operator-database", "-n", own)
    assert not can_i(kubectl, sa, "delete", "secrets", "-n", own)
    # the workers namespace: the published config, and nothing else
    assert can_i(kubectl, sa, "delete", "secrets", "-n", ns["workers"])
    assert can_i(kubectl, sa, "create", "secrets", "-n", ns["workers"])
    assert not can_i(kubectl, sa, "watch", "secrets", "-n", ns["workers"])
    assert not can_i(kubectl, sa, "list", "pods", "-n", ns["workers"])
    # the workers and the webhook receiver: exactly what every authenticated identity has
    nobody = f"system:serviceaccount:{ns['workers']}:nobody-{uuid.uuid4().hex[:6]}"
    receiver = f"system:serviceaccount:{own}:{release}-whatsapp-operator-webhook"
    for where in (ns["workers"], ns["shop"], own):
        assert permissions(kubectl, worker, where) == permissions(kubectl, nobody, where)
        assert permissions(kubectl, receiver, where) == permissions(kubectl, nobody, where)
    assert "selfsubjectaccessreviews" in permissions(kubectl, worker, ns["workers"])
    assert not can_i(kubectl, worker, "get", "secrets", "-n", ns["workers"])
    assert not can_i(kubectl, receiver, "get", "secrets/whatsapp-webhook-config", "-n", own)
    secrets_policy_narrows_what_rbac_allows(kubectl, sa, ns)

    # upgrade and roll back: the policy goes with a value and comes back with revision 1
    policies = ["get", "validatingadmissionpolicies", "-l", f"app.kubernetes.io/instance={release}",
                "-o", "name"]  # fmt: skip
    assert len(kubectl(*policies).stdout.split()) == 1
    helm("upgrade", release, str(CHART), "--namespace", ns["release"], "--reuse-values",
         "--set", "operator.secretsPolicy.enabled=false")  # fmt: skip
    assert kubectl(*policies).stdout.split() == []
    helm("rollback", release, "1", "--namespace", ns["release"])  # no --wait: no kubelet here
    assert len(kubectl(*policies).stdout.split()) == 1
    history = helm("history", release, "--namespace", ns["release"], "-o", "json").stdout
    assert [(h["revision"], h["status"]) for h in json.loads(history)] == [
        (1, "superseded"),
        (2, "superseded"),
        (3, "deployed"),
    ]

    # a tenant, then uninstall: the CRDs and the tenant stay
    world = make_world(sim, "+1 555 0199")
    kubectl.apply(
        dump(
            secret("chart-token", {"accessToken": world.token}),
            tenant("chart-tenant", f"t_chart_{ns['shop']}", world, "chart-token"),
        ),
        ns["shop"],
    )
    helm("uninstall", release, "--namespace", ns["release"], "--wait", "--timeout", "60s")
    assert json.loads(helm("list", "--namespace", ns["release"], "-o", "json").stdout) == []
    crds = kubectl("get", "crd", "-o", "name").stdout.split()
    for name in (
        "whatsapptenants.whatsapp.operator.dev",
        "whatsappsignups.whatsapp.operator.dev",
        "kopfpeerings.kopf.dev",
        "clusterkopfpeerings.kopf.dev",
    ):
        assert f"customresourcedefinition.apiextensions.k8s.io/{name}" in crds
    assert kubectl.json("get", "wat", "chart-tenant", "-n", ns["shop"])["spec"]["tenantId"]
    # and the release's own objects (RBAC included) are gone
    assert not can_i(kubectl, sa, "get", "secrets", "-n", ns["shop"])
    leftovers = kubectl("get", "statefulsets,deployments,roles,rolebindings,serviceaccounts,"
                        "kopfpeerings", "-A", "-l", f"app.kubernetes.io/instance={release}",
                        "-o", "name").stdout  # fmt: skip
    assert leftovers.strip() == ""


# --- the operator itself, under the chart's ServiceAccount and arguments ----------------------


class ChartOperator(Service):
    """whatsapp-operator with the arguments the chart renders for its container, logged in
    with its ServiceAccount's token; only the ports (free ones here) and the kubeconfig are
    added."""

    name = "whatsapp-operator (chart)"

    def __init__(self, log_path: Path, args: list[str], kubeconfig: Path, priority: int) -> None:
        super().__init__(log_path)
        self.port, self.metrics_port = free_ports(2)
        self.args = [a for a in args if not a.startswith(("--liveness-port", "--metrics-port"))]
        self.kubeconfig = kubeconfig
        self.priority = priority

    def argv(self) -> list[str]:
        return [
            str(VENV_BIN / "whatsapp-operator"),
            *self.args,
            f"--liveness-port={self.port}",
            f"--metrics-port={self.metrics_port}",
            f"--kubeconfig={self.kubeconfig}",
        ]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHATSAPP_OPERATOR_")}
        env["WHATSAPP_OPERATOR_PRIORITY"] = str(self.priority)  # what the pod-index label gives
        return env

    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    def metric(self, sample: str, absent: float | None = None) -> float:
        """A sample (`name` or `name{labels}`) from the replica's /metrics; `absent` if it is
        not there (a labelled counter never incremented), else an error."""
        status, body = reachable(f"http://127.0.0.1:{self.metrics_port}/metrics")
        assert status == 200, body
        for line in body.splitlines():
            if line.startswith(f"{sample} "):
                return float(line.split()[1])
        assert absent is not None, f"{sample} not on /metrics"
        return absent


@dataclass
class PrivateInstall:
    """The chart installed into a control plane of its own, where no other operator runs."""

    kubectl: Kubectl
    helm: Helm
    release_namespace: str
    watched: str
    workers: str
    args: list[str]  # the operator container's args, as rendered
    kubeconfig: Path  # logs in as the chart's operator ServiceAccount (a bound token)
    operators: list[ChartOperator] = field(default_factory=list)

    def start_operator(self, log_path: Path, priority: int) -> ChartOperator:
        op = ChartOperator(log_path, self.args, self.kubeconfig, priority)
        op.start()
        self.operators.append(op)
        return op


@pytest.fixture(scope="module")
def private(graph_sim: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateInstall]:
    """A fresh API server (the session's may run an all-namespaces operator that would do the
    work for ours), the chart installed by helm, CRDs included, watching one namespace."""
    from whatsapp_testkit.controlplane import ControlPlane, find_kubectl

    work = tmp_path_factory.mktemp("chart-install")
    cp = ControlPlane()
    cp.start()
    install: PrivateInstall | None = None
    try:
        cluster = Cluster(Path(cp.kubeconfig_path), None, str(find_kubectl(cp.bin_dir)), cp.version)
        kubectl, helm = Kubectl(cluster), Helm(cluster, work / "helm")
        release_ns, watched, workers = "whatsapp-system", "shop", "senders"
        for name in (release_ns, watched, workers):
            kubectl("create", "namespace", name)
        helm("install", "wa", str(CHART), "--namespace", release_ns,
             "--set", f"watchNamespaces={{{watched}}}", "--set", f"workersNamespace={workers}",
             "--set", f"graphApi.url={graph_sim.url}")  # fmt: skip
        # the platform's WhatsAppTenantPolicy (the chart's CRD): the watched namespace's ids
        policy = tenant_policy("shop", {"matchLabels": {"kubernetes.io/metadata.name": watched}})
        kubectl.apply(json.dumps(policy))
        manifest = helm("get", "manifest", "wa", "--namespace", release_ns).stdout
        assert "kind: ValidatingAdmissionPolicy\n" in manifest  # the operator works under it
        (statefulset,) = [
            d for d in yaml.safe_load_all(manifest) if d and d["kind"] == "StatefulSet"
        ]
        pod = statefulset["spec"]["template"]["spec"]
        container = pod["containers"][0]
        token = kubectl("create", "token", pod["serviceAccountName"], "-n", release_ns,
                        "--duration=2h").stdout.strip()  # fmt: skip
        kubeconfig = work / "operator.kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "private", "cluster": {
                "server": cp.server_url, "certificate-authority": str(cp.ca_cert)}}],
            "users": [{"name": "operator", "user": {"token": token}}],
            "contexts": [
                {"name": "private", "context": {"cluster": "private", "user": "operator"}}
            ],
            "current-context": "private",
        }))  # fmt: skip
        install = PrivateInstall(
            kubectl, helm, release_ns, watched, workers, list(container["args"]), kubeconfig
        )
        yield install
    finally:
        for op in install.operators if install else []:
            op.stop()
        cp.stop()


def published_tenants(kubectl: Kubectl, namespace: str) -> set[str]:
    found: set[str] = set()
    items = kubectl.json("get", "secrets", "-n", namespace, "-l", "whatsapp.operator.dev/pool")
    for item in items["items"]:
        for raw in (item.get("data") or {}).values():
            found |= {t.tenant_id for t in parse_document(base64.b64decode(raw)).tenants}
    return found


@pytest.fixture(scope="module")
def active(private: PrivateInstall, sim: Any, artifacts: Path) -> dict[str, Any]:
    """The operator as pod 1 of the StatefulSet would run it (priority 1), and a Ready tenant."""
    op = private.start_operator(artifacts / "chart-operator-1.log", priority=1)
    world = make_world(sim, "+1 555 0142")
    tenant_id = "t_chart_rbac"
    private.kubectl.apply(
        dump(
            secret("acme-token", {"accessToken": world.token}),
            tenant("acme", tenant_id, world, "acme-token"),
        ),
        private.watched,
    )
    return {"operator": op, "world": world, "tenant_id": tenant_id}


def test_the_operator_works_with_the_charts_arguments_and_rbac_alone(
    private: PrivateInstall, active: dict[str, Any]
) -> None:
    kubectl, op = private.kubectl, active["operator"]
    # the rendered arguments, unchanged: namespaced mode, peering, the workers namespace
    assert f"--namespace={private.watched}" in private.args
    assert "--peering=wa-whatsapp-operator" in private.args
    assert f"--workers-namespace={private.workers}" in private.args

    def ready() -> dict[str, Any] | None:
        obj = kubectl.json("get", "wat", "acme", "-n", private.watched)
        conditions = {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}
        return obj if conditions.get("Ready", {}).get("status") == "True" else None

    obj = wait_for(ready, 30, 0.3, "tenant Ready under the chart's RBAC")
    assert "whatsapp.operator.dev/finalizer" in obj["metadata"]["finalizers"]  # patch
    wait_for(
        lambda: active["tenant_id"] in published_tenants(kubectl, private.workers),
        20, 0.3, "the tenant published in the workers namespace",
    )  # fmt: skip
    events = kubectl.json("get", "events", "-n", private.watched)["items"]
    assert any(e["reason"] == "Ready" and e["involvedObject"]["name"] == "acme" for e in events)
    peering = kubectl.json("get", "kopfpeering", "wa-whatsapp-operator", "-n", private.watched)
    assert [p["priority"] for p in (peering.get("status") or {}).values()] == [1]

    log = op.log_path.read_text(errors="replace")
    for needle in ("Forbidden", "HTTP 403", "APIForbiddenError", "Not enough permissions"):
        assert needle not in log, f"{needle!r} in the operator's log"
    world = active["world"]
    assert world.token not in log
    assert base64.b64encode(world.token.encode()).decode() not in log


def peers(install: PrivateInstall) -> list[int]:
    """The priorities of the replicas in the release's peering object."""
    peering = install.kubectl.json(
        "get", "kopfpeering", "wa-whatsapp-operator", "-n", install.watched
    )
    return sorted(p["priority"] for p in (peering.get("status") or {}).values())


SCHEDULED = "whatsapp_operator_tenants_scheduled"
RECONCILES = 'whatsapp_operator_reconciles_total{result="ok"}'
LEADER = "whatsapp_operator_leader"


def tenant_series(replica: Any) -> list[str]:
    """The per-tenant samples (`whatsapp_tenant_*`) on a replica's /metrics."""
    status, body = reachable(f"http://127.0.0.1:{replica.metrics_port}/metrics")
    assert status == 200, body
    return [line for line in body.splitlines() if line.startswith("whatsapp_tenant_")]


def test_a_standby_replica_leaves_the_published_config_alone(
    private: PrivateInstall, active: dict[str, Any], artifacts: Path
) -> None:
    kubectl, tenant_id = private.kubectl, active["tenant_id"]
    wait_for(lambda: tenant_id in published_tenants(kubectl, private.workers), 30, 0.3)
    leader = active["operator"]
    standby = private.start_operator(artifacts / "chart-operator-0.log", priority=0)
    try:
        wait_for(lambda: peers(private) == [0, 1], 20, 0.3, "both replicas in the peering object")
        # Paused by kopf's peering, the standby runs no tenant's passes (scheduler.py):
        # whatever it picked up before it saw the leader is dropped.
        wait_for(lambda: standby.metric(SCHEDULED) == 0, 20, 0.3, "the standby to pause")
        # issue 20: the leader gauge, and the tenant series from the leader alone (the
        # standby's, frozen at whatever it saw before pausing, are dropped)
        wait_for(lambda: standby.metric(LEADER) == 0, 20, 0.3, "the standby's leader gauge 0")
        assert leader.metric(LEADER) == 1
        wait_for(lambda: not tenant_series(standby), 20, 0.3, "no tenant series on the standby")
        assert any(f'tenant_id="{tenant_id}"' in line for line in tenant_series(leader))
        passes = standby.metric(RECONCILES, absent=0.0)
        deadline = time.monotonic() + 100  # the publisher's start-up grace (60 s) + its 30 s pass
        while time.monotonic() < deadline:
            assert tenant_id in published_tenants(kubectl, private.workers), (
                "the standby replica removed the tenant from the published config"
            )
            assert standby.metric(SCHEDULED) == 0, "the paused standby took tenants on"
            time.sleep(2)
        assert standby.metric(RECONCILES, absent=0.0) == passes, "the paused standby ran passes"
        assert leader.metric(SCHEDULED) >= 1  # the leader still runs them
    finally:
        standby.stop()


PEER_LIFETIME = 60  # kopf's default, as documented in docs/chart.md ("High availability")


@pytest.mark.reliability
def test_a_standby_takes_over_when_the_leader_is_killed(
    private: PrivateInstall, active: dict[str, Any], sim: Any, artifacts: Path,
    scenario: Scenario,
) -> None:  # fmt: skip
    """Runs last in this module: it kills the module's active replica."""
    scenario.describe(
        "two operator replicas, the leader killed",
        load="the chart's operator (priority 1) active, a standby (priority 0), a Ready tenant",
        faults="SIGKILL of the active replica; a new tenant created right after",
    )
    kubectl = private.kubectl
    standby = private.start_operator(artifacts / "chart-operator-0-takeover.log", priority=0)
    wait_for(lambda: peers(private) == [0, 1], 20, 0.3, "both replicas in the peering object")
    active["operator"].kill()
    killed = time.monotonic()
    world = make_world(sim, "+1 555 0177")
    kubectl.apply(
        dump(secret("late-token", {"accessToken": world.token}),
             tenant("late", "t_chart_takeover", world, "late-token")),
        private.watched,
    )  # fmt: skip

    def ready() -> bool:
        obj = kubectl.json("get", "wat", "late", "-n", private.watched)
        return any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in obj.get("status", {}).get("conditions", [])
        )

    try:
        wait_for(ready, PEER_LIFETIME + 30, 0.5, "the new tenant Ready under the standby")
    finally:
        took = time.monotonic() - killed
        scenario.record(converged_s=took, convergence_of="leader killed -> new tenant Ready")
    assert standby.running
    assert took <= PEER_LIFETIME + 15  # the peer lifetime, then one reconcile
    print(f"\n[figure] leader SIGKILLed: the standby made a new tenant Ready in {took:.1f} s")
