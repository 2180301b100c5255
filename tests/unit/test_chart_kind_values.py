"""The kind development values (hack/kind/values.yaml, `make kind-deploy`) run the webhook
receiver: its Deployment and Service render under the name `make kind-deploy` gives the
simulator as Callback URL, the operator publishes its config (--webhook-receiver), and its
NetworkPolicy lets the simulator (graph-sim, which POSTs Meta's webhooks in kind) reach the
webhook port."""

from __future__ import annotations

from pathlib import Path

import yaml
from test_chart_render import CHART, helm, needs_helm, one

ROOT = Path(__file__).resolve().parents[2]
KIND_VALUES = ROOT / "hack" / "kind" / "values.yaml"
RECEIVER = "whatsapp-whatsapp-operator-webhook"  # release `whatsapp`, as `make kind-deploy`


@needs_helm
def test_kind_values_run_the_receiver_reachable_from_the_simulator() -> None:
    proc = helm("template", "whatsapp", str(CHART), "--namespace", "whatsapp-system",
                "-f", str(KIND_VALUES))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert one(docs, "Deployment", RECEIVER)["spec"]["replicas"] == 1
    assert one(docs, "Service", RECEIVER)["spec"]["ports"][0]["port"] == 80
    operator = one(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    assert "--webhook-receiver" in operator["args"]
    ingress = one(docs, "NetworkPolicy", RECEIVER)["spec"]["ingress"]
    webhook_port = [r for r in ingress if {"port": 8080, "protocol": "TCP"} in r["ports"]]
    assert [r.get("from") for r in webhook_port] == [
        [{"podSelector": {"matchLabels": {"app": "graph-sim"}}}]
    ]
    makefile = (ROOT / "Makefile").read_text()
    assert f"http://{RECEIVER}/webhooks/1111111111" in makefile  # the simulator's Callback URL
