"""The chart's webhook receiver (webhook.enabled), rendered with `helm template`.

What the receiver's pods get (no API token, the operator's config Secret, the flags its CLI
parses), the optional Ingress, HPA, PDB and NetworkPolicy, the operator's --webhook-receiver and
the RBAC and admission rules that let the operator write the receiver's config and nothing more.
"""

from __future__ import annotations

import os
from typing import Any
from unittest import mock

import pytest
from test_chart_render import (
    ALL_INTERFACES,
    CHART,
    HELM,
    PRODUCTION,
    env_of,
    grants,
    needs_helm,
    of_kind,
    one,
    render,
    render_fails,
    rules_of,
)

from whatsapp_contract.webhook import CONFIG_KEY, CONFIG_SECRET

pytestmark = needs_helm

ON = ("webhook.enabled=true", "amqp.existingSecret=rabbit")
NAME = "rel-whatsapp-operator-webhook"
OPERATOR_SA = "rel-whatsapp-operator-operator"
OWN_ROLE = "rel-whatsapp-operator-operator-apps"
VAP = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"
PROCESSOR = f"{NAME}-processor"
SEPARATE = CHART / "ci" / "webhook-separate-values.yaml"


def webhook_objects(
    docs: list[dict[str, Any]], component: str = "webhook"
) -> list[tuple[str, str]]:
    return sorted(
        (d["kind"], d["metadata"]["name"])
        for d in docs
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
    )


def receiver(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod spec, container) of the receiver's Deployment."""
    spec = one(docs, "Deployment", NAME)["spec"]["template"]["spec"]
    [container] = spec["containers"]
    return spec, container


def operator_args(docs: list[dict[str, Any]]) -> list[str]:
    sts = one(docs, "StatefulSet")
    return list(sts["spec"]["template"]["spec"]["containers"][0]["args"])


@pytest.fixture(scope="module")
def enabled() -> list[dict[str, Any]]:
    if not os.access(HELM, os.X_OK):
        pytest.skip(f"helm not built ({HELM} missing): run hack/build-tools.sh (make tools)")
    return render(*ON)


@pytest.fixture(scope="module")
def production() -> list[dict[str, Any]]:
    if not os.access(HELM, os.X_OK):
        pytest.skip(f"helm not built ({HELM} missing): run hack/build-tools.sh (make tools)")
    return render(files=[PRODUCTION], namespace="whatsapp-system")


def test_off_by_default() -> None:
    docs = render()
    assert webhook_objects(docs) == []
    assert "--webhook-receiver" not in operator_args(docs)
    own = one(docs, "Role", OWN_ROLE)
    assert not any("resourceNames" in rule for rule in own["rules"])
    assert ("", "secrets", "create") not in rules_of(own)


