"""The Helm chart (charts/whatsapp-operator), rendered with `helm template`: no cluster needed.

helm comes from hack/build-tools.sh (cached in ~/.cache/whatsapp-operator/tools); these tests
are skipped, saying so, when it has not been built.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "whatsapp-operator"
PRODUCTION = CHART / "ci" / "production-values.yaml"
KOPF_CRDS = "kopfpeerings.kopf.dev.yaml"  # the chart's own addition to the repository's CRDs


def tools_dir() -> Path:
    """Where hack/build-tools.sh puts helm and kubeconform (same rules as the script)."""
    cache = os.environ.get("WHATSAPP_OPERATOR_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "whatsapp-operator"
    )
    return Path(cache) / "tools" / "bin"


HELM = tools_dir() / "helm"
needs_helm = pytest.mark.skipif(
    not os.access(HELM, os.X_OK),
    reason=f"helm not built ({HELM} missing): run hack/build-tools.sh (make tools)",
)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, timeout=60, check=False
    )


# The chart renders only once the served namespaces are chosen (watchNamespaces, or
# allNamespaces: true): a test that chooses neither (no values file) gets this one.
WATCHED_BY_DEFAULT = "watchNamespaces={shop}"
# metrics.listenAddress's default: in a pod, the kubelet's probes reach the pod IP
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - the chart's value, checked, not bound here


def choice(values: Iterable[str], files: Iterable[Path]) -> list[str]:
    """The --set that chooses the served namespaces, unless the values or files do."""
    chosen = any(v.startswith(("watchNamespaces=", "allNamespaces=")) for v in values)
    return [] if chosen or list(files) else [WATCHED_BY_DEFAULT]


def render_text(
    *values: str, files: Iterable[Path] = (), namespace: str = "ops", api: Iterable[str] = ()
) -> str:
    files = list(files)
    args = ["template", "rel", str(CHART), "--namespace", namespace]
    for version in api:
        args += ["--api-versions", version]
    for f in files:
        args += ["-f", str(f)]
    for v in [*choice(values, files), *values]:
        args += ["--set", v]
    proc = helm(*args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def is_test_hook(doc: dict[str, Any]) -> bool:
    """An object of `helm test` (templates/tests/), not of the installed release."""
    return (doc.get("metadata", {}).get("annotations") or {}).get("helm.sh/hook") == "test"


def render(
    *values: str,
    files: Iterable[Path] = (),
    namespace: str = "ops",
    api: Iterable[str] = (),
    tests: bool = False,
) -> list[dict[str, Any]]:
    """The release's objects; with `tests`, the `helm test` hooks too."""
    text = render_text(*values, files=files, namespace=namespace, api=api)
    docs = [d for d in yaml.safe_load_all(text) if d]
    return docs if tests else [d for d in docs if not is_test_hook(d)]


def render_fails(*values: str, files: Iterable[Path] = (), choose: bool = True) -> str:
    """helm's error output; `choose`: add the served namespaces if the values do not."""
    files = list(files)
    args = ["template", "rel", str(CHART)]
    for f in files:
        args += ["-f", str(f)]
    for v in [*(choice(values, files) if choose else []), *values]:
        args += ["--set", v]
    proc = helm(*args)
    assert proc.returncode != 0, f"rendered although it should not have:\n{proc.stdout[:2000]}"
    return proc.stderr


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in of_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {[d['metadata']['name'] for d in found]}"
    return found[0]


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (d["metadata"]["name"], d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")
    ]


