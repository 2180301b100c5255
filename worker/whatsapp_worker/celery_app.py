"""The Celery app: the Python producers' task API and the worker process that hosts the sender.

Python producers call `send_message.delay(message)` (or `apply_async(..., kwargs={"pool":
...})`). The router sends that task message to the pool's consistent-hash exchange with the
message's phone number as routing key, so it lands in the same shard queue as the seed's plain
JSON for that number, and the shard's one consumer (the sender service, started inside the
Celery worker by `SenderStep`) sends both kinds under one per-number limit.

Why not Celery's own consumer for sending: Celery delivers a queue's messages to every worker
(competing consumers), so two replicas would each send for the same number and the per-number
and pair limits could only be kept with a shared limiter called on every message. Sharding by
number with one exclusive consumer per shard keeps them exact with local state. Celery still
provides the worker process (signals, warm shutdown, `celery inspect`), the task API and its
routing; its own consumer serves only the pool's control queue.

If a `send_message` task message ever reaches Celery's own consumer (a producer routed it by
hand), the task forwards it into the pool's exchange: nothing is lost, nothing bypasses the
limits.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

import uvloop
from celery import Celery, bootsteps, signals
from kombu import Exchange

from .delivery import TASK_NAME
from .metrics import WorkerMetrics
from .service import SenderService
from .settings import WorkerSettings
from .topology import HASH_EXCHANGE_TYPE, PoolTopology
from .tracing import producer_headers

log = logging.getLogger(__name__)

POOL_ENV = "WHATSAPP_WORKER_POOL"
AMQP_ENV = "WHATSAPP_WORKER_AMQP_URL"


def pool_exchange(pool: str) -> Exchange:
    return Exchange(PoolTopology(pool).exchange, type=HASH_EXCHANGE_TYPE, durable=True)


def route_task(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any
) -> dict[str, Any] | None:
    """Celery router: a send goes to its pool's exchange, keyed by its phone number."""
    if name != TASK_NAME:
        return None
    message = args[0] if args else (kwargs or {}).get("message")
    pool = (kwargs or {}).get("pool") or os.environ.get(POOL_ENV, "default")
    phone = ""
    if isinstance(message, Mapping) and isinstance(message.get("metadata"), Mapping):
        phone = str(message["metadata"].get("phoneNumberId", ""))
    # An unroutable message still goes to the pool: its worker dead-letters it with a reason.
    return {"exchange": pool_exchange(pool), "routing_key": phone or "-"}


@signals.before_task_publish.connect(weak=False)  # type: ignore[untyped-decorator]
def trace_task(sender: str | None = None, headers: dict[str, Any] | None = None, **_: Any) -> None:
    """A send task (`delay`, `apply_async`, `send_task`) published by a process that traces
    carries its `traceparent` in the AMQP headers, as the plain JSON path does (Celery's
    protocol 2 sends these headers as the message's): the worker reads it the same way."""
    if sender == TASK_NAME and headers is not None:
        headers.update(producer_headers() or {})


def create_app(broker_url: str | None = None, pool: str | None = None) -> Celery:
    app = Celery("whatsapp_worker")
    pool = pool or os.environ.get(POOL_ENV, "default")
    app.conf.update(
        broker_url=broker_url or os.environ.get(AMQP_ENV, "amqp://guest:guest@127.0.0.1//"),
        broker_connection_retry_on_startup=True,
        broker_transport_options={"confirm_publish": True},
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_default_delivery_mode="persistent",
        task_default_queue=PoolTopology(pool).control_queue,
        task_routes=(route_task,),
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    app.steps["worker"].add(SenderStep)

    @app.task(  # type: ignore[untyped-decorator]
        name=TASK_NAME, bind=True, acks_late=True, ignore_result=True, shared=False
    )
    def send_message(self: Any, message: dict[str, Any], pool: str | None = None) -> None:
        """Reached only when misrouted: forward into the pool's shards (see module doc)."""
        route = route_task(TASK_NAME, (message,), {"pool": pool}, {})
        assert route is not None
        with self.app.producer_or_acquire() as producer:
            producer.publish(
                message,
                serializer="json",
                exchange=route["exchange"],
                routing_key=route["routing_key"],
                declare=[route["exchange"]],
                delivery_mode=2,
                retry=True,
            )

    return app


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """The sender thread's loop: uvloop (libuv; the aiohttp and aio-pika paths run ~10 %
    cheaper on it, measured on the sending benchmark) unless asyncio's own is asked for."""
    if kind == "uvloop":
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


# Allocations (container objects) between two young-generation collections; CPython's default
# is 700, which at 1,000 msg/s ran a collection every message or two and, every so often, a
# full one over every object the worker's libraries create at start (73,000 after the imports
# alone): 120 us of GC per message, 12 % of the sender's CPU (timed with gc.callbacks on the
# sending benchmark).
GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Fewer, cheaper collections for the sender: what the imports and the start created is
    moved out of the collector's sight for good (gc.freeze: it lives as long as the process),
    and young collections run every GC_YOUNG_THRESHOLD allocations instead of 700. Garbage is
    still freed at once by reference counting; only reference cycles wait a little longer."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


class SenderStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Runs the sender service in a thread of the Celery worker process."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.service: SenderService | None = None
        self.failed = False

    def start(self, worker: Any) -> None:
        settings = WorkerSettings()
        metrics = WorkerMetrics()
        if settings.metrics_port:
            metrics.serve(settings.metrics_port, settings.metrics_host)
        started = threading.Event()

        def main() -> None:
            loop = new_event_loop(settings.event_loop)
            self.loop = loop
            self.service = SenderService(settings, metrics)
            started.set()
            try:
                loop.run_until_complete(self.service.run())
            except Exception:
                log.exception("the sender service failed; stopping the worker")
                self.failed = True
                SERVICE_FAILED.set()
                os.kill(os.getpid(), 15)
            finally:
                loop.close()

        tune_gc()
        self.thread = threading.Thread(target=main, name="whatsapp-sender", daemon=True)
        self.thread.start()
        started.wait(10)

    def stop(self, worker: Any) -> None:
        service, loop = self.service, self.loop
        if service is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(service.stop.set)
        if self.thread is not None:
            self.thread.join(service.settings.drain_timeout + 10 if service else 10)


SERVICE_FAILED = threading.Event()
app = create_app()
send_message = app.tasks[TASK_NAME]