def test_enabled_renders_the_receiver_and_its_services(enabled: list[dict[str, Any]]) -> None:
    assert webhook_objects(enabled) == [
        ("Deployment", NAME),
        ("NetworkPolicy", NAME),  # networkPolicy.enabled is on by default
        ("PodDisruptionBudget", NAME),  # two replicas by default
        ("Service", NAME),
        ("Service", f"{NAME}-metrics"),
        ("ServiceAccount", NAME),
    ]
    assert "--webhook-receiver" in operator_args(enabled)
    deployment = one(enabled, "Deployment", NAME)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["metadata"]["namespace"] == "ops"
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    service = one(enabled, "Service", NAME)["spec"]
    assert service["type"] == "ClusterIP"
    assert service["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["selector"] == deployment["spec"]["selector"]["matchLabels"]
    metrics = one(enabled, "Service", f"{NAME}-metrics")["spec"]
    assert metrics["type"] == "ClusterIP"  # metrics never behind a load balancer
    assert [p["name"] for p in metrics["ports"]] == ["metrics"]


def test_the_receiver_has_no_api_token_and_no_rbac(enabled: list[dict[str, Any]]) -> None:
    sa = one(enabled, "ServiceAccount", NAME)
    assert sa["automountServiceAccountToken"] is False
    spec, _ = receiver(enabled)
    assert spec["serviceAccountName"] == NAME
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert not any("projected" in v for v in spec["volumes"])  # no token projected by hand
    for binding in of_kind(enabled, "RoleBinding") + of_kind(enabled, "ClusterRoleBinding"):
        assert {s["name"] for s in binding["subjects"]} == {OPERATOR_SA}


def test_the_receiver_mounts_the_operators_config_secret(enabled: list[dict[str, Any]]) -> None:
    spec, container = receiver(enabled)
    volumes = {v["name"]: v for v in spec["volumes"]}
    # the names the operator writes (whatsapp_contract.webhook), not a copy of the template's
    # optional: the operator writes it once an app is Ready; until then the receiver runs,
    # unready (/readyz 503), and the kubelet adds the file when the Secret appears
    assert volumes["config"]["secret"] == {
        "secretName": CONFIG_SECRET,
        "optional": True,
        "defaultMode": 0o440,
        "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}],
    }
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    # a directory, not a subPath: the kubelet's updates of the Secret reach the file
    assert mounts["config"] == {
        "name": "config",
        "mountPath": "/etc/whatsapp-webhook",
        "readOnly": True,
    }
    assert f"--config=/etc/whatsapp-webhook/{CONFIG_KEY}" in container["args"]
    assert volumes["tmp"]["emptyDir"] == {"sizeLimit": "64Mi"}


def test_the_receivers_arguments_environment_and_probes(enabled: list[dict[str, Any]]) -> None:
    _, container = receiver(enabled)
    assert container["command"] == ["whatsapp-webhook"]
    assert container["image"] == "whatsapp-operator:0.1.0"
    assert container["args"] == [
        f"--config=/etc/whatsapp-webhook/{CONFIG_KEY}",
        "--listen-host=0.0.0.0",  # the kubelet and the Service reach the pod IP
        "--listen-port=8080",
        "--metrics-host=0.0.0.0",
        "--metrics-port=9090",
        "--ingress-shards=4",
        "--max-body-bytes=3000000",
        "--log-level=INFO",
        "--log-format=json",
        "--shutdown-delay=5",
    ]
    assert env_of(container) == {
        "WHATSAPP_WEBHOOK_AMQP_URL": {"secretKeyRef": {"name": "rabbit", "key": "url"}},
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080, "metrics": 9090}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}


def test_the_receivers_cli_accepts_the_rendered_arguments() -> None:
    """The flags the chart renders are the ones `whatsapp-webhook` parses (cli.load_settings)."""
    from whatsapp_webhook import cli

    docs = render(*ON, "webhook.ingressShards=8", "webhook.maxBodyBytes=12000000",
                  "webhook.logLevel=DEBUG", "webhook.logFormat=plain")  # fmt: skip
    _, container = receiver(docs)
    assert "--max-body-bytes=12000000" in container["args"]  # not 1.2e+07
    with mock.patch.dict(os.environ, clear=True):
        settings = cli.load_settings(container["args"])
    assert settings.config == f"/etc/whatsapp-webhook/{CONFIG_KEY}"
    assert (settings.listen_port, settings.metrics_port) == (8080, 9090)
    assert (settings.listen_host, settings.metrics_host) == (ALL_INTERFACES, ALL_INTERFACES)
    assert (settings.ingress_shards, settings.max_body_bytes) == (8, 12_000_000)
    assert (settings.log_level, settings.log_format, settings.shutdown_delay) == (
        "DEBUG",
        "plain",
        5.0,
    )
    assert env_of(container)["WHATSAPP_WEBHOOK_AMQP_URL"]  # the URL comes from the Secret
    assert not any("://" in a for a in container["args"])


def test_the_operators_cli_accepts_its_rendered_arguments(enabled: list[dict[str, Any]]) -> None:
    """--webhook-receiver and --operator-namespace (where the receiver's config goes) are the
    operator's own flags (cli.load_config)."""
    from whatsapp_operator.cli import load_config

    args = operator_args(enabled)
    assert "--operator-namespace=ops" in args
    with mock.patch.dict(os.environ, clear=True):
        cfg = load_config(args)
    assert cfg.webhook_receiver is True
    assert cfg.resolved_operator_namespace() == "ops"


