"""The chart's `helm test` (templates/tests/operator-health.yaml): its hook objects, the
NetworkPolicies that let it through the operator's default-on policy, the listen-address check,
and its script run for real (sh and wget, against a local HTTP server standing in for the
operator's /healthz)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from test_chart_render import PRODUCTION, needs_helm, of_kind, one, render, render_fails

NAME = "rel-whatsapp-operator-operator-health-test"
OPERATOR = {
    "app.kubernetes.io/name": "whatsapp-operator",
    "app.kubernetes.io/instance": "rel",
    "app.kubernetes.io/component": "operator",
}
TEST_POD = {**OPERATOR, "app.kubernetes.io/component": "test"}


def hooks(*values: str, **kw: Any) -> list[dict[str, Any]]:
    docs = render(*values, tests=True, **kw)
    return [d for d in docs if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]


def weight(doc: dict[str, Any]) -> int:
    return int(doc["metadata"]["annotations"]["helm.sh/hook-weight"])


@needs_helm
def test_the_test_is_a_pod_reaching_the_health_port_through_a_service_of_its_own() -> None:
    docs = hooks()
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == [
        ("NetworkPolicy", NAME),
        ("NetworkPolicy", f"{NAME}-pod"),
        ("Pod", NAME),
        ("Service", NAME),
    ]
    service, pod = one(docs, "Service"), one(docs, "Pod")
    assert service["spec"]["selector"] == OPERATOR
    assert service["spec"]["ports"] == [
        {"name": "health", "port": 8080, "targetPort": "health", "protocol": "TCP"}
    ]
    assert pod["metadata"]["labels"].items() >= TEST_POD.items()
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["HEALTH_URL"] == f"http://{NAME}.ops.svc:8080/healthz"
    assert container["image"] == "busybox:1.37.0"
    # created first (Service, policies), the Pod last; all deleted once the test passed
    assert all(weight(d) < weight(pod) for d in docs if d is not pod)
    for doc in docs:
        policy = doc["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
        assert policy == "before-hook-creation,hook-succeeded"


@needs_helm
def test_the_operator_names_its_health_port_as_the_service_targets() -> None:
    (sts,) = of_kind(render(), "StatefulSet")
    ports = sts["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in ports


@needs_helm
def test_the_policies_open_the_health_port_to_the_test_pod_only() -> None:
    docs = hooks()
    policies = {d["metadata"]["name"]: d["spec"] for d in of_kind(docs, "NetworkPolicy")}
    into_operator = policies[NAME]
    assert into_operator["podSelector"] == {"matchLabels": OPERATOR}
    assert into_operator["policyTypes"] == ["Ingress"]
    assert into_operator["ingress"] == [
        {
            "ports": [{"protocol": "TCP", "port": 8080}],
            "from": [{"podSelector": {"matchLabels": TEST_POD}}],
        }
    ]
    pod = policies[f"{NAME}-pod"]
    assert pod["podSelector"] == {"matchLabels": TEST_POD}
    assert pod["ingress"] == []
    egress_ports = [
        sorted((p["protocol"], p["port"]) for p in rule["ports"]) for rule in pod["egress"]
    ]
    assert egress_ports == [[("TCP", 53), ("UDP", 53)], [("TCP", 8080)]]
    assert pod["egress"][1]["to"] == [{"podSelector": {"matchLabels": OPERATOR}}]


@needs_helm
def test_the_release_policies_do_not_select_the_test_pod(
) -> None:  # fmt: skip
    """The chart's own policies (operator, workers, receiver) leave the test Pod alone: its
    component label is `test`."""
    for policy in of_kind(render(files=[PRODUCTION]), "NetworkPolicy"):
        selected = policy["spec"]["podSelector"]["matchLabels"]
        assert not selected.items() <= TEST_POD.items(), policy["metadata"]["name"]


@needs_helm
def test_without_network_policies_the_test_brings_none() -> None:
    kinds = sorted(d["kind"] for d in hooks("networkPolicy.enabled=false"))
    assert kinds == ["Pod", "Service"]


@needs_helm
def test_the_test_can_be_turned_off_and_its_image_pinned() -> None:
    assert hooks("tests.enabled=false") == []
    digest = "sha256:" + "a" * 64
    pod = one(
        hooks("tests.image.repository=mirror.example/busybox", f"tests.image.digest={digest}"),
        "Pod",
    )
    assert pod["spec"]["containers"][0]["image"] == f"mirror.example/busybox@{digest}"


@needs_helm
def test_the_test_pod_is_restricted() -> None:
    spec = one(hooks(), "Pod")["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    (container,) = spec["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


@needs_helm
@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.53", "::1", "localhost"])
def test_a_loopback_listen_address_and_the_test_fail_with_a_reason(address: str) -> None:
    error = render_fails(f"metrics.listenAddress={address}")
    assert "loopback address" in error
    assert "tests.enabled: false" in error
    assert hooks(f"metrics.listenAddress={address}", "tests.enabled=false") == []


@needs_helm
@pytest.mark.parametrize("address", ["0.0.0.0", "::", "10.1.2.3"])  # noqa: S104 - values
def test_other_listen_addresses_render_the_test(address: str) -> None:
    assert one(hooks(f"metrics.listenAddress={address}"), "Pod")


# --- the script, run with sh and wget against a stand-in /healthz ---------------------------


class Health(http.server.BaseHTTPRequestHandler):
    status = 200
    body: dict[str, Any] = {}

    def do_GET(self) -> None:
        data = json.dumps(self.body).encode()  # kopf's json_response: ", " and ": "
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.HTTPServer]:
    httpd = http.server.HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def run_script(
    url: str, timeout: int = 3, fail_on_down: str = "true"
) -> subprocess.CompletedProcess[str]:
    (container,) = one(hooks(), "Pod")["spec"]["containers"]
    assert container["command"][:2] == ["sh", "-c"]
    env = {
        "PATH": os.environ["PATH"],
        "HEALTH_URL": url,
        "TIMEOUT_SECONDS": str(timeout),
        "FAIL_ON_DEPENDENCY_DOWN": fail_on_down,
    }
    return subprocess.run(
        ["sh", "-c", container["command"][2]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


needs_wget = pytest.mark.skipif(shutil.which("wget") is None, reason="wget not installed")
UP = {
    "postgresql": {"state": "up", "detail": "connected"},
    "graph": {"state": "unknown", "detail": "-"},
}
DOWN = {**UP, "rabbitmq": {"state": "down", "detail": "not consuming worker heartbeats"}}


@needs_helm
@needs_wget
def test_the_script_passes_on_a_healthy_answer(server: http.server.HTTPServer) -> None:
    Health.status, Health.body = 200, UP
    proc = run_script(f"http://127.0.0.1:{server.server_port}/healthz")
    assert proc.returncode == 0, proc.stderr
    assert '"postgresql"' in proc.stdout


@needs_helm
@needs_wget
@pytest.mark.parametrize(("status", "body", "why"), [
    (500, UP, "no 200"),
    (200, DOWN, "a dependency down"),
])  # fmt: skip
def test_the_script_fails_on_an_error_or_a_dependency_down(
    server: http.server.HTTPServer, status: int, body: dict[str, Any], why: str
) -> None:
    Health.status, Health.body = status, body
    proc = run_script(f"http://127.0.0.1:{server.server_port}/healthz", timeout=2)
    assert proc.returncode == 1
    assert why in proc.stderr


@needs_helm
@needs_wget
def test_the_script_may_ignore_a_dependency_down(server: http.server.HTTPServer) -> None:
    Health.status, Health.body = 200, DOWN
    proc = run_script(f"http://127.0.0.1:{server.server_port}/healthz", fail_on_down="false")
    assert proc.returncode == 0, proc.stderr


def free_port() -> int:
    """A local port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@needs_helm
@needs_wget
def test_the_script_fails_when_nothing_answers() -> None:
    proc = run_script(f"http://127.0.0.1:{free_port()}/healthz", timeout=2)
    assert proc.returncode == 1
    assert "no 200 from" in proc.stderr