def worker_deployments(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        d
        for d in of_kind(docs, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    ]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def rules_of(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples: the whole grant, flattened."""
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def is_user_role(doc: dict[str, Any]) -> bool:
    """A ClusterRole of userRoles (for people, bound by the platform team), not the operator's."""
    return doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "user-roles"


def grants(verbs: str, group: str, *resources: str) -> set[tuple[str, str, str]]:
    return {(group, r, v) for r in resources for v in verbs.split()}


# What the operator needs in a namespace it watches (docs/chart.md has the reasons).
WATCHED = (
    grants("get list watch patch create", "whatsapp.operator.dev", "whatsapptenants")
    | grants("get list watch patch create", "whatsapp.operator.dev", "whatsappsignups")
    | grants("patch", "whatsapp.operator.dev", "whatsapptenants/status", "whatsappsignups/status")
    | grants("get list watch patch create", "", "secrets")
    | grants("create", "", "events")
)
PUBLISHER = grants("get list create patch delete", "", "secrets")
# Whatever the watched namespaces: the cluster-scoped WhatsAppApps, and the namespaces their
# namespaceSelector matches (ClusterRole <ns>-<fullname>-operator-apps) ...
APPS = (
    grants("get list watch patch", "whatsapp.operator.dev", "whatsappapps")
    | grants("get patch", "whatsapp.operator.dev", "whatsappapps/status")
    | grants("get list watch", "", "namespaces")
    | grants("get list watch", "whatsapp.operator.dev", "whatsapptenantpolicies")  # read only
)
# ... and in its own namespace the apps' Secrets and the Events of cluster-scoped objects
# (Role <fullname>-operator-apps; the webhook receiver's config Secret: test_chart_webhook.py).
OWN_NAMESPACE = grants("get list watch", "", "secrets") | grants("create", "", "events")
APPS_CLUSTER_ROLE = "ops-rel-whatsapp-operator-operator-apps"


@pytest.fixture(scope="module")
def default_docs() -> list[dict[str, Any]]:
    """The default values with the one choice they require: the served namespaces (shop)."""
    if not os.access(HELM, os.X_OK):
        pytest.skip(f"helm not built ({HELM} missing): run hack/build-tools.sh (make tools)")
    return render(WATCHED_BY_DEFAULT)


@pytest.fixture(scope="module")
def all_namespaces_docs() -> list[dict[str, Any]]:
    if not os.access(HELM, os.X_OK):
        pytest.skip(f"helm not built ({HELM} missing): run hack/build-tools.sh (make tools)")
    return render("allNamespaces=true")


@pytest.fixture(scope="module")
def production_docs() -> list[dict[str, Any]]:
    if not os.access(HELM, os.X_OK):
        pytest.skip(f"helm not built ({HELM} missing): run hack/build-tools.sh (make tools)")
    return render(files=[PRODUCTION], namespace="whatsapp-system")


# --- CRDs -------------------------------------------------------------------------------------


def test_chart_crds_are_byte_identical_copies_of_the_repository_crds() -> None:
    repo = {p.name: p.read_bytes() for p in sorted((ROOT / "crds").glob("*.yaml"))}
    chart = {p.name: p.read_bytes() for p in sorted((CHART / "crds").glob("*.yaml"))}
    assert repo, "no CRDs in crds/"
    for name, content in repo.items():
        assert name in chart, f"charts/whatsapp-operator/crds/{name} missing: cp crds/*.yaml"
        assert chart[name] == content, f"charts/whatsapp-operator/crds/{name} differs from crds/"
    assert set(chart) - set(repo) == {KOPF_CRDS}, "the chart's crds/ holds an unexpected file"


def test_kopf_peering_crds_match_what_kopf_uses() -> None:
    from kopf._cogs.structs import references

    docs = list(yaml.safe_load_all((CHART / "crds" / KOPF_CRDS).read_text()))
    served = {
        (d["spec"]["group"], d["spec"]["names"]["plural"], d["spec"]["scope"]): d["spec"][
            "versions"
        ][0]["name"]
        for d in docs
    }
    assert served == {
        ("kopf.dev", "clusterkopfpeerings", "Cluster"): "v1",
        ("kopf.dev", "kopfpeerings", "Namespaced"): "v1",
    }
    # what kopf itself looks for: a kopf upgrade that renames them fails here
    kopf_selectors = {
        (s.group, s.version, s.any_name)
        for s in (references.CLUSTER_PEERINGS_K, references.NAMESPACED_PEERINGS_K)
    }
    assert kopf_selectors == {
        ("kopf.dev", "v1", "clusterkopfpeerings"),
        ("kopf.dev", "v1", "kopfpeerings"),
    }


# --- the two values files ---------------------------------------------------------------------


@needs_helm
def test_default_values_render_the_operator_alone(default_docs: list[dict[str, Any]]) -> None:
    kinds = sorted(d["kind"] for d in default_docs)
    assert kinds == [
        "ClusterRole",  # WhatsAppApps and namespaces
        "ClusterRole",  # userRoles: tenant-editor (bound by the platform, not the chart)
        "ClusterRole",  # userRoles: platform-admin
        "ClusterRoleBinding",
        "KopfPeering",  # in the watched namespace
        "NetworkPolicy",  # on by default: the operator's
        "Role",  # the watched namespace
        "Role",  # the workers namespace
        "Role",  # its own namespace: the apps' Secrets
        "RoleBinding",
        "RoleBinding",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "StatefulSet",
    ]  # no webhook receiver unless webhook.enabled
    sts = one(default_docs, "StatefulSet")
    assert sts["spec"]["replicas"] == 1
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "whatsapp-operator:0.1.0"  # tag defaults to appVersion
    assert container["command"] == ["whatsapp-operator"]
    assert container["args"] == [
        "--namespace=shop",
        "--workers-namespace=ops",
        "--operator-namespace=ops",  # the apps' Secrets (and the receiver's config) live here
        "--tenant-policy=enforce",  # tenant ids only where a WhatsAppTenantPolicy allows them
        "--initial-shards=4",
        "--graph-api-version=v25.0",
        "--graph-rate=10",
        "--graph-burst=20",
        "--unavailable-grace=15m",
        "--liveness-host=0.0.0.0",  # the kubelet's probes reach the pod IP
        "--liveness-port=8080",
        "--metrics-host=0.0.0.0",
        "--metrics-port=9090",
        "--log-level=INFO",
        "--log-format=json",
        "--peering=rel-whatsapp-operator",
    ]
    # no database, AMQP or keys unless Secrets are named
    assert set(env_of(container)) == {"WHATSAPP_OPERATOR_PRIORITY", "PYTHONDONTWRITEBYTECODE"}


@needs_helm
def test_production_values_render(production_docs: list[dict[str, Any]]) -> None:
    counts: dict[str, int] = {}
    for d in production_docs:
        counts[d["kind"]] = counts.get(d["kind"], 0) + 1
    assert counts == {
        "StatefulSet": 1,
        "Deployment": 3,  # two pools and the webhook receiver
        "ServiceAccount": 3,
        "Role": 5,  # 3 watched namespaces + the workers namespace + its own (apps, receiver)
        "RoleBinding": 5,
        "ClusterRole": 3,  # WhatsAppApps and namespaces; userRoles' tenant-editor, platform-admin
        "ClusterRoleBinding": 1,
        "KopfPeering": 3,
        "Service": 5,  # operator, two pools, the receiver's webhooks and its metrics
        "ServiceMonitor": 3,
        "NetworkPolicy": 3,
        "PodDisruptionBudget": 4,  # one per pool, the operator (2 replicas), the receiver
        "Ingress": 1,
        "HorizontalPodAutoscaler": 1,
    }
    sts = one(production_docs, "StatefulSet")
    assert sts["spec"]["replicas"] == 2
    assert sts["metadata"]["namespace"] == "whatsapp-system"
    for deployment in worker_deployments(production_docs):
        assert deployment["spec"]["replicas"] == 3
        assert deployment["metadata"]["namespace"] == "whatsapp-workers"
    pdbs = {
        d["metadata"]["name"]: d["spec"] for d in of_kind(production_docs, "PodDisruptionBudget")
    }
    assert pdbs["rel-whatsapp-operator-worker-default"]["minAvailable"] == 1
    assert pdbs["rel-whatsapp-operator-worker-priority"]["minAvailable"] == 1
    assert {d["metadata"]["namespace"] for d in of_kind(production_docs, "KopfPeering")} == {
        "shop",
        "payments",
        "signups",
    }


@needs_helm
def test_operator_replicas_get_a_disruption_budget() -> None:
    docs = render("operator.replicas=2")
    sts = one(docs, "StatefulSet")
    assert sts["spec"]["replicas"] == 2
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert one(docs, "PodDisruptionBudget")["spec"] == {
        "maxUnavailable": 1,
        "selector": sts["spec"]["selector"],
    }


@needs_helm
def test_operator_reads_its_secrets_from_existing_secrets(
    production_docs: list[dict[str, Any]],
) -> None:
    spec = one(production_docs, "StatefulSet")["spec"]["template"]["spec"]
    container = spec["containers"][0]
    env = env_of(container)
    assert env["WHATSAPP_OPERATOR_DATABASE_URL"] == {
        "secretKeyRef": {"name": "whatsapp-operator-database", "key": "url"}
    }
    assert env["WHATSAPP_OPERATOR_AMQP_URL"] == {
        "secretKeyRef": {"name": "whatsapp-rabbitmq", "key": "url"}
    }
    assert env["WHATSAPP_OPERATOR_SIGNUP_CALLBACK_SECRET"] == {
        "secretKeyRef": {"name": "whatsapp-signup-callback", "key": "secret"}
    }
    # the peering priority is the pod's ordinal, through the downward API: no shell
    assert env["WHATSAPP_OPERATOR_PRIORITY"] == {
        "fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}
    }
    args = container["args"]
    assert [a for a in args if a.startswith("--namespace")] == [
        "--namespace=shop",
        "--namespace=payments",
        "--namespace=signups",
    ]
    assert "--all-namespaces" not in args
    assert "--workers-namespace=whatsapp-workers" in args
    assert "--encryption-keys-dir=/etc/whatsapp-operator/keys" in args
    assert "--token-storage=encrypted" in args
    assert not any("://" in a for a in args), "a URL (maybe with a password) in the args"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["encryption-keys"] == {
        "name": "encryption-keys",
        "mountPath": "/etc/whatsapp-operator/keys",
        "readOnly": True,
    }
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["encryption-keys"]["secret"]["secretName"] == "whatsapp-operator-keys"
    # the audit trail's HMAC key (issue 19): one file, read-only, named by the flag
    assert "--audit-key-file=/etc/whatsapp-operator/audit-key/key" in args
    assert mounts["audit-key"]["mountPath"] == "/etc/whatsapp-operator/audit-key"
    assert mounts["audit-key"]["readOnly"] is True
    assert volumes["audit-key"]["secret"] == {
        "secretName": "whatsapp-operator-audit-key",
        "defaultMode": 0o440,
        "items": [{"key": "key", "path": "key"}],
    }
    assert volumes["tmp"]["emptyDir"] == {"sizeLimit": "64Mi"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9090, "signup": 8443}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}


# --- RBAC -------------------------------------------------------------------------------------


@needs_helm
def test_watch_namespaces_give_a_role_in_each_and_no_cluster_role_but_the_apps() -> None:
    docs = render("watchNamespaces={shop,payments}", "workersNamespace=senders")
    # only the cluster-scoped WhatsAppApps (and namespaces) are granted cluster-wide (the
    # userRoles ClusterRoles are for people, bound by the platform: test_chart_user_roles.py)
    [cluster_role] = [r for r in of_kind(docs, "ClusterRole") if not is_user_role(r)]
    assert cluster_role["metadata"]["name"] == APPS_CLUSTER_ROLE
    assert rules_of(cluster_role) == APPS
    [cluster_binding] = of_kind(docs, "ClusterRoleBinding")
    assert cluster_binding["roleRef"]["name"] == APPS_CLUSTER_ROLE
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in of_kind(docs, "Role")}
    peering = grants("get list watch patch", "kopf.dev", "kopfpeerings")
    assert set(roles) == {
        ("shop", "rel-whatsapp-operator-operator"),
        ("payments", "rel-whatsapp-operator-operator"),
        ("senders", "rel-whatsapp-operator-operator-publisher"),
        ("ops", "rel-whatsapp-operator-operator-apps"),
    }
    for ns in ("shop", "payments"):
        assert rules_of(roles[(ns, "rel-whatsapp-operator-operator")]) == WATCHED | peering
    assert rules_of(roles[("senders", "rel-whatsapp-operator-operator-publisher")]) == PUBLISHER
    assert rules_of(roles[("ops", "rel-whatsapp-operator-operator-apps")]) == OWN_NAMESPACE
    bindings = of_kind(docs, "RoleBinding")
    assert len(bindings) == 4
    for b in bindings:
        assert b["subjects"] == [
            {"kind": "ServiceAccount", "name": "rel-whatsapp-operator-operator", "namespace": "ops"}
        ]
        assert b["roleRef"]["kind"] == "Role"
        assert b["roleRef"]["name"] == b["metadata"]["name"]


