"""Every producer path of a send message carries the W3C `traceparent` when it traces (issue
20), on the SDK's in-memory exporter: the shared `producer.publish` (whatsapp-send, the
`Producer` API and `kubectl whatsapp send`) under its own `whatsapp.publish` span, and Celery's
`send_task` / `delay` through the `before_task_publish` hook. Off, nothing is added."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import pytest
from kombu import Producer as KombuProducer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from whatsapp_worker import producer, tracing
from whatsapp_worker.celery_app import create_app
from whatsapp_worker.delivery import TASK_NAME

MESSAGE = {
    "metadata": {"tenantId": "t_trace", "phoneNumberId": "2002", "messageId": "order-7"},
    "wabaPayload": {"to": "+34600000321", "type": "text", "text": {"body": "hi"}},
}


@dataclass
class Exchange:
    name: str


@dataclass
class FakeProducer:
    """What `producer.publish` uses of kombu's Producer."""

    exchange: Exchange = field(default_factory=lambda: Exchange("whatsapp.default"))
    published: list[dict[str, Any]] = field(default_factory=list)

    def publish(self, body: bytes, **kwargs: Any) -> None:
        self.published.append({"body": body, **kwargs})


def traceparent_of(span: Any) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def test_the_shared_publish_carries_its_span_as_traceparent(spans: InMemorySpanExporter) -> None:
    fake = FakeProducer()
    producer.publish(fake, MESSAGE, "order-7")
    (span,) = spans.get_finished_spans()
    assert span.name == tracing.PUBLISH
    assert span.kind is SpanKind.PRODUCER
    assert span.attributes is not None
    assert span.attributes["messaging.message.id"] == "order-7"
    assert span.attributes["messaging.destination.name"] == "whatsapp.default"
    (sent,) = fake.published
    assert sent["headers"][tracing.TRACEPARENT] == traceparent_of(span)
    assert tracing.ENQUEUED_AT in sent["headers"]
    # the rest of the publish, as every producer path makes it
    assert (sent["routing_key"], sent["message_id"], sent["delivery_mode"]) == (
        "2002", "order-7", 2,
    )  # fmt: skip
    assert sent["mandatory"] is True
    assert sent["content_type"] == "application/json"


def test_untraced_the_shared_publish_adds_no_header() -> None:
    tracing.install(None)
    fake = FakeProducer()
    producer.publish(fake, MESSAGE, "order-7")
    (sent,) = fake.published
    assert not sent["headers"]


def captured_task_headers(app: Any, pool: str) -> dict[str, Any]:
    with (
        mock.patch.object(KombuProducer, "publish") as publish,
        tracing.publish(f"whatsapp.{pool}", "order-7"),
    ):
        app.send_task(TASK_NAME, args=(MESSAGE,), kwargs={"pool": pool})
    headers: dict[str, Any] = publish.call_args.kwargs["headers"]
    return headers


def test_a_celery_send_task_carries_the_traceparent(spans: InMemorySpanExporter) -> None:
    app = create_app("memory://", "default")
    headers = captured_task_headers(app, "default")
    (span,) = spans.get_finished_spans()
    assert headers[tracing.TRACEPARENT] == traceparent_of(span)
    assert headers["task"] == TASK_NAME  # Celery's own headers are still there


def test_untraced_a_celery_send_task_has_no_traceparent() -> None:
    tracing.install(None)
    app = create_app("memory://", "default")
    headers = captured_task_headers(app, "default")
    assert tracing.TRACEPARENT not in headers
    assert headers["task"] == TASK_NAME


def test_whatsapp_send_traces_when_the_environment_asks(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`whatsapp-send --via task` turns tracing on (`tracing.configure`, here the in-memory
    provider in its place) and its task message carries the span of its publish."""
    provider = tracing._tracer  # the fixture's
    configured: list[str] = []

    def configure(service: str = "", env: Any = None) -> bool:
        configured.append(service)
        tracing._tracer = provider
        return True

    monkeypatch.setattr(tracing, "configure", configure)
    monkeypatch.setattr(producer, "declare_pool", lambda *a, **k: None)
    tracing.install(None)  # off until whatsapp-send configures it
    argv = ["--amqp-url", "memory://", "--via", "task", "--tenant-id", "t_trace",
            "--phone-number-id", "2002", "--to", "+34600000321", "--text", "hi"]  # fmt: skip
    with mock.patch.object(KombuProducer, "publish") as publish:
        assert producer.main(argv) == 0
    assert configured == ["whatsapp-send"]
    (span,) = spans.get_finished_spans()
    assert span.name == tracing.PUBLISH
    assert publish.call_args.kwargs["headers"][tracing.TRACEPARENT] == traceparent_of(span)
    assert tracing._tracer is None  # shut down again