def test_the_operator_may_write_only_the_receivers_config_in_its_namespace(
    enabled: list[dict[str, Any]],
) -> None:
    own = one(enabled, "Role", OWN_ROLE)
    assert own["metadata"]["namespace"] == "ops"
    named = [rule for rule in own["rules"] if "resourceNames" in rule]
    assert named == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [CONFIG_SECRET],
            "verbs": ["update", "patch"],
        }
    ]
    assert rules_of(own) == (
        grants("get list watch create update patch", "", "secrets") | grants("create", "", "events")
    )
    binding = one(enabled, "RoleBinding", OWN_ROLE)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": OWN_ROLE}  # fmt: skip
    # WhatsAppApps, tenant policies and namespaces, cluster-wide: policies read only
    apps = one(enabled, "ClusterRole", "ops-rel-whatsapp-operator-operator-apps")
    assert rules_of(apps) == (
        grants("get list watch patch", "whatsapp.operator.dev", "whatsappapps")
        | grants("get patch", "whatsapp.operator.dev", "whatsappapps/status")
        | grants("get list watch", "whatsapp.operator.dev", "whatsapptenantpolicies")
        | grants("get list watch", "", "namespaces")
    )


def test_tenants_roles_get_no_whatsappapps(production: list[dict[str, Any]]) -> None:
    """The chart aggregates nothing into the user-facing roles (edit, admin, view): creating a
    WhatsAppApp (a Meta app's secret, for every namespace it selects) is the platform's."""
    for doc in of_kind(production, "ClusterRole") + of_kind(production, "Role"):
        labels = doc["metadata"].get("labels", {})
        assert not any(k.startswith("rbac.authorization.k8s.io/aggregate-to") for k in labels)
        assert "aggregationRule" not in doc
        if doc["metadata"]["name"].endswith("-platform-admin"):
            continue  # the platform team's own role (userRoles, docs/tenancy.md)
        for _, resource, verb in rules_of(doc):
            if resource.startswith("whatsappapps"):
                assert verb in ("get", "list", "watch", "patch"), doc["metadata"]["name"]


@pytest.mark.parametrize(
    ("values", "workers_rule", "release_rule"),
    [
        pytest.param((), "config", None, id="workers namespace = release namespace"),
        pytest.param(("workersNamespace=w",), "pool only", "ops", id="a workers namespace"),
        pytest.param(
            ("workersNamespace=w", "watchNamespaces={ops,a}"),
            "pool only",
            None,
            id="release namespace watched",
        ),
    ],
)
def test_the_secrets_policy_admits_the_receivers_config(
    values: tuple[str, ...], workers_rule: str, release_rule: str | None
) -> None:
    docs = render(*ON, *values, api=(VAP,))
    rules = [v["expression"] for v in one(docs, "ValidatingAdmissionPolicy")["spec"]["validations"]]
    assert rules[0] == "request.operation != 'CREATE' || object.type == 'Opaque'"
    named = f"request.name == '{CONFIG_SECRET}'"
    assert (named in rules[1]) is (workers_rule == "config")
    assert "'whatsapp.operator.dev/pool' in oldObject.metadata.labels" in rules[1]
    # last: whatever the namespace, changes only to the Secrets it owns (its config is labelled
    # app.kubernetes.io/managed-by=whatsapp-operator: apps/receiver.py)
    assert "'app.kubernetes.io/managed-by' in oldObject.metadata.labels" in rules[-1]
    if release_rule is None:
        assert len(rules) == 3
    else:
        assert rules[2] == f"request.namespace != '{release_rule}' || {named}"
    # without the receiver: no exception for its config anywhere
    off = render(*values, api=(VAP,))
    text = str(one(off, "ValidatingAdmissionPolicy")["spec"])
    assert CONFIG_SECRET not in text


def test_ingress(enabled: list[dict[str, Any]]) -> None:
    assert of_kind(enabled, "Ingress") == []
    docs = render(
        *ON,
        "webhook.ingress.enabled=true",
        "webhook.ingress.className=nginx",
        "webhook.ingress.hosts={hooks.example.com,hooks2.example.com}",
        "webhook.ingress.tls[0].secretName=hooks-tls",
        "webhook.ingress.tls[0].hosts={hooks.example.com}",
        "webhook.ingress.annotations.cert-manager\\.io/cluster-issuer=letsencrypt",
    )
    ingress = one(docs, "Ingress", NAME)
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"secretName": "hooks-tls", "hosts": ["hooks.example.com"]}]
    assert [r["host"] for r in spec["rules"]] == ["hooks.example.com", "hooks2.example.com"]
    backend = {"service": {"name": NAME, "port": {"name": "http"}}}
    for rule in spec["rules"]:
        # the webhook routes only: probes and metrics are not published
        assert rule["http"]["paths"] == [
            {"path": "/webhooks", "pathType": "Prefix", "backend": backend},
            {"path": "/webhook", "pathType": "Exact", "backend": backend},
        ]
    assert "needs webhook.ingress.hosts" in render_fails(*ON, "webhook.ingress.enabled=true")