@needs_helm
def test_all_namespaces_give_one_cluster_role(all_namespaces_docs: list[dict[str, Any]]) -> None:
    default_docs = all_namespaces_docs
    role = one(default_docs, "ClusterRole", "ops-rel-whatsapp-operator-operator")
    assert rules_of(role) == WATCHED | grants(
        "get list watch patch", "kopf.dev", "clusterkopfpeerings"
    )
    assert rules_of(one(default_docs, "ClusterRole", APPS_CLUSTER_ROLE)) == APPS
    args = one(default_docs, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "--all-namespaces"
    binding = one(default_docs, "ClusterRoleBinding", "ops-rel-whatsapp-operator-operator")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"][0]["name"] == "rel-whatsapp-operator-operator"
    # the workers namespace (the release's by default) has its own narrow Role
    publisher = one(default_docs, "Role", "rel-whatsapp-operator-operator-publisher")
    assert publisher["metadata"]["namespace"] == "ops"
    assert rules_of(publisher) == PUBLISHER


NO_CHOICE = "watchNamespaces is empty: list the namespaces the operator serves"


@needs_helm
@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param((), NO_CHOICE, id="the defaults: no namespaces chosen"),
        pytest.param(("allNamespaces=false",), NO_CHOICE, id="allNamespaces false, no list"),
        pytest.param(("watchNamespaces=null",), NO_CHOICE, id="an explicitly empty list"),
        pytest.param(
            ("allNamespaces=true", "watchNamespaces={shop}"),
            "set watchNamespaces or allNamespaces: true, not both",
            id="both",
        ),
    ],
)
def test_the_served_namespaces_must_be_chosen(values: tuple[str, ...], message: str) -> None:
    """No silent ClusterRole over every Secret: the render fails, with one line, until the
    namespaces are listed or allNamespaces: true is set (and fails with both)."""
    error = render_fails(*values, choose=False)
    [line] = [ln for ln in error.splitlines() if ln.strip() and "--debug" not in ln]
    assert message in line


