"""Optional OpenTelemetry tracing of a send, from the producer through the queue to Meta.

On (`wanted`): when the standard OTLP environment names an endpoint
(`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; the other `OTEL_*`
settings apply as usual: headers, protocol, sampler, `OTEL_SERVICE_NAME`...), unless
`OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. The packages are the optional extra
`whatsapp-operator[tracing]`, imported only then. Off, nothing is imported, and each hook
below is one test of a module variable returning a shared no-op context manager.

The trace: a producer puts the W3C `traceparent` (and `tracestate`) of its current span into
the AMQP message's headers (`Producer.send` does when the producing process uses
OpenTelemetry; `trace_headers()` for other publishers; any AMQP client may set the header
itself). Each delivery of that message gets, as children of that parent (or of a new trace
without one), the spans
- `whatsapp.queue_wait`: from the enqueue time (the header `x-whatsapp-enqueued-at`, unix
  seconds, set by `trace_headers`; else the AMQP timestamp) to its delivery to the worker;
- `whatsapp.limiter_wait`: waiting for the number's and the pair's limits (`pacing.Pacer`);
- `whatsapp.graph.send`: the POST to the Graph API, with Meta's error code when it refused.
Their attributes are ids, never a token or a body.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from aio_pika.abc import AbstractIncomingMessage

from whatsapp_contract.resolved import TenantConfig
from whatsapp_graph.errors import GraphApiError, GraphUnavailable

from .messages import OutboundMessage

if TYPE_CHECKING:  # the optional extra: never imported at run time unless tracing is on
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger(__name__)

TRACEPARENT, TRACESTATE = "traceparent", "tracestate"
ENQUEUED_AT = "x-whatsapp-enqueued-at"
QUEUE_WAIT, LIMITER_WAIT, GRAPH_SEND = (
    "whatsapp.queue_wait", "whatsapp.limiter_wait", "whatsapp.graph.send"
)  # fmt: skip
PUBLISH = "whatsapp.publish"  # the producer's span, when it traces with `configure`
EXTRA = "whatsapp-operator[tracing]"

_tracer: Tracer | None = None
_provider: TracerProvider | None = None  # configure's, flushed by `shutdown`
_NOTHING: contextlib.nullcontext[None] = contextlib.nullcontext()


def wanted(env: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces (module doc)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() in ("none", ""):
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    )


def protocol(env: Mapping[str, str]) -> str:
    """OTLP's transport: http/protobuf unless the environment says grpc."""
    value = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    return "grpc" if value.strip().lower() == "grpc" else "http/protobuf"


def configure(service: str = "whatsapp-worker", env: Mapping[str, str] | None = None) -> bool:
    """Turn tracing on when the environment asks (`wanted`): an SDK tracer provider with a
    batching OTLP exporter. False when off, or when the extra is not installed (said once)."""
    env = os.environ if env is None else env
    if not wanted(env):
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        if protocol(env) == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter,
            )
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        log.warning("tracing is configured but not installed (%s): install %s", exc.name, EXTRA)
        return False
    named = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": service}
    provider = TracerProvider(resource=Resource.create(named))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    install(provider)
    global _provider
    _provider = provider
    log.info("tracing on: OTLP (%s)", protocol(env))
    return True


def install(provider: TracerProvider | None) -> None:
    """Trace with this provider from now on (None: off again). `configure` calls it; tests
    give a provider with an in-memory exporter."""
    global _tracer
    _tracer = None if provider is None else provider.get_tracer("whatsapp_worker")


