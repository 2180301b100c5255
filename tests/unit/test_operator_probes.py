"""The operator's dependency probes in /healthz (runtime/probes.py), which `kubectl whatsapp
check` reads, and the state they read: the Validator's last Graph call outcome."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest

from whatsapp_graph.client import GraphClient
from whatsapp_operator.meta.budget import RequestBudget
from whatsapp_operator.meta.validation import Validator
from whatsapp_operator.model.spec import TenantSpec
from whatsapp_operator.pools.convergence import PoolConvergence
from whatsapp_operator.runtime import probes

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def runtime(**parts: Any) -> SimpleNamespace:
    return SimpleNamespace(**{"rows": None, "convergence": None, "validator": None, **parts})


def rows(available: bool) -> SimpleNamespace:
    return SimpleNamespace(db=SimpleNamespace(available=available, writes=3))


def listener(connected: bool, summary: dict[str, PoolConvergence]) -> SimpleNamespace:
    return SimpleNamespace(connected=connected, summary=summary)


@pytest.mark.parametrize(
    ("probe", "rt", "expected"),
    [
        (probes.postgresql, None, ("unknown", "the operator is starting")),
        (probes.rabbitmq, None, ("unknown", "the operator is starting")),
        (probes.graph, None, ("unknown", "the operator is starting")),
        (probes.postgresql, runtime(), ("off", "no database URL: PostgreSQL sync off")),
        (probes.postgresql, runtime(rows=rows(True)), ("up", "connected (3 row writes)")),
        (
            probes.postgresql,
            runtime(rows=rows(False)),
            ("down", "the last connection attempt failed"),
        ),
        (probes.rabbitmq, runtime(), ("off", "no AMQP URL: worker heartbeats not read")),
        (
            probes.rabbitmq,
            runtime(convergence=listener(False, {})),
            ("down", "not consuming worker heartbeats"),
        ),
        (
            probes.rabbitmq,
            runtime(
                convergence=listener(True, {"b": PoolConvergence(2, 1), "a": PoolConvergence(1, 1)})
            ),
            ("up", "consuming worker heartbeats (a: 1/1 current, b: 1/2 current)"),
        ),
        (
            probes.rabbitmq,
            runtime(convergence=listener(True, {})),
            ("up", "consuming worker heartbeats (no live workers)"),
        ),
        (probes.graph, runtime(), ("unknown", "no Graph API call made yet")),
        (
            probes.graph,
            runtime(validator=SimpleNamespace(last_graph=("answered", NOW))),
            ("up", "last call answered at 2026-12-07T12:00:00Z"),
        ),
        (
            probes.graph,
            runtime(validator=SimpleNamespace(last_graph=("throttled", NOW))),
            ("throttled", "last call throttled at 2026-12-07T12:00:00Z"),
        ),
        (
            probes.graph,
            runtime(validator=SimpleNamespace(last_graph=("unavailable", NOW))),
            ("down", "last call unavailable at 2026-12-07T12:00:00Z"),
        ),
    ],
)
def test_probe(probe: Any, rt: Any, expected: tuple[str, str]) -> None:
    assert probe(rt) == {"state": expected[0], "detail": expected[1]}


async def test_probes_are_registered_with_kopf_and_read_the_memo() -> None:
    import kopf

    ids = {h.id for h in kopf.get_default_registry()._activities.get_all_handlers()}
    assert {"postgresql", "rabbitmq", "graph"} <= ids
    memo = SimpleNamespace(runtime=runtime(rows=rows(False)))
    assert (await cast(Any, probes.probe_postgresql)(memo=memo))["state"] == "down"
    starting = await cast(Any, probes.probe_graph)(memo=SimpleNamespace())
    assert starting == {"state": "unknown", "detail": "the operator is starting"}


def respond(status: int, body: dict[str, Any]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return handler


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


@pytest.mark.parametrize(
    ("handler", "seen"),
    [
        pytest.param(respond(200, {"data": {"is_valid": False}}), "answered", id="an answer"),
        pytest.param(
            respond(400, {"error": {"code": 190, "message": "expired", "type": "OAuthException"}}),
            "answered",
            id="a Graph error is an answer",
        ),
        pytest.param(
            respond(400, {"error": {"code": 4, "message": "too many", "type": "OAuthException"}}),
            "throttled",
            id="throttled",
        ),
        pytest.param(refuse, "unavailable", id="unreachable"),
    ],
)
async def test_the_validator_remembers_its_last_graph_call(handler: Any, seen: str) -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    graph = GraphClient(http, base_url="https://graph.test", version="v25.0")
    validator = Validator(graph, RequestBudget(1000, 1000), lambda: NOW)
    assert validator.last_graph is None
    spec = TenantSpec.model_validate(
        {"tenantId": "t_1", "wabaId": "1", "phoneNumberId": "2", "tokenSecretRef": {"name": "s"}}
    )
    await validator.check("EAAGtenantTOKEN0123456789", spec)
    assert validator.last_graph == (seen, NOW)
    await http.aclose()