@needs_helm
@pytest.mark.parametrize(
    ("values", "cluster_wide"),
    [
        pytest.param(("allNamespaces=true",), True, id="allNamespaces: a ClusterRole"),
        pytest.param(("watchNamespaces={shop,payments}",), False, id="a list: Roles only"),
    ],
)
def test_secrets_cluster_wide_only_with_all_namespaces(
    values: tuple[str, ...], cluster_wide: bool
) -> None:
    docs = render(*values)
    cluster_secrets = [
        d["metadata"]["name"]
        for d in of_kind(docs, "ClusterRole")
        if not is_user_role(d) and any(r == "secrets" for _, r, _ in rules_of(d))
    ]
    assert cluster_secrets == (["ops-rel-whatsapp-operator-operator"] if cluster_wide else [])
    watched = {
        r["metadata"]["namespace"]
        for r in of_kind(docs, "Role")
        if r["metadata"]["name"] == "rel-whatsapp-operator-operator"
    }
    assert watched == (set() if cluster_wide else {"shop", "payments"})


@needs_helm
def test_no_rbac_rule_grants_wildcards_crds_or_namespaces(
    default_docs: list[dict[str, Any]],
    all_namespaces_docs: list[dict[str, Any]],
    production_docs: list[dict[str, Any]],
) -> None:
    for doc in default_docs + all_namespaces_docs + production_docs:
        if doc["kind"] not in ("Role", "ClusterRole") or is_user_role(doc):
            continue  # the roles for people: test_chart_user_roles.py
        name = doc["metadata"]["name"]
        for rule in doc["rules"]:
            for group, resource, verb in rules_of({"rules": [rule]}):
                assert "*" not in (group, resource, verb), name
                assert resource != "customresourcedefinitions", name
                if resource == "namespaces":  # an app's namespaceSelector, read-only
                    assert name.endswith("-operator-apps"), name
                    assert verb in ("get", "list", "watch"), name
                assert verb not in ("deletecollection", "escalate", "bind", "impersonate")
                if verb == "update":  # the receiver's config Secret, by name, nothing else
                    assert rule["resourceNames"] == ["whatsapp-webhook-config"], name
                if verb == "delete":  # only the superseded shard layouts, in the workers namespace
                    assert name.endswith("-publisher")