def shutdown() -> None:
    """Export the spans still batched (a short-lived producer calls it before exiting)."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None
    install(None)


def publish(exchange: str, message_id: str | None) -> contextlib.AbstractContextManager[Any]:
    """Around one publish of a send message by a producer that traces (`configure`, or
    `install`): a PRODUCER span, current while the message's headers are made, so that
    `producer_headers()` puts its `traceparent` in them. Off: nothing."""
    if _tracer is None:
        return _NOTHING
    return _publish(_tracer, exchange, message_id)


@contextlib.contextmanager
def _publish(tracer: Tracer, exchange: str, message_id: str | None) -> Iterator[Span]:
    from opentelemetry.trace import SpanKind

    attributes = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "send",
        "messaging.destination.name": exchange,
        "messaging.message.id": message_id or "",
    }
    with tracer.start_as_current_span(
        PUBLISH, kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        yield span


def delivery(
    message: AbstractIncomingMessage, shard: int
) -> contextlib.AbstractContextManager[Any]:
    """Around the handling of one delivery: its producer's trace context made current, and its
    queue wait recorded."""
    if _tracer is None:
        return _NOTHING
    return _delivery(_tracer, message, shard)


@contextlib.contextmanager
def _delivery(tracer: Tracer, message: AbstractIncomingMessage, shard: int) -> Iterator[None]:
    from opentelemetry import context, propagate

    headers = message.headers or {}
    carrier = {k: _text(headers[k]) for k in (TRACEPARENT, TRACESTATE) if k in headers}
    token = context.attach(propagate.extract(carrier))
    try:
        enqueued = enqueued_at(
            headers, message.timestamp.timestamp() if message.timestamp else None
        )
        if enqueued is not None:
            now = time.time_ns()
            span = tracer.start_span(
                QUEUE_WAIT,
                start_time=min(now, int(enqueued * 1e9)),
                attributes={
                    "messaging.system": "rabbitmq",
                    "messaging.operation.type": "receive",
                    "messaging.message.id": message.message_id or "",
                    "messaging.rabbitmq.destination.routing_key": message.routing_key or "",
                    "whatsapp.shard": shard,
                    "whatsapp.redelivered": bool(message.redelivered),
                },
            )
            span.end(end_time=now)
        yield
    finally:
        context.detach(token)


def enqueued_at(headers: Mapping[str, Any], amqp_timestamp: float | None) -> float | None:
    """When the message was enqueued (unix seconds): the producer's precise header, else the
    AMQP timestamp (whole seconds), else unknown. A producer may put anything there: only a
    finite, positive number counts."""
    value = headers.get(ENQUEUED_AT)
    try:
        enqueued = float(_text(value)) if value is not None else None
    except ValueError:
        enqueued = None
    if enqueued is None or not (math.isfinite(enqueued) and 0 < enqueued < 1e11):
        return amqp_timestamp
    return enqueued


def limiter_wait(
    message: OutboundMessage, tenant: TenantConfig
) -> contextlib.AbstractContextManager[Any]:
    """Around `Pacer.wait`; yields the span (None when off) for `note`."""
    if _tracer is None:
        return _NOTHING
    return _tracer.start_as_current_span(LIMITER_WAIT, attributes=_ids(message, tenant))


def graph_send(
    message: OutboundMessage, tenant: TenantConfig
) -> contextlib.AbstractContextManager[Any]:
    """Around the one POST to Meta: its error code, or whether a failed one may have reached
    Meta, recorded on the span."""
    if _tracer is None:
        return _NOTHING
    return _graph_send(_tracer, message, tenant)


@contextlib.contextmanager
def _graph_send(tracer: Tracer, message: OutboundMessage, tenant: TenantConfig) -> Iterator[Span]:
    from opentelemetry.trace import SpanKind

    attributes = {**_ids(message, tenant), "whatsapp.graph_api_version": tenant.graph_api_version}
    with tracer.start_as_current_span(
        GRAPH_SEND, kind=SpanKind.CLIENT, attributes=attributes
    ) as span:
        try:
            yield span
        except GraphApiError as exc:
            span.set_attribute("whatsapp.meta_code", exc.code)
            if exc.subcode is not None:
                span.set_attribute("whatsapp.meta_subcode", exc.subcode)
            raise
        except GraphUnavailable as exc:
            span.set_attribute("whatsapp.maybe_sent", exc.maybe_sent)
            raise


def note(span: Span | None, key: str, value: str | int | float | bool) -> None:
    """An attribute on a span the hooks yielded (nothing when tracing is off)."""
    if span is not None:
        span.set_attribute(key, value)


def _ids(message: OutboundMessage, tenant: TenantConfig) -> dict[str, str]:
    return {
        "whatsapp.tenant_id": tenant.tenant_id,
        "whatsapp.phone_number_id": tenant.phone_number_id,
        "whatsapp.message_id": message.message_id or "",
    }


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def trace_headers(headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """For a producer: AMQP headers with the current OpenTelemetry span's `traceparent` (and
    `tracestate`) and the enqueue time, when there is a current span; else as given. Imports
    OpenTelemetry's API (raises ImportError without it)."""
    from opentelemetry import propagate

    headers = {} if headers is None else headers
    propagate.inject(headers)
    if TRACEPARENT in headers:
        headers[ENQUEUED_AT] = f"{time.time():.6f}"
    return headers


def producer_headers() -> dict[str, Any] | None:
    """`trace_headers()` when the producing process already uses OpenTelemetry (its tracing
    API is imported), else None at no cost: the producer never imports it itself."""
    if "opentelemetry.trace" not in sys.modules:
        return None
    return trace_headers() or None