def test_hpa_replaces_the_replica_count_and_keeps_a_disruption_budget() -> None:
    docs = render(
        *ON,
        "webhook.hpa.enabled=true",
        "webhook.hpa.minReplicas=3",
        "webhook.hpa.maxReplicas=9",
        "webhook.hpa.targetCPUUtilizationPercentage=60",
    )
    assert "replicas" not in one(docs, "Deployment", NAME)["spec"]
    hpa = one(docs, "HorizontalPodAutoscaler", NAME)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": NAME}  # fmt: skip
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 9)
    target = hpa["spec"]["metrics"][0]["resource"]
    assert target == {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}
    assert one(docs, "PodDisruptionBudget", NAME)["spec"]["minAvailable"] == 1
    error = render_fails(*ON, "webhook.hpa.enabled=true", "webhook.hpa.minReplicas=5",
                         "webhook.hpa.maxReplicas=2")  # fmt: skip
    assert "minReplicas must not exceed" in error


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param((), {"minAvailable": 1}, id="default"),
        pytest.param(("webhook.pdb.minAvailable=50%",), {"minAvailable": "50%"}, id="percent"),
        pytest.param(("webhook.pdb.maxUnavailable=1",), {"maxUnavailable": 1}, id="max wins"),
        pytest.param(("webhook.replicas=1",), None, id="one replica: none"),
        pytest.param(("webhook.pdb.enabled=false",), None, id="off"),
        pytest.param(("podDisruptionBudget.enabled=false",), None, id="all PDBs off"),
    ],
)
def test_pdb(values: tuple[str, ...], expected: dict[str, Any] | None) -> None:
    docs = render(*ON, *values)
    pdbs = [d for d in of_kind(docs, "PodDisruptionBudget") if d["metadata"]["name"] == NAME]
    if expected is None:
        assert pdbs == []
        return
    [pdb] = pdbs
    selector = one(docs, "Deployment", NAME)["spec"]["selector"]
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"] == {**expected, "selector": selector}


GLOBAL_NP = ("networkPolicy.enabled=true", "networkPolicy.apiServer.cidrs={10.0.0.1/32}")


@pytest.mark.parametrize(
    ("values", "rendered"),
    [
        pytest.param((), True, id="default: on, following networkPolicy.enabled"),
        pytest.param(("networkPolicy.enabled=false",), False, id="off with networkPolicy"),
        pytest.param(GLOBAL_NP, True, id="follows networkPolicy.enabled"),
        pytest.param(
            ("networkPolicy.enabled=false", "webhook.networkPolicy.enabled=true"),
            True,
            id="on by itself",
        ),
        pytest.param((*GLOBAL_NP, "webhook.networkPolicy.enabled=false"), False, id="off alone"),
    ],
)
def test_network_policy_switch(values: tuple[str, ...], rendered: bool) -> None:
    docs = render(*ON, *values)
    names = [d["metadata"]["name"] for d in of_kind(docs, "NetworkPolicy")]
    assert (NAME in names) is rendered
    assert NAME not in [d["metadata"]["name"] for d in of_kind(render(*values), "NetworkPolicy")]