@needs_helm
def test_peering_off_drops_peering_rules_and_objects() -> None:
    docs = render("operator.peering.enabled=false", "allNamespaces=true")
    assert not of_kind(docs, "ClusterKopfPeering")
    assert rules_of(one(docs, "ClusterRole", "ops-rel-whatsapp-operator-operator")) == WATCHED
    args = one(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [a for a in args if a.startswith("--peering")]
    assert "--all-namespaces" in args


@needs_helm
def test_workers_have_no_token_and_no_rbac(production_docs: list[dict[str, Any]]) -> None:
    sa = one(production_docs, "ServiceAccount", "rel-whatsapp-operator-worker")
    assert sa["automountServiceAccountToken"] is False
    assert sa["metadata"]["namespace"] == "whatsapp-workers"
    for deployment in worker_deployments(production_docs):
        spec = deployment["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] == "rel-whatsapp-operator-worker"
        assert spec["automountServiceAccountToken"] is False
        assert spec["enableServiceLinks"] is False
    for binding in of_kind(production_docs, "RoleBinding") + of_kind(
        production_docs, "ClusterRoleBinding"
    ):
        names = {s["name"] for s in binding["subjects"]}
        assert names == {"rel-whatsapp-operator-operator"}, binding["metadata"]["name"]


# --- pods -------------------------------------------------------------------------------------


@needs_helm
@pytest.mark.parametrize("which", ["default", "production"])
def test_every_container_is_restricted(
    which: str, default_docs: list[dict[str, Any]], production_docs: list[dict[str, Any]]
) -> None:
    docs = default_docs if which == "default" else production_docs
    specs = pod_specs(docs)
    assert len(specs) == (1 if which == "default" else 4)  # production: pools and receiver
    for name, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] == 10001, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not spec.get("hostNetwork"), name
        assert not spec.get("hostPID"), name
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, (name, c["name"])
            assert sc["runAsUser"] == 10001, (name, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["capabilities"] == {"drop": ["ALL"]}, (name, c["name"])
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, (name, c["name"])
            assert sc.get("privileged") is False, (name, c["name"])
            assert c["resources"]["requests"], (name, c["name"])
            assert c["resources"]["limits"]["memory"], (name, c["name"])
            tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert len(tmp) == 1, (name, c["name"])
        tmp_volume = {v["name"]: v for v in spec["volumes"]}[tmp[0]["name"]]
        assert "emptyDir" in tmp_volume


@needs_helm
def test_worker_pool_deployment(production_docs: list[dict[str, Any]]) -> None:
    default = one(production_docs, "Deployment", "rel-whatsapp-operator-worker-default")
    default_env = env_of(default["spec"]["template"]["spec"]["containers"][0])
    assert default_env["WHATSAPP_WORKER_UNCERTAIN_SENDS"] == "dead_letter"
    deployment = one(production_docs, "Deployment", "rel-whatsapp-operator-worker-priority")
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["command"] == ["whatsapp-worker"]
    assert container["image"] == "registry.example.com/platform/whatsapp-operator:0.1.0"
    assert env_of(container) == {
        "WHATSAPP_WORKER_POOL": "priority",
        "WHATSAPP_WORKER_AMQP_URL": {"secretKeyRef": {"name": "whatsapp-rabbitmq", "key": "url"}},
        "WHATSAPP_WORKER_CONFIG_DIR": "/etc/whatsapp-worker/config",
        "WHATSAPP_WORKER_METRICS_HOST": ALL_INTERFACES,  # the programs' default is 127.0.0.1
        "WHATSAPP_WORKER_METRICS_PORT": "9090",
        "WHATSAPP_WORKER_SHARDS": "8",
        "WHATSAPP_WORKER_CONCURRENCY": "128",
        "WHATSAPP_WORKER_PREFETCH": "64",
        "WHATSAPP_WORKER_UNCERTAIN_SENDS": "resend",
        "WHATSAPP_WORKER_LOG_FORMAT": "json",  # workers.logFormat
        "WHATSAPP_WORKER_STATUS_WAIT": "20",  # workers.statusWait
        "WHATSAPP_WORKER_SERVICE_WINDOW_CHECK": "auto",  # workers.serviceWindowCheck
        "WHATSAPP_WORKER_HOLD_WINDOW": "300",  # the pool's extraEnv
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert "exec" not in container["livenessProbe"]
    assert {m["mountPath"]: m.get("readOnly", False) for m in container["volumeMounts"]} == {
        "/etc/whatsapp-worker/config": True,
        "/tmp": False,
    }
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector["whatsapp.operator.dev/pool"] == "priority"
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def shard_names(pool: str, max_shards: int) -> list[str]:
    names, n = [], 1
    while n <= max_shards:
        names += [f"whatsapp-pool-{pool}-{i}-of-{n}" for i in range(n)]
        n *= 2
    return names


@needs_helm
@pytest.mark.parametrize(("max_shards", "sources"), [(32, 63), (1, 1), (8, 15), (1024, 2047)])
def test_one_projected_volume_lists_every_possible_shard_secret(
    max_shards: int, sources: int
) -> None:
    docs = render(
        "amqp.existingSecret=rabbit",
        "workers.pools[0].name=bulk",
        f"workers.maxShards={max_shards}",
    )
    spec = one(docs, "Deployment")["spec"]["template"]["spec"]
    projected = [v for v in spec["volumes"] if "projected" in v]
    assert len(projected) == 1
    listed = projected[0]["projected"]["sources"]
    assert len(listed) == sources
    assert all(s == {"secret": {"name": s["secret"]["name"], "optional": True}} for s in listed)
    assert [s["secret"]["name"] for s in listed] == shard_names("bulk", max_shards)
    # a new pool's first layout is one the workers mount
    (operator,) = one(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    assert f"--initial-shards={min(4, max_shards)}" in operator["args"]


def test_shard_secret_names_are_the_publishers() -> None:
    """The names the chart lists are the ones the operator writes (whatsapp_contract.resolved)."""
    from whatsapp_contract.resolved import MAX_CONFIG_SHARDS as MAX_SHARDS
    from whatsapp_contract.resolved import config_shard_name as shard_name

    assert shard_names("p", 4) == [shard_name("p", i, n) for n in (1, 2, 4) for i in range(n)]
    assert MAX_SHARDS == 1024  # values.schema.json's largest workers.maxShards


@needs_helm
def test_autoscaling_replaces_the_replica_count() -> None:
    docs = render(
        "amqp.existingSecret=rabbit",
        "workers.pools[0].name=default",
        "workers.pools[0].autoscaling.enabled=true",
        "workers.pools[0].autoscaling.minReplicas=2",
        "workers.pools[0].autoscaling.maxReplicas=6",
    )
    assert "replicas" not in one(docs, "Deployment")["spec"]
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] == 2
    assert hpa["spec"]["maxReplicas"] == 6
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


@needs_helm
def test_autoscaling_on_queue_length_is_a_keda_scaled_object() -> None:
    docs = render(
        "amqp.existingSecret=rabbit",
        "workersNamespace=w",
        "workers.pools[0].name=bulk",
        "workers.pools[0].shards=4",
        "workers.pools[0].autoscaling.enabled=true",
        "workers.pools[0].autoscaling.metric=queueLength",
        "workers.pools[0].autoscaling.queueLength.messagesPerReplica=500",
        "workers.pools[0].autoscaling.queueLength.managementSecret.name=rabbit-admin",
    )
    assert "replicas" not in one(docs, "Deployment")["spec"]
    assert of_kind(docs, "HorizontalPodAutoscaler") == []  # KEDA makes its own
    scaled, auth = one(docs, "ScaledObject"), one(docs, "TriggerAuthentication")
    assert scaled["metadata"]["namespace"] == auth["metadata"]["namespace"] == "w"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"name": one(docs, "Deployment")["metadata"]["name"]}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 4)  # at most the shards
    [trigger] = spec["triggers"]
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    meta = trigger["metadata"]
    assert (meta["mode"], meta["value"], meta["operation"]) == ("QueueLength", "500", "sum")
    assert (meta["protocol"], meta["useRegex"]) == ("http", "true")  # regex needs the HTTP API
    counted = re.compile(meta["queueName"])
    assert counted.match("whatsapp.bulk.shard.0")
    assert counted.match("whatsapp.bulk.shard.31")
    assert not counted.match("whatsapp.bulk.shard.0.delay.10s")  # cannot be sent yet
    assert not counted.match("whatsapp.bulk.dead")
    assert not counted.match("whatsapp.bulkier.shard.0")
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "host", "name": "rabbit-admin", "key": "url"}
    ]


