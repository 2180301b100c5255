"""The workers' status wait and customer-service-window check as chart values
(`workers.statusWait`, `workers.serviceWindowCheck`: charts/whatsapp-operator/templates/
workers.yaml, values.schema.json): rendered into every pool's Deployment with the worker's own
defaults (worker/whatsapp_worker/settings.py), and refused by the schema outside the range the
worker accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_chart_render import env_of, needs_helm, render, render_fails, worker_deployments


@needs_helm
@pytest.mark.parametrize(
    ("values", "wait", "check"),
    [
        ([], "20", "auto"),  # the worker's own defaults (worker/whatsapp_worker/settings.py)
        (["workers.statusWait=0", "workers.serviceWindowCheck=off"], "0", "off"),
        (["workers.statusWait=300", "workers.serviceWindowCheck=auto"], "300", "auto"),
    ],
)
def test_worker_status_wait_and_service_window_check(
    values: list[str], wait: str, check: str
) -> None:
    docs = render("workers.pools[0].name=default", "amqp.existingSecret=r", *values)
    (deployment,) = worker_deployments(docs)
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["WHATSAPP_WORKER_STATUS_WAIT"] == wait
    assert env["WHATSAPP_WORKER_SERVICE_WINDOW_CHECK"] == check


@needs_helm
@pytest.mark.parametrize(
    "value",
    ["workers.statusWait=-1", "workers.statusWait=301", "workers.serviceWindowCheck=on"],
)
def test_worker_settings_outside_the_workers_range_are_refused(value: str) -> None:
    name = value.split("=")[0].split(".")[1]
    assert name in render_fails(value, "workers.pools[0].name=default", "amqp.existingSecret=r")


@needs_helm
def test_a_fractional_status_wait_from_a_values_file(tmp_path: Path) -> None:
    """--set reads 7.5 as text (the schema wants a number): a values file keeps it a number."""
    values = tmp_path / "values.yaml"
    values.write_text(
        "watchNamespaces: [shop]\nworkers:\n  statusWait: 7.5\n  pools:\n    - name: default\n"
    )
    (deployment,) = worker_deployments(render("amqp.existingSecret=r", files=[values]))
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["WHATSAPP_WORKER_STATUS_WAIT"] == "7.5"
