"""The worker's optional OpenTelemetry tracing (issue 20), on the SDK's in-memory exporter: a
send through the real Sender (fake Meta, fake broker) makes the queue-wait, limiter-wait and
Graph-call spans as children of the producer's W3C `traceparent`; Meta's refusal is on the
Graph span; no token is in any span. Off (no OTLP endpoint), OpenTelemetry is not even
imported; on, spans reach an OTLP/HTTP endpoint. The producer side puts its span's context
into the AMQP headers."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from test_sender_holds import TOKEN, World, blocked
from test_sender_orphaned import Delivery

from whatsapp_worker import tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


class TracedWorld(World):
    """World whose deliveries carry the producer's traceparent, enqueued 0.25 s ago."""

    async def send(self, n: int = 1, *, mid: str = "m") -> None:
        original = Delivery.__init__

        def traced(delivery: Delivery, *args: Any, **kwargs: Any) -> None:
            original(delivery, *args, **kwargs)
            delivery.headers = {
                tracing.TRACEPARENT: TRACEPARENT.encode(),  # as an AMQP client may decode it
                tracing.ENQUEUED_AT: f"{time.time() - 0.25:.6f}",
            }
            delivery.routing_key = "2002"  # type: ignore[attr-defined]

        Delivery.__init__ = traced  # type: ignore[method-assign,assignment]
        try:
            await super().send(n, mid=mid)
        finally:
            Delivery.__init__ = original  # type: ignore[method-assign]


def by_name(found: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    named = {span.name: span for span in found}
    assert len(named) == len(found), [span.name for span in found]
    return named


async def test_a_send_makes_three_spans_under_the_producers_traceparent(
    spans: InMemorySpanExporter,
) -> None:
    world = TracedWorld()
    await world.send(mid="order")
    assert len(world.posts) == 1
    named = by_name(spans.get_finished_spans())
    assert set(named) == {tracing.QUEUE_WAIT, tracing.LIMITER_WAIT, tracing.GRAPH_SEND}
    for span in named.values():
        assert span.context is not None
        assert span.parent is not None
        assert f"{span.context.trace_id:032x}" == TRACE_ID
        assert f"{span.parent.span_id:016x}" == PARENT_ID
        assert span.parent.is_remote
    queue = named[tracing.QUEUE_WAIT]
    assert queue.start_time is not None
    assert queue.end_time is not None
    assert 0.2 <= (queue.end_time - queue.start_time) / 1e9 < 5
    assert queue.attributes is not None
    assert queue.attributes["whatsapp.shard"] == 0
    assert queue.attributes["messaging.message.id"] == "order-0"
    graph = named[tracing.GRAPH_SEND]
    assert graph.kind is SpanKind.CLIENT
    assert graph.attributes is not None
    assert graph.attributes["whatsapp.tenant_id"] == "acme"
    assert graph.attributes["whatsapp.message_id"] == "order-0"
    limiter = named[tracing.LIMITER_WAIT]
    assert limiter.attributes is not None
    assert limiter.attributes["whatsapp.parked"] is False
    assert TOKEN not in repr([s.to_json() for s in named.values()])


async def test_metas_refusal_is_recorded_on_the_graph_span(spans: InMemorySpanExporter) -> None:
    world = TracedWorld(answer=lambda request: blocked(131048))
    await world.send()
    graph = by_name(spans.get_finished_spans())[tracing.GRAPH_SEND]
    assert graph.status.status_code is StatusCode.ERROR
    assert graph.attributes is not None
    assert graph.attributes["whatsapp.meta_code"] == 131048
    assert [event.name for event in graph.events] == ["exception"]


async def test_without_a_traceparent_the_worker_starts_the_trace(
    spans: InMemorySpanExporter,
) -> None:
    await World().send()  # no headers, no AMQP timestamp: no queue wait to measure
    named = by_name(spans.get_finished_spans())
    assert set(named) == {tracing.LIMITER_WAIT, tracing.GRAPH_SEND}
    assert all(span.parent is None for span in named.values())


async def test_off_no_span_is_made(spans: InMemorySpanExporter) -> None:
    tracing.install(None)
    await TracedWorld().send()
    assert spans.get_finished_spans() == ()


@pytest.mark.parametrize(
    ("env", "wanted", "protocol"),
    [
        pytest.param({}, False, "http/protobuf", id="nothing set: off"),
        pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True, "http/protobuf",
                     id="endpoint: on"),
        pytest.param({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True,
                     "http/protobuf", id="traces endpoint: on"),
        pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False, "http/protobuf",
                     id="blank endpoint: off"),
        pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"},
                     False, "http/protobuf", id="SDK disabled: off"),
        pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                      "OTEL_TRACES_EXPORTER": "none"}, False, "http/protobuf",
                     id="traces exporter none: off"),
        pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
                      "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, True, "grpc", id="grpc"),
        pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
                      "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                      "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, True,
                     "http/protobuf", id="the traces protocol wins"),
    ],
)  # fmt: skip
def test_the_environment_decides(env: dict[str, str], wanted: bool, protocol: str) -> None:
    assert tracing.wanted(env) is wanted
    assert tracing.protocol(env) == protocol