@needs_helm
def test_queue_length_autoscaling_needs_the_management_secret() -> None:
    error = render_fails(
        "amqp.existingSecret=rabbit",
        "workers.pools[0].name=bulk",
        "workers.pools[0].autoscaling.enabled=true",
        "workers.pools[0].autoscaling.metric=queueLength",
    )
    assert "needs autoscaling.queueLength.managementSecret.name" in error


@needs_helm
def test_single_replicas_get_no_disruption_budget() -> None:
    docs = render("amqp.existingSecret=rabbit", "workers.pools[0].name=default")
    assert one(docs, "Deployment")["spec"]["replicas"] == 1
    assert of_kind(docs, "PodDisruptionBudget") == []


# --- network policies -------------------------------------------------------------------------


@needs_helm
def test_network_policies_allow_only_what_is_needed(production_docs: list[dict[str, Any]]) -> None:
    policies = {d["metadata"]["name"]: d["spec"] for d in of_kind(production_docs, "NetworkPolicy")}
    operator = policies["rel-whatsapp-operator-operator"]
    worker = policies["rel-whatsapp-operator-worker"]

    def egress_ports(spec: dict[str, Any]) -> list[set[tuple[str, int]]]:
        return [{(p["protocol"], p["port"]) for p in rule["ports"]} for rule in spec["egress"]]

    dns = {("UDP", 53), ("TCP", 53)}
    assert egress_ports(operator) == [
        dns,
        {("TCP", 6443)},
        {("TCP", 5432)},
        {("TCP", 5672)},
        {("TCP", 443)},
    ]
    assert egress_ports(worker) == [dns, {("TCP", 5672)}, {("TCP", 443)}]
    assert operator["egress"][1]["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]
    assert worker["egress"][2]["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
    # metrics from metricsFrom (the monitoring namespace); the health port from nobody: the
    # kubelet probes from the node, which a NetworkPolicy does not block
    monitoring = [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}]  # fmt: skip
    assert [{p["port"] for p in r["ports"]} for r in operator["ingress"]] == [{9090}, {8443}]
    assert operator["ingress"][0]["from"] == monitoring
    assert worker["ingress"] == [{"ports": [{"protocol": "TCP", "port": 9090}], "from": monitoring}]
    for spec in (operator, worker):
        assert spec["policyTypes"] == ["Ingress", "Egress"]


@needs_helm
def test_network_policies_are_on_by_default_and_close_the_metrics_ports(
    default_docs: list[dict[str, Any]],
) -> None:
    """The defaults: the operator's NetworkPolicy, no ingress at all (its health port is the
    kubelet's, from the node; metrics only once networkPolicy.metricsFrom names Prometheus),
    and egress to the API server on its port, anywhere until its CIDRs are given."""
    [policy] = of_kind(default_docs, "NetworkPolicy")
    spec = policy["spec"]
    assert policy["metadata"]["name"] == "rel-whatsapp-operator-operator"
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == []
    assert {"ports": [{"protocol": "TCP", "port": 6443}]} in spec["egress"]
    pools = ("amqp.existingSecret=r", "workers.pools[0].name=p", "webhook.enabled=true")
    docs = render(*pools)
    for np in of_kind(docs, "NetworkPolicy"):
        if np["metadata"]["name"].endswith("-webhook"):  # webhooks from the ingress controller
            assert [r["ports"] for r in np["spec"]["ingress"]] == [
                [{"protocol": "TCP", "port": 8080}]
            ]
        else:
            assert np["spec"]["ingress"] == [], np["metadata"]["name"]
    opened = render(*pools, "networkPolicy.metricsFrom[0].podSelector.matchLabels.app=prometheus")
    for np in of_kind(opened, "NetworkPolicy"):
        assert {
            "ports": [{"protocol": "TCP", "port": 9090}],
            "from": [{"podSelector": {"matchLabels": {"app": "prometheus"}}}],
        } in np["spec"]["ingress"], np["metadata"]["name"]
    assert of_kind(render("networkPolicy.enabled=false"), "NetworkPolicy") == []


@needs_helm
@pytest.mark.parametrize("address", [ALL_INTERFACES, "::", "10.1.2.3"])
def test_every_server_binds_the_listen_address(address: str) -> None:
    """metrics.listenAddress reaches the operator's health and metrics flags, the workers'
    WHATSAPP_WORKER_METRICS_HOST and the receiver's listen and metrics flags."""
    docs = render("amqp.existingSecret=r", "workers.pools[0].name=p", "webhook.enabled=true",
                  f"metrics.listenAddress={address}")  # fmt: skip
    args = one(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--liveness-host={address}" in args
    assert f"--metrics-host={address}" in args
    [worker] = worker_deployments(docs)
    assert env_of(worker["spec"]["template"]["spec"]["containers"][0])[
        "WHATSAPP_WORKER_METRICS_HOST"] == address  # fmt: skip
    receiver = one(docs, "Deployment", "rel-whatsapp-operator-webhook")
    webhook_args = receiver["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--listen-host={address}" in webhook_args
    assert f"--metrics-host={address}" in webhook_args


@needs_helm
@pytest.mark.parametrize(
    ("url", "port"),
    [("", 443), ("http://graph-sim.test:8080", 8080), ("http://proxy.test", 80)],
)
def test_graph_api_egress_port_follows_the_url(url: str, port: int) -> None:
    docs = render("networkPolicy.enabled=true", "networkPolicy.apiServer.cidrs={10.0.0.1/32}",
                  f"graphApi.url={url}")  # fmt: skip
    egress = one(docs, "NetworkPolicy")["spec"]["egress"]
    assert egress[-1]["ports"] == [{"protocol": "TCP", "port": port}]


# --- values.schema.json and the chart's own checks --------------------------------------------


@needs_helm
@pytest.mark.parametrize(
    "value",
    [
        "operator.replicass=2",  # a typo one level down
        "surprise=1",  # at the top
        "workers.pools[0].name=default,workers.pools[0].replica=3",  # inside a pool
        "networkPolicy.apiServer.cidr=10.0.0.1/32",
        "metrics.serviceMonitor.intervall=1m",
    ],
)
def test_schema_rejects_unknown_keys(value: str) -> None:
    stderr = render_fails("amqp.existingSecret=rabbit", value)
    assert "additional properties" in stderr.lower() or "additionalproperties" in stderr.lower()


@needs_helm
def test_helm_lint_fails_on_an_unknown_key() -> None:
    proc = helm("lint", str(CHART), "--set", "operator.replicass=2")
    assert proc.returncode != 0
    assert "replicass" in proc.stdout + proc.stderr


@needs_helm
@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["workers.maxShards=48"], "maxShards"),
        (["operator.logFormat=yaml"], "logFormat"),
        (["watchNamespaces={Shop}"], "watchNamespaces"),
        (["workers.pools[0].name=Bad_Pool", "amqp.existingSecret=r"], "name"),
        (["database.tokenStorage=rot13"], "tokenStorage"),
    ],
)
def test_schema_rejects_bad_values(values: list[str], message: str) -> None:
    assert message in render_fails(*values)


