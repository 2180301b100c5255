"""Logging set-up, with a last line of defence against tokens in log lines.

The operator never formats a token into a message; the redaction (shared with the worker
and the receiver: whatsapp_contract/redaction.py) exists for everything else (a library
echoing a URL, an exception from deep inside a client). It redacts every known secret (the
tokens, app secrets and codes the operator has read: `REDACTOR.add`) wherever it stands in a
line, and anything shaped like a Meta user or system user token.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from kopf._core.engines import posting  # kopf's Event queue: no public hook

from whatsapp_contract.redaction import (
    MARK,
    REDACTOR,
    RedactingFilter,
    Redactor,
    install,
)

__all__ = ["MARK", "REDACTOR", "RedactingFilter", "Redactor", "install_redaction", "quiet_routine"]


class _RedactedEnqueue:
    """kopf's Event queue (`posting.enqueue`), with the message redacted: explicit
    `kopf.event`/`info`/`warn`/`exception` calls reach it without a log record."""

    def __init__(self, enqueue: Callable[..., None], redactor: Redactor) -> None:
        self.enqueue, self.redactor = enqueue, redactor

    def __call__(self, **kwargs: Any) -> None:
        kwargs["message"] = self.redactor.scrub(str(kwargs.get("message", "")))
        self.enqueue(**kwargs)


def install_redaction(redactor: Redactor = REDACTOR) -> None:
    """Redact every log record of the process (whatsapp_contract.redaction: the record
    factory, and a filter on every handler: the root's, and kopf's Event poster on
    `kopf.objects`) and every Event kopf posts, and quiet libraries that log URLs."""
    install(redactor)
    current = posting.enqueue
    if not (isinstance(current, _RedactedEnqueue) and current.redactor is redactor):
        posting.enqueue = _RedactedEnqueue(current, redactor)  # type: ignore[assignment]
    # These log URLs (debug_token carries a token in its query) or whole response bodies
    # (a Secret's data) at INFO/DEBUG: never let them.
    for noisy in ("httpx", "httpcore", "aiohttp.access", "kubernetes_asyncio", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# kopf's line for every handler and indexer that ran on a watch event: 40,000 lines while
# 10,000 tenants start, nothing anyone reads at INFO (still there at DEBUG).
_ROUTINE = re.compile(r"^(Handler|Indexer) '[^']+' succeeded\.$")


class RoutineFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.INFO and _ROUTINE.match(record.getMessage()))


def quiet_routine() -> None:
    """At INFO, drop kopf's per-event success lines (its object logger's records)."""
    logging.getLogger("kopf.objects").addFilter(RoutineFilter())