def run_python(code: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_off_opentelemetry_is_not_imported() -> None:
    """Neither the worker's send path nor its producer imports OpenTelemetry untraced."""
    out = run_python(
        "import sys; from whatsapp_worker import sender, producer, tracing, cli\n"
        "assert tracing.configure() is False\n"
        "assert producer.producer_headers() is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    assert out == "[]"


class Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that keeps what it is sent."""

    received: list[tuple[str, str, int]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.rfile.read(length)
        Collector.received.append((self.path, self.headers["Content-Type"], length))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_on_spans_are_exported_by_otlp_http() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = run_python(
            "from opentelemetry import trace\n"
            "from whatsapp_worker import tracing\n"
            "assert tracing.configure()\n"
            "with tracing._tracer.start_as_current_span('probe'):\n"
            "    pass\n"
            "trace.get_tracer_provider().force_flush()\n"
            "print(trace.get_tracer_provider().resource.attributes['service.name'])",
            {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}"},
        )
    finally:
        server.shutdown()
        server.server_close()
    assert out == "whatsapp-worker"
    assert [(path, kind) for path, kind, _ in Collector.received] == [
        ("/v1/traces", "application/x-protobuf")
    ]


def test_the_producer_carries_its_current_span_in_the_headers() -> None:
    provider = TracerProvider()
    with provider.get_tracer("producer").start_as_current_span("publish") as span:
        headers = tracing.producer_headers()
    assert headers is not None
    context = span.get_span_context()
    assert headers[tracing.TRACEPARENT] == (
        f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
    )
    assert abs(float(headers[tracing.ENQUEUED_AT]) - time.time()) < 5
    assert tracing.trace_headers({"x": 1}) == {"x": 1}  # no current span: nothing added
    assert trace.get_current_span().get_span_context().is_valid is False


@pytest.mark.parametrize(
    ("header", "amqp", "expected"),
    [
        pytest.param(None, None, None, id="neither: no queue wait"),
        pytest.param(None, 1_700_000_000.0, 1_700_000_000.0, id="the AMQP timestamp"),
        pytest.param("1700000000.25", 1_700_000_000.0, 1_700_000_000.25, id="the header wins"),
        pytest.param(b"1700000000.5", None, 1_700_000_000.5, id="bytes, as AMQP may give it"),
        pytest.param("soon", 1_700_000_000.0, 1_700_000_000.0, id="not a number: the AMQP one"),
        pytest.param("nan", None, None, id="nan: ignored"),
        pytest.param("inf", 5.0, 5.0, id="inf: ignored"),
        pytest.param("-3", None, None, id="negative: ignored"),
        pytest.param("1e300", None, None, id="far future: ignored"),
    ],
)
def test_the_enqueue_time(header: object, amqp: float | None, expected: float | None) -> None:
    headers = {} if header is None else {tracing.ENQUEUED_AT: header}
    assert tracing.enqueued_at(headers, amqp) == expected


async def test_a_garbage_header_never_stops_a_send(spans: InMemorySpanExporter) -> None:
    original = Delivery.__init__

    def garbage(delivery: Delivery, *args: Any, **kwargs: Any) -> None:
        original(delivery, *args, **kwargs)
        delivery.headers = {tracing.TRACEPARENT: "00-zz-nonsense", tracing.ENQUEUED_AT: "nan"}

    Delivery.__init__ = garbage  # type: ignore[method-assign,assignment]
    try:
        world = World()
        await world.send()
    finally:
        Delivery.__init__ = original  # type: ignore[method-assign]
    assert len(world.posts) == 1
    assert [event["status"] for event in world.events()] == ["accepted"]
    named = by_name(spans.get_finished_spans())
    assert set(named) == {tracing.LIMITER_WAIT, tracing.GRAPH_SEND}  # a new trace
    assert all(span.parent is None for span in named.values())