def test_network_policy_allows_webhooks_in_and_rabbitmq_out_only(
    production: list[dict[str, Any]],
) -> None:
    policy = one(production, "NetworkPolicy", NAME)["spec"]
    deployment = one(production, "Deployment", NAME)
    assert policy["podSelector"] == deployment["spec"]["selector"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    webhooks, metrics = policy["ingress"]
    assert webhooks["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert webhooks["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}},
        }
    ]
    assert metrics["ports"] == [{"protocol": "TCP", "port": 9090}]
    assert metrics["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    egress = [{(p["protocol"], p["port"]) for p in rule["ports"]} for rule in policy["egress"]]
    assert egress == [{("UDP", 53), ("TCP", 53)}, {("TCP", 5672)}]  # no API server, no Graph
    assert policy["egress"][1]["to"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "rabbitmq"
    }


def test_production_values_run_the_receiver_with_everything(
    production: list[dict[str, Any]],
) -> None:
    assert webhook_objects(production) == sorted(
        [
            ("Deployment", NAME),
            ("HorizontalPodAutoscaler", NAME),
            ("Ingress", NAME),
            ("NetworkPolicy", NAME),
            ("PodDisruptionBudget", NAME),
            ("Service", NAME),
            ("Service", f"{NAME}-metrics"),
            ("ServiceAccount", NAME),
            ("ServiceMonitor", NAME),
        ]
    )
    assert "--webhook-receiver" in operator_args(production)
    ingress = one(production, "Ingress", NAME)
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "4m"  # Meta: 3 MB
    assert ingress["spec"]["tls"][0]["secretName"] == "whatsapp-webhook-tls"
    monitor = one(production, "ServiceMonitor", NAME)
    selector = monitor["spec"]["selector"]["matchLabels"]
    matched = [
        s["metadata"]["name"]
        for s in of_kind(production, "Service")
        if selector.items() <= s["metadata"]["labels"].items()
    ]
    assert matched == [f"{NAME}-metrics"]  # not the webhooks' Service


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (("webhook.enabled=true",), "webhook.enabled needs amqp.existingSecret"),
        ((*ON, "webhook.replicass=3"), "replicass"),
        ((*ON, "webhook.logLevel=TRACE"), "logLevel"),
        ((*ON, "webhook.service.type=ExternalName"), "type"),
        ((*ON, "webhook.maxBodyBytes=100"), "maxBodyBytes"),
        ((*ON, "webhook.ingressShards=0"), "ingressShards"),
        ((*ON, "webhook.ingress.hosts={Bad_Host}"), "hosts"),
        ((*ON, "webhook.processor.mode=split"), "mode"),
        ((*ON, "webhook.processor.replicas=0"), "replicas"),
        ((*ON, "webhook.processor.replicass=3"), "replicass"),
    ],
)
def test_bad_webhook_values_fail_with_a_reason(values: tuple[str, ...], message: str) -> None:
    assert message in render_fails(*values)


# --- webhook.processor.mode: separate ---------------------------------------------------------


MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


