"""The worker's log lines: text for people, or JSON (`--log-format json`) like the operator's:
one object per line with the operator's keys (`message`, `timestamp`, `severity`,
`exc_info`), the logger's name, and the fields a call passes as `extra=` (`FIELDS`: tenant id,
message id, shard, Meta's error code, where known).

Fields hold ids, reasons and codes only, never a token or a body; and every record is
redacted anyway (whatsapp_contract.redaction: the message, the traceback and the `extra=`
fields), tokens included as the config store registers them.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any, Literal

from whatsapp_contract.redaction import install as install_redaction

LogFormat = Literal["text", "plain", "json"]  # plain: text, the operator's and receiver's word
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# the fields the worker's calls pass as `extra=`
FIELDS = ("tenant_id", "message_id", "shard", "meta_code", "reason", "phone_number_id")
_SEVERITY = ((logging.DEBUG, "debug"), (logging.INFO, "info"), (logging.WARNING, "warn"),
             (logging.ERROR, "error"))  # fmt: skip


def severity(level: int) -> str:
    """The operator's (kopf's) severity words."""
    for ceiling, word in _SEVERITY:
        if level <= ceiling:
            return word
    return "fatal"


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra=` fields as top-level keys, None ones left out."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "message": record.getMessage(),
            "logger": record.name,
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "severity": severity(record.levelno),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                body[name] = value
        if record.exc_info:
            body["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:  # formatted (and redacted) when the record was made
            body["exc_info"] = record.exc_text
        return json.dumps(body, default=str, ensure_ascii=False)


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


class WorkerHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The worker's own handler on the root (told apart from others, pytest's say)."""


def setup_logging(level: str, log_format: str = "text", stream: IO[str] | None = None) -> None:
    """One handler on the root, to stderr (Celery leaves the root alone:
    worker_hijack_root_logger=False), and every record of the process redacted: the tenants'
    tokens are registered as the config store loads them, the broker's password once the
    settings are read. Celery's own loggers are covered too: the redaction is a log record
    factory. Called again, it replaces its handler."""
    handler = WorkerHandler(stream or sys.stderr)
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, WorkerHandler)]
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request is too much
    if log_format == "json":
        logging.captureWarnings(True)  # Python's warnings as JSON lines too (py.warnings)
    install_redaction()
