"""Log lines: a message plus named fields (`extra={"fields": {...}}`), as `key=value` pairs
(plain) or one JSON object per line (json). Fields never hold a secret, a body or a header
value: ids, reasons, codes and counts only.

Rejections come from the outside and can come in floods: `Throttle` lets a few lines per
reason through per window and says how many it held back.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from whatsapp_contract.redaction import REDACTOR
from whatsapp_contract.redaction import install as install_redaction


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            line += " " + " ".join(f"{k}={_plain(v)}" for k, v in fields.items())
        return line


def _plain(value: object) -> str:
    text = str(value)
    quote = not text or any(c in ' ="' or not c.isprintable() for c in text)
    return json.dumps(text) if quote else text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            body.update(fields)
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:  # formatted (and redacted) when the record was made
            body["exception"] = record.exc_text
        return json.dumps(body, default=str)


def setup_logging(level: str, log_format: str, secrets: Iterable[str] = ()) -> None:
    """One stderr handler on the root, and redaction of every record (`secrets` now, the
    apps' secrets and verify tokens as the config store loads them: whatsapp_contract.redaction)."""
    REDACTOR.add_all(secrets)
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("aiormq").setLevel(logging.WARNING)  # a line per reconnect attempt
    logging.getLogger("aio_pika").setLevel(logging.WARNING)
    install_redaction()


class Throttle:
    """At most `burst` lines per key every `window` seconds; the rest are counted and the
    count is reported with the next line that passes."""

    def __init__(
        self, burst: int = 10, window: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst, self.window, self._clock = burst, window, clock
        self._state: dict[str, tuple[float, int, int]] = {}  # key -> (start, lines, held)

    def allow(self, key: str) -> tuple[bool, int]:
        """(whether to log this line, how many lines of `key` were held back before it)."""
        now = self._clock()
        start, lines, held = self._state.get(key, (now, 0, 0))
        if now - start >= self.window:
            start, lines = now, 0
        if lines >= self.burst:
            self._state[key] = (start, lines, held + 1)
            return False, 0
        self._state[key] = (start, lines + 1, 0)
        return True, held
