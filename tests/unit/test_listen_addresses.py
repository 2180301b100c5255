"""Where the health, metrics and webhook servers listen: loopback unless told (a flag, or the
environment), in all three programs; the chart passes 0.0.0.0 (metrics.listenAddress, its
test: test_chart_render.py) because the kubelet's probes reach the pod IP."""

from __future__ import annotations

import os
import socket
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest

from whatsapp_operator.cli import load_config
from whatsapp_webhook.cli import load_settings as load_webhook_settings
from whatsapp_webhook.metrics import WebhookMetrics
from whatsapp_worker.metrics import WorkerMetrics
from whatsapp_worker.settings import WorkerSettings

LOOPBACK = "127.0.0.1"
ANY = "0.0.0.0"  # noqa: S104 - a value to parse, bound by no test


@pytest.fixture(autouse=True)
def clean_environment() -> Iterator[None]:
    with mock.patch.dict(os.environ, clear=True):
        yield


def worker(argv: list[str]) -> Any:
    """WorkerSettings as `whatsapp-worker` makes them: its flags become the environment."""
    from whatsapp_worker import cli

    with mock.patch.object(cli, "WorkerSettings") as made:
        made.side_effect = RuntimeError("stop before Celery")
        with pytest.raises(RuntimeError, match="stop before Celery"):
            cli.main(argv)
    return WorkerSettings()


def operator(argv: list[str]) -> Any:
    return load_config(argv)


PROGRAMS: dict[str, Callable[[list[str]], Any]] = {
    "operator": operator,
    "worker": worker,
    "webhook": load_webhook_settings,
}


@pytest.mark.parametrize(
    ("program", "field"),
    [
        ("operator", "liveness_host"),
        ("operator", "metrics_host"),
        ("worker", "metrics_host"),
        ("webhook", "listen_host"),
        ("webhook", "metrics_host"),
    ],
)
def test_every_server_listens_on_loopback_unless_told(program: str, field: str) -> None:
    assert getattr(PROGRAMS[program]([]), field) == LOOPBACK


@pytest.mark.parametrize(
    ("program", "env", "argv", "field", "expected"),
    [
        ("operator", {}, ["--liveness-host", ANY], "liveness_host", ANY),
        ("operator", {}, ["--metrics-host", "::"], "metrics_host", "::"),
        ("operator", {"WHATSAPP_OPERATOR_METRICS_HOST": "10.0.0.7"}, [], "metrics_host",
         "10.0.0.7"),
        ("operator", {"WHATSAPP_OPERATOR_LIVENESS_HOST": "::"}, ["--liveness-host", ANY],
         "liveness_host", ANY),
        ("worker", {}, ["--metrics-host", ANY], "metrics_host", ANY),
        ("worker", {"WHATSAPP_WORKER_METRICS_HOST": "::1"}, [], "metrics_host", "::1"),
        ("webhook", {}, ["--listen-host", ANY], "listen_host", ANY),
        ("webhook", {}, ["--metrics-host", ANY], "metrics_host", ANY),
        ("webhook", {"WHATSAPP_WEBHOOK_METRICS_HOST": "::"}, [], "metrics_host", "::"),
    ],
)  # fmt: skip
def test_flags_and_environment_choose_the_address(
    program: str, env: dict[str, str], argv: list[str], field: str, expected: str
) -> None:
    os.environ.update(env)
    assert getattr(PROGRAMS[program](argv), field) == expected


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "http://127.0.0.1:8080/healthz"),
        (["--liveness-host", ANY], "http://0.0.0.0:8080/healthz"),
        (["--liveness-host", "::", "--liveness-port", "9000"], "http://[::]:9000/healthz"),
        (["--liveness-port", "0"], None),
    ],
)
def test_the_liveness_endpoint_kopf_serves(argv: list[str], expected: str | None) -> None:
    assert load_config(argv).liveness_endpoint() == expected


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def answers(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.mark.parametrize("metrics", [WorkerMetrics, WebhookMetrics], ids=["worker", "webhook"])
def test_a_metrics_server_on_loopback_is_not_reachable_on_another_address(
    metrics: Callable[[], Any],
) -> None:
    """Bound where it is told: on 127.0.0.1 it does not answer on 127.0.0.2 (another address
    of this host), which a server on all interfaces does."""
    port = free_port()
    server = metrics().serve(port, LOOPBACK)
    try:
        assert answers(LOOPBACK, port)
        assert not answers("127.0.0.2", port)
    finally:
        server.shutdown()
        server.server_close()
