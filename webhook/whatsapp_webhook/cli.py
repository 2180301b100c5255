"""`whatsapp-webhook`: the receiver of Meta's webhooks (HTTP side and processor, one process).

Flags override the `WHATSAPP_WEBHOOK_*` environment (see `settings.py`); the RabbitMQ URL is
best given by environment, since it holds a password.

Start: the metrics port, the config file (the receiver is not ready until one loaded), the
HTTP port (webhooks answer 503 until RabbitMQ is connected), then RabbitMQ (retried until it
answers; the topology declared) and the processor. SIGTERM (or SIGINT): /readyz turns 503,
after `shutdown_delay` the listening socket closes, requests in flight finish (each waits
for its confirms, up to `drain_timeout`), then the processor stops and the connection closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

from aiohttp import web
from prometheus_client import REGISTRY
from pydantic import ValidationError

from whatsapp_contract.redaction import url_password

from .broker import Broker
from .config import ConfigStore
from .ingress import Ingress
from .logs import setup_logging
from .metrics import WebhookMetrics
from .processor import Processor
from .settings import WebhookSettings

log = logging.getLogger("whatsapp_webhook")

FLAGS = (
    "config",
    "amqp_url",
    "listen_host",
    "listen_port",
    "metrics_host",
    "metrics_port",
    "max_body_bytes",
    "ingress_shards",
    "publish_timeout",
    "reload_interval",
    "shutdown_delay",
    "drain_timeout",
    "worker_name",
    "log_level",
    "log_format",
    "event_loop",
    "run_processor",
)


def load_settings(argv: Sequence[str] | None = None) -> WebhookSettings:
    parser = argparse.ArgumentParser(
        prog="whatsapp-webhook",
        description="Receive Meta's WhatsApp webhooks and hand them on over RabbitMQ. Every "
        "flag also reads WHATSAPP_WEBHOOK_<NAME> from the environment.",
    )
    for name in FLAGS:
        parser.add_argument("--" + name.replace("_", "-"), dest=name)
    args = parser.parse_args(argv)
    for name in FLAGS:
        value = getattr(args, name)
        if value is not None:
            os.environ["WHATSAPP_WEBHOOK_" + name.upper()] = str(value)
    return WebhookSettings()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load_settings(argv)
    except ValidationError as exc:  # without the values: the URL holds a password
        errors = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        print(f"whatsapp-webhook: invalid settings: {errors}", file=sys.stderr)
        return 2
    setup_logging(
        settings.log_level,
        settings.log_format,
        secrets=url_password(settings.amqp_url.get_secret_value()),
    )
    if settings.event_loop == "uvloop":
        import uvloop

        return uvloop.run(serve(settings))
    return asyncio.run(serve(settings))


async def connect(settings: WebhookSettings, stop: asyncio.Event) -> Broker | None:
    """RabbitMQ, tried until it answers (None when stopped first); the topology declared."""
    while not stop.is_set():
        broker: Broker | None = None
        try:
            broker = await Broker.connect(
                settings.amqp_url.get_secret_value(),
                name=f"whatsapp-webhook {settings.worker_name}",
                confirm_timeout=settings.publish_timeout,
            )
            await broker.declare(settings.ingress_shards)
            log.info("RabbitMQ connected; %d ingress shards declared", settings.ingress_shards)
            return broker
        except Exception as exc:  # the type only: a connection error may name the URL
            log.warning(
                "RabbitMQ not reachable (%s); retrying in %.0f s",
                type(exc).__name__,
                settings.connect_retry,
            )
            if broker is not None:
                with contextlib.suppress(Exception):
                    await broker.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.connect_retry)
    return None


async def serve(settings: WebhookSettings) -> int:
    metrics = WebhookMetrics(REGISTRY)  # with the processor's metrics: one page
    if settings.metrics_port:
        metrics.serve(settings.metrics_port, settings.metrics_host)
    store = ConfigStore(settings.config, metrics=metrics)
    await asyncio.to_thread(store.check)
    ingress = Ingress(
        store, metrics, shards=settings.ingress_shards, max_body_bytes=settings.max_body_bytes
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(
        ingress.application(), access_log=None, shutdown_timeout=settings.drain_timeout
    )
    await runner.setup()
    await web.TCPSite(runner, settings.listen_host, settings.listen_port, backlog=1024).start()
    log.info("listening on %s:%d", settings.listen_host, settings.listen_port)
    watcher = asyncio.create_task(store.watch(settings.reload_interval, stop))
    broker = await connect(settings, stop)
    processor: Processor | None = None
    try:
        if broker is not None:
            connected = broker  # for the gauge's callback
            metrics.broker_connected.set_function(lambda: 1.0 if connected.connected else 0.0)
            ingress.broker = broker
            if settings.run_processor:
                processor = Processor(
                    broker, shards=settings.ingress_shards, worker_name=settings.worker_name
                )
                await processor.start()
            log.info("ready")
        await stop.wait()
    finally:
        await shutdown(settings, ingress, runner, processor, broker)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    return 0


async def shutdown(
    settings: WebhookSettings,
    ingress: Ingress,
    runner: web.AppRunner,
    processor: Processor | None,
    broker: Broker | None,
) -> None:
    log.info("stopping: readiness off, draining requests in flight")
    ingress.stopping = True
    if settings.shutdown_delay:
        await asyncio.sleep(settings.shutdown_delay)
    await runner.cleanup()  # closes the socket, waits for handlers (their confirms)
    if processor is not None:
        await processor.stop()
    if broker is not None:
        await broker.close()
    log.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