@needs_helm
@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["operator.replicas=2", "operator.peering.enabled=false"], "needs operator.peering"),
        (["workers.pools[0].name=default"], "needs amqp.existingSecret"),
        (["database.existingSecret=db"], "needs encryptionKeys.existingSecret"),
        (
            ["database.existingSecret=db", "encryptionKeys.existingSecret=k"],
            "needs auditKey.existingSecret",
        ),
        (
            ["amqp.existingSecret=r", "workers.pools[0].name=a", "workers.pools[1].name=a"],
            "listed twice",
        ),
        (
            [
                "watchNamespaces={shop}",
                "operator.signupCallback.enabled=true",
                "operator.signupCallback.namespace=elsewhere",
                "operator.signupCallback.appCredentialsSecret=meta-app",
                "operator.signupCallback.hmacSecret.name=hmac",
            ],
            "must be one of watchNamespaces",
        ),
        (
            ["amqp.existingSecret=r", "workers.pools[0].name=" + "p" * 40],
            "longer than 63 characters",
        ),
    ],
)
def test_inconsistent_values_fail_with_a_reason(values: list[str], message: str) -> None:
    assert message in render_fails(*values)


@needs_helm
def test_image_tag_and_digest() -> None:
    def image(*values: str) -> str:
        sts = one(render(*values), "StatefulSet")
        return str(sts["spec"]["template"]["spec"]["containers"][0]["image"])

    assert image("image.tag=1.2.3") == "whatsapp-operator:1.2.3"
    digest = "sha256:" + "a" * 64
    assert image(f"image.digest={digest}") == f"whatsapp-operator@{digest}"


