"""`whatsapp-worker`: a Celery worker process of one sender pool, hosting the sender service.

Flags override the `WHATSAPP_WORKER_*` environment (see `settings.py`); the RabbitMQ URL is
best given by environment, since it holds a password.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from whatsapp_contract.redaction import REDACTOR, url_password

from . import tracing
from .logs import setup_logging
from .settings import WorkerSettings

FLAGS = (
    "pool",
    "config_dir",
    "shards",
    "prefetch",
    "concurrency",
    "graph_base_url",
    "headroom",
    "max_attempts",
    "hold_window",
    "heartbeat_interval",
    "reload_interval",
    "metrics_host",
    "metrics_port",
    "worker_id",
    "log_format",
)


__all__ = ["main", "prepare", "setup_logging"]


def prepare(argv: Sequence[str] | None = None) -> tuple[WorkerSettings, str] | int:
    """The flags into the environment, the settings read, logging (text or JSON: `--log-format`
    or WHATSAPP_WORKER_LOG_FORMAT) and tracing (tracing.py) set up: (settings, log level), or
    the exit code when the settings are invalid."""
    parser = argparse.ArgumentParser(
        prog="whatsapp-worker", description="Send a pool's queued WhatsApp messages."
    )
    for name in FLAGS:
        parser.add_argument("--" + name.replace("_", "-"), dest=name)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    for name in FLAGS:
        value = getattr(args, name)
        if value is not None:
            os.environ["WHATSAPP_WORKER_" + name.upper()] = str(value)
    try:
        settings = WorkerSettings()
    except ValidationError as exc:
        print(f"whatsapp-worker: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level, settings.log_format)
    REDACTOR.add_all(url_password(settings.amqp_url.get_secret_value()))
    tracing.configure()  # only when OTEL_EXPORTER_OTLP_*ENDPOINT is set (tracing.py)
    return settings, str(args.log_level)


def main(argv: Sequence[str] | None = None) -> int:
    prepared = prepare(argv)
    if isinstance(prepared, int):
        return prepared
    settings, log_level = prepared
    from .celery_app import SERVICE_FAILED, create_app  # after the environment is final

    app = create_app(settings.amqp_url.get_secret_value(), settings.pool)
    app.worker_main(
        [
            *(["--quiet"] if settings.log_format == "json" else []),  # no banner on stdout
            "worker",
            "--pool=solo",
            f"--loglevel={log_level.upper()}",
            f"--hostname={settings.worker_id}@%h",
            "--without-gossip",
            "--without-mingle",
            "-Q",
            f"whatsapp.{settings.pool}.control",
        ]
    )
    return 1 if SERVICE_FAILED.is_set() else 0
