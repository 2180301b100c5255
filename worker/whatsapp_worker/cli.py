"""`whatsapp-worker`: a Celery worker process of one sender pool, hosting the sender service.

Flags override the `WHATSAPP_WORKER_*` environment (see `settings.py`); the RabbitMQ URL is
best given by environment, since it holds a password.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from whatsapp_contract.redaction import REDACTOR, url_password
from whatsapp_contract.redaction import install as install_redaction

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
)


def setup_logging(level: str) -> None:
    """stderr, and every record of the process redacted (whatsapp_contract.redaction): the
    tenants' tokens are registered as the config store loads them, the broker's password once
    the settings are read. Celery's own loggers and handlers are covered too: the redaction
    is a log record factory."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request is too much
    install_redaction()


def main(argv: Sequence[str] | None = None) -> int:
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
    setup_logging(args.log_level)
    try:
        settings = WorkerSettings()
    except ValidationError as exc:
        print(f"whatsapp-worker: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    REDACTOR.add_all(url_password(settings.amqp_url.get_secret_value()))
    from .celery_app import SERVICE_FAILED, create_app  # after the environment is final

    app = create_app(settings.amqp_url.get_secret_value(), settings.pool)
    app.worker_main(
        [
            "worker",
            "--pool=solo",
            f"--loglevel={args.log_level.upper()}",
            f"--hostname={settings.worker_id}@%h",
            "--without-gossip",
            "--without-mingle",
            "-Q",
            f"whatsapp.{settings.pool}.control",
        ]
    )
    return 1 if SERVICE_FAILED.is_set() else 0