@needs_helm
def test_service_monitors_select_the_metrics_services(
    production_docs: list[dict[str, Any]],
) -> None:
    services = of_kind(production_docs, "Service")
    for monitor in of_kind(production_docs, "ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        matched = [
            s
            for s in services
            if selector.items() <= s["metadata"]["labels"].items()
            and s["metadata"]["namespace"] == monitor["metadata"]["namespace"]
        ]
        assert matched, monitor["metadata"]["name"]
        assert all("metrics" in {p["name"] for p in s["spec"]["ports"]} for s in matched)
        assert monitor["metadata"]["labels"]["release"] == "prometheus"


VAP = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"


@needs_helm
@pytest.mark.parametrize(
    ("values", "api", "guards_workers"),
    [
        pytest.param((), (VAP,), "ops", id="default: the release namespace is the workers'"),
        pytest.param(("workersNamespace=w",), (VAP,), "w", id="a workers namespace"),
        pytest.param(
            ("workersNamespace=w", "watchNamespaces={a,w}"),
            (VAP,),
            None,
            id="workers namespace also watched: only the Opaque rule",
        ),
        pytest.param((), (), False, id="cluster without ValidatingAdmissionPolicy: none"),
        pytest.param(("operator.secretsPolicy.enabled=false",), (VAP,), False, id="turned off"),
    ],
)
def test_the_secrets_policy(
    values: tuple[str, ...], api: tuple[str, ...], guards_workers: str | bool | None
) -> None:
    docs = render(*values, api=api)
    policies = of_kind(docs, "ValidatingAdmissionPolicy")
    bindings = of_kind(docs, "ValidatingAdmissionPolicyBinding")
    if guards_workers is False:
        assert (policies, bindings) == ([], [])
        return
    [policy], [binding] = policies, bindings
    assert binding["spec"] == {
        "policyName": policy["metadata"]["name"],
        "validationActions": ["Deny"],
    }
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    [condition] = spec["matchConditions"]
    assert condition["expression"] == (
        'request.userInfo.username == "system:serviceaccount:ops:rel-whatsapp-operator-operator"'
    )
    assert spec["matchConstraints"]["resourceRules"][0]["operations"] == [
        "CREATE", "UPDATE", "DELETE"]  # fmt: skip
    rules = [v["expression"] for v in spec["validations"]]
    assert rules[0] == "request.operation != 'CREATE' || object.type == 'Opaque'"
    # wherever it is: it changes only the Secrets it owns
    assert " ".join(rules[-1].split()) == OWNED_ONLY
    if guards_workers is None:
        assert len(rules) == 2
    else:
        assert len(rules) == 3
        assert rules[1].startswith(f"request.namespace != '{guards_workers}' ||")
        assert "'whatsapp.operator.dev/pool' in oldObject.metadata.labels" in rules[1]


# The Secrets policy's rule for UPDATE (a patch is one at admission) and DELETE: a Secret the
# operator owns, by its labels before the change (tests/integration/test_chart_identity.py
# shows the API server enforcing it).
OWNED_ONLY = (
    "request.operation == 'CREATE' || (has(oldObject.metadata.labels) && "
    "(('app.kubernetes.io/managed-by' in oldObject.metadata.labels && "
    "oldObject.metadata.labels['app.kubernetes.io/managed-by'] == 'whatsapp-operator') || "
    "'whatsapp.operator.dev/signup' in oldObject.metadata.labels || "
    "('whatsapp.operator.dev/writable-by-operator' in oldObject.metadata.labels && "
    "oldObject.metadata.labels['whatsapp.operator.dev/writable-by-operator'] == 'true')))"
)


@needs_helm
def test_the_tenant_policy_value_reaches_the_operator() -> None:
    """Chart value tenantPolicy (issue 19): enforce by default, off only when asked."""
    for values, flag in (
        ((), "--tenant-policy=enforce"),
        (("tenantPolicy=off",), "--tenant-policy=off"),
    ):
        (operator,) = one(render(*values), "StatefulSet")["spec"]["template"]["spec"]["containers"]
        assert flag in operator["args"]
    assert "tenantPolicy" in render_fails("tenantPolicy=lax")
