"""Logging set-up, with a last line of defence against tokens in log lines.

The operator never formats a token into a message; this filter exists for everything else
(a library echoing a URL, an exception from deep inside a client). It redacts every known
token (the ones the operator has read) and anything shaped like a Meta user or system user
token ("EAA" followed by a long run of base64url characters).
"""

from __future__ import annotations

import logging
import re
import threading

# Runs as short as the shortest secret `Redactor.add` accepts (8), or known ones slip through.
_CANDIDATE = re.compile(r"[A-Za-z0-9_\-.|]{8,}")
_MARK = "[REDACTED]"


class Redactor:
    def __init__(self, limit: int = 100_000) -> None:
        self._known: set[str] = set()
        self._limit = limit
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        if len(secret) < 8:
            return
        with self._lock:
            if len(self._known) >= self._limit:
                self._known.clear()  # the EAA rule still covers Meta tokens
            self._known.add(secret)

    def scrub(self, text: str) -> str:
        if len(text) < 8:
            return text
        known = self._known

        def replace(match: re.Match[str]) -> str:
            run = match.group(0)
            if run in known or (run.startswith("EAA") and len(run) >= 32):
                return _MARK
            return run

        return _CANDIDATE.sub(replace, text)


REDACTOR = Redactor()


class RedactingFilter(logging.Filter):
    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redactor.scrub(message)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redactor.scrub(
                logging.Formatter().formatException(record.exc_info)
            )
            record.exc_info = None
        if clean != message:
            record.msg, record.args = clean, ()
        return True


def install_redaction(redactor: Redactor = REDACTOR) -> None:
    """Attach the filter to every root handler, and quiet libraries that log URLs."""
    flt = RedactingFilter(redactor)
    for handler in logging.getLogger().handlers:
        handler.addFilter(flt)
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