def processor(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod spec, container) of the processor's Deployment (mode separate)."""
    spec = one(docs, "Deployment", PROCESSOR)["spec"]["template"]["spec"]
    [container] = spec["containers"]
    return spec, container


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def pod_labels(docs: list[dict[str, Any]], name: str) -> dict[str, str]:
    labels: dict[str, str] = one(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
    return labels


@pytest.fixture(scope="module")
def separate() -> list[dict[str, Any]]:
    if not os.access(HELM, os.X_OK):
        pytest.skip(f"helm not built ({HELM} missing): run hack/build-tools.sh (make tools)")
    return render(files=[SEPARATE])


def test_inline_mode_renders_no_processor_objects(enabled: list[dict[str, Any]]) -> None:
    monitored = render(*ON, "metrics.serviceMonitor.enabled=true")
    pod_monitored = render(*ON, "metrics.podMonitor.enabled=true")
    for docs in (enabled, monitored, pod_monitored):
        assert webhook_objects(docs, "webhook-processor") == []
        assert not any(PROCESSOR in d["metadata"]["name"] for d in docs)
    for docs in (enabled, render(*ON, "webhook.processor.mode=inline")):
        _, container = receiver(docs)
        assert not any(a.startswith("--run-processor") for a in container["args"])


def test_separate_mode_renders_the_processor_and_its_objects(
    separate: list[dict[str, Any]],
) -> None:
    assert webhook_objects(separate, "webhook-processor") == [
        ("Deployment", PROCESSOR),
        ("NetworkPolicy", PROCESSOR),
        ("PodDisruptionBudget", PROCESSOR),
        ("Service", f"{PROCESSOR}-metrics"),
        ("ServiceMonitor", PROCESSOR),
    ]
    # the receiver keeps all of its objects, its HPA scaling HTTP alone
    assert webhook_objects(separate) == [
        ("Deployment", NAME),
        ("HorizontalPodAutoscaler", NAME),
        ("NetworkPolicy", NAME),
        ("PodDisruptionBudget", NAME),
        ("Service", NAME),
        ("Service", f"{NAME}-metrics"),
        ("ServiceAccount", NAME),
        ("ServiceMonitor", NAME),
    ]
    target = one(separate, "HorizontalPodAutoscaler", NAME)["spec"]["scaleTargetRef"]
    assert target["name"] == NAME
    deployment = one(separate, "Deployment", PROCESSOR)
    assert deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["namespace"] == "ops"
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector["app.kubernetes.io/component"] == "webhook-processor"
    assert selects(selector, pod_labels(separate, PROCESSOR))
    assert not selects(selector, pod_labels(separate, NAME))
    receiver_selector = one(separate, "Deployment", NAME)["spec"]["selector"]["matchLabels"]
    assert not selects(receiver_selector, pod_labels(separate, PROCESSOR))


def test_separate_mode_turns_the_processor_off_in_the_receiver_only(
    separate: list[dict[str, Any]],
) -> None:
    """The two Deployments run the same arguments but --run-processor (and the processor, with
    no Service in front of it, no shutdown delay); `whatsapp-webhook` parses both."""
    from whatsapp_webhook import cli

    _, http = receiver(separate)
    _, proc = processor(separate)
    assert http["args"][-2:] == ["--shutdown-delay=5", "--run-processor=false"]
    assert proc["args"][-2:] == ["--shutdown-delay=0", "--run-processor=true"]
    assert http["args"][:-2] == proc["args"][:-2]
    with mock.patch.dict(os.environ, clear=True):
        http_settings = cli.load_settings(http["args"])
    with mock.patch.dict(os.environ, clear=True):
        proc_settings = cli.load_settings(proc["args"])
    assert (http_settings.run_processor, http_settings.shutdown_delay) == (False, 5.0)
    assert (proc_settings.run_processor, proc_settings.shutdown_delay) == (True, 0.0)
    assert proc_settings.ingress_shards == http_settings.ingress_shards == 4
    assert proc_settings.config == f"/etc/whatsapp-webhook/{CONFIG_KEY}"


def test_the_processor_shares_the_receivers_pod_and_has_no_api_token(
    separate: list[dict[str, Any]],
) -> None:
    http_spec, http = receiver(separate)
    spec, proc = processor(separate)
    assert spec["serviceAccountName"] == NAME  # the receiver's: no RBAC, no token
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert not any("projected" in v for v in spec["volumes"])
    assert spec["volumes"] == http_spec["volumes"]  # the operator's config Secret, /tmp
    assert spec["securityContext"] == http_spec["securityContext"]
    for key in ("image", "command", "env", "ports", "volumeMounts", "securityContext",
                "startupProbe", "livenessProbe", "readinessProbe"):  # fmt: skip
        assert proc[key] == http[key], key
    assert env_of(proc)["WHATSAPP_WEBHOOK_AMQP_URL"] == {
        "secretKeyRef": {"name": "whatsapp-rabbitmq", "key": "url"}
    }
    assert {p["name"]: p["containerPort"] for p in proc["ports"]} == {"http": 8080, "metrics": 9090}
    assert proc["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert proc["resources"] == {"requests": {"cpu": "1", "memory": "256Mi"},
                                 "limits": {"memory": "512Mi"}}  # fmt: skip
    assert http["resources"] != proc["resources"]
    [spread] = spec["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == (
        "webhook-processor"
    )
    assert "topologySpreadConstraints" not in http_spec


def test_the_webhooks_service_and_ingress_reach_only_the_http_pods() -> None:
    docs = render(*ON, "webhook.processor.mode=separate", "webhook.ingress.enabled=true",
                  "webhook.ingress.hosts={hooks.example.com}")  # fmt: skip
    http_pods, processor_pods = pod_labels(docs, NAME), pod_labels(docs, PROCESSOR)
    selector = one(docs, "Service", NAME)["spec"]["selector"]
    assert selects(selector, http_pods)
    assert not selects(selector, processor_pods)
    backends = {
        path["backend"]["service"]["name"]
        for rule in one(docs, "Ingress", NAME)["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {NAME}
    # the webhooks' NetworkPolicy (port 8080 from the ingress controller) is the receiver's only
    policy = one(docs, "NetworkPolicy", NAME)["spec"]["podSelector"]["matchLabels"]
    assert selects(policy, http_pods)
    assert not selects(policy, processor_pods)
    # no Service at all sends anything but metrics to the processor
    for service in of_kind(docs, "Service"):
        if selects(service["spec"]["selector"], processor_pods):
            assert service["metadata"]["name"] == f"{PROCESSOR}-metrics"
            assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]
            assert service["spec"]["type"] == "ClusterIP"


def test_the_processors_network_policy_lets_in_only_metrics(
    separate: list[dict[str, Any]],
) -> None:
    policy = one(separate, "NetworkPolicy", PROCESSOR)["spec"]
    assert policy["podSelector"] == one(separate, "Deployment", PROCESSOR)["spec"]["selector"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [
        {
            "ports": [{"protocol": "TCP", "port": 9090}],
            "from": [MONITORING],  # networkPolicy.metricsFrom of the values file
        }
    ]
    egress = [{(p["protocol"], p["port"]) for p in rule["ports"]} for rule in policy["egress"]]
    assert egress == [{("UDP", 53), ("TCP", 53)}, {("TCP", 5672)}]  # no API server, no Graph
    closed = render(*ON, "webhook.processor.mode=separate")  # no metricsFrom: nothing in
    assert one(closed, "NetworkPolicy", PROCESSOR)["spec"]["ingress"] == []
    for off in (("networkPolicy.enabled=false",), ("webhook.networkPolicy.enabled=false",)):
        docs = render(*ON, "webhook.processor.mode=separate", *off)
        assert PROCESSOR not in [d["metadata"]["name"] for d in of_kind(docs, "NetworkPolicy")]


@pytest.mark.parametrize(
    ("values", "rendered"),
    [
        pytest.param((), True, id="default: two replicas"),
        pytest.param(("webhook.processor.replicas=1",), False, id="one replica: none"),
        pytest.param(("webhook.replicas=1",), True, id="the receiver's count is its own"),
        pytest.param(("webhook.pdb.enabled=false",), False, id="off"),
        pytest.param(("podDisruptionBudget.enabled=false",), False, id="all PDBs off"),
    ],
)
def test_the_processors_disruption_budget(values: tuple[str, ...], rendered: bool) -> None:
    docs = render(*ON, "webhook.processor.mode=separate", *values)
    pdbs = [d for d in of_kind(docs, "PodDisruptionBudget") if d["metadata"]["name"] == PROCESSOR]
    if not rendered:
        assert pdbs == []
        return
    [pdb] = pdbs
    selector = one(docs, "Deployment", PROCESSOR)["spec"]["selector"]
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": selector}


def test_the_processor_is_scraped_by_its_own_monitors(separate: list[dict[str, Any]]) -> None:
    processor_pods = pod_labels(separate, PROCESSOR)
    for name in (NAME, PROCESSOR):
        monitor = one(separate, "ServiceMonitor", name)
        selector = monitor["spec"]["selector"]["matchLabels"]
        matched = [
            s for s in of_kind(separate, "Service") if selects(selector, s["metadata"]["labels"])
        ]
        assert [s["metadata"]["name"] for s in matched] == [f"{name}-metrics"]
        [service] = matched
        assert service["spec"]["ports"][0]["targetPort"] == "metrics"
        assert selects(service["spec"]["selector"], processor_pods) is (name == PROCESSOR)
    docs = render(*ON, "webhook.processor.mode=separate", "metrics.podMonitor.enabled=true",
                  "metrics.service.enabled=false")  # fmt: skip
    assert not any(d["metadata"]["name"] == f"{PROCESSOR}-metrics" for d in docs)
    monitor = one(docs, "PodMonitor", PROCESSOR)["spec"]
    assert selects(monitor["selector"]["matchLabels"], pod_labels(docs, PROCESSOR))
    assert not selects(monitor["selector"]["matchLabels"], pod_labels(docs, NAME))
    assert [e["port"] for e in monitor["podMetricsEndpoints"]] == ["metrics"]
