"""The Graph client's per-request observer (whatsapp_graph/observe.py): the outcome code of
every kind of answer, and its wiring to a Prometheus counter and histogram."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from whatsapp_graph import observe
from whatsapp_graph.client import GraphClient
from whatsapp_graph.errors import GraphError

TOKEN = "EAAGobserveTOKEN0123456789abcdefXYZ"


def envelope(code: int) -> dict[str, object]:
    return {"error": {"message": "m", "type": "OAuthException", "code": code, "fbtrace_id": "x"}}


@dataclass(frozen=True)
class Case:
    id: str
    answer: httpx.Response | Exception
    code: str


CASES = [
    Case("2xx answer", httpx.Response(200, json={"id": "1", "display_phone_number": "1"}), "ok"),
    Case("Meta's code on a 400", httpx.Response(400, json=envelope(190)), "190"),
    Case("throttle code on a 429", httpx.Response(429, json=envelope(130429)), "130429"),
    Case("Meta's envelope on a 200", httpx.Response(200, json=envelope(131056)), "131056"),
    Case("5xx without an envelope", httpx.Response(503, content=b"busy"), "http_503"),
    Case("404 without an envelope", httpx.Response(404, json={"nope": 1}), "http_404"),
    Case("2xx that is not JSON", httpx.Response(200, content=b"<html>"), "http_200"),
    Case("connection refused", httpx.ConnectError("refused"), "transport"),
    Case("read timeout", httpx.ReadTimeout("slow"), "transport"),
]


class Seen:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float]] = []

    def __call__(self, operation: str, code: str, seconds: float) -> None:
        self.calls.append((operation, code, seconds))


def client(answer: httpx.Response | Exception, observer: observe.Observer) -> GraphClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return GraphClient(http, base_url="https://graph.test", observer=observer, max_in_flight=2)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
async def test_each_request_is_observed_once_with_its_outcome_code(case: Case) -> None:
    seen = Seen()
    graph = client(case.answer, seen)
    try:
        await graph.phone_number(TOKEN, "1234")
    except GraphError:
        assert case.code != "ok"
    else:
        assert case.code == "ok"
    assert [(op, code) for op, code, _ in seen.calls] == [("phone_number", case.code)]
    assert 0.0 <= seen.calls[0][2] < 5.0


async def test_the_operation_is_the_name_the_client_gives_it() -> None:
    seen = Seen()
    graph = client(httpx.Response(200, json={"data": {"is_valid": True}}), seen)
    await graph.debug_token(TOKEN)
    await graph.send_message(TOKEN, "1234", {"to": "1", "type": "text"})
    assert [op for op, _, _ in seen.calls] == ["debug_token", "send_message"]


async def test_without_an_observer_nothing_is_called_and_errors_are_unchanged() -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    graph = GraphClient(http, base_url="https://graph.test")
    with pytest.raises(GraphError, match="phone_number: Graph API answered HTTP 503"):
        await graph.phone_number(TOKEN, "1234")


def test_the_request_counter_counts_by_operation_and_code_and_times_by_operation() -> None:
    registry = CollectorRegistry()
    counter = Counter(observe.REQUESTS, "h", ["operation", "code"], registry=registry)
    histogram = Histogram(
        observe.DURATION, "h", ["operation"], buckets=observe.LATENCY_BUCKETS, registry=registry
    )
    count = observe.RequestCounter(counter, histogram)
    count("send_message", "ok", 0.02)
    count("send_message", "ok", 0.03)
    count("send_message", "130429", 0.2)
    count("debug_token", "transport", 5.0)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    total = f"{observe.REQUESTS}_total"
    assert value(total, operation="send_message", code="ok") == 2
    assert value(total, operation="send_message", code="130429") == 1
    assert value(total, operation="debug_token", code="transport") == 1
    assert value(f"{observe.DURATION}_count", operation="send_message") == 3
    assert value(f"{observe.DURATION}_sum", operation="send_message") == pytest.approx(0.25)
    assert value(f"{observe.DURATION}_bucket", operation="debug_token", le="2.5") == 0
    assert value(f"{observe.DURATION}_bucket", operation="debug_token", le="5.0") == 1
    text = generate_latest(registry).decode()
    assert f"# TYPE {observe.REQUESTS}_total counter" in text
    assert f"# TYPE {observe.DURATION} histogram" in text
    assert TOKEN not in text


def test_the_operator_and_the_worker_count_into_the_same_families() -> None:
    from prometheus_client import REGISTRY

    from whatsapp_operator.runtime import metrics as operator_metrics
    from whatsapp_worker.metrics import WorkerMetrics

    worker = WorkerMetrics()
    total = f"{observe.REQUESTS}_total"
    labels = {"operation": "exchange_token", "code": "190"}
    before = REGISTRY.get_sample_value(total, labels) or 0.0
    operator_metrics.GRAPH_OBSERVER("exchange_token", "190", 0.5)
    worker.graph_observer("exchange_token", "190", 0.5)
    assert REGISTRY.get_sample_value(total, labels) == before + 1
    assert worker.registry.get_sample_value(total, labels) == 1
    for registry in (REGISTRY, worker.registry):
        text = generate_latest(registry).decode()
        assert f"# TYPE {observe.DURATION} histogram" in text
        assert f'{observe.DURATION}_bucket{{le="30.0",operation="exchange_token"}}' in text
