"""Webhooks in the simulator's world: the knobs (`WebhookConfig`), one POST to one app
(`Delivery`) and the delivery log (`WebhookBook`). Pure data and bookkeeping, no I/O:
`webhook_delivery.py` does the POSTs, `webhooks.py` decides what to send.

Meta's behaviour behind the knobs (docs/simulator.md, "Webhooks", cites each page):
- statuses `sent`, `delivered`, `read`, `failed` for every accepted send
  (https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status);
- a POST answered with anything but 200, or not delivered at all, is retried with
  decreasing frequency for up to 7 days, and retries can duplicate notifications
  (https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/overview).
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

SEVEN_DAYS = 7 * 86400.0
NOTICE = "notice"
STATUS = "status"
MESSAGE = "message"


@dataclass
class WebhookConfig:
    """How the simulated Meta sends webhooks. Times in milliseconds unless named seconds."""

    read_ratio: float = 0.0  # share of delivered messages that are also read
    failure_ratio: float = 0.0  # share of accepted sends that fail afterwards (async)
    failure_code: int = 131026  # the code of those failures (131026, 131047, 131049, ...)
    failed_after_sent: bool = False  # a failed send gets `sent` before `failed`
    duplicate_ratio: float = 0.0  # share of status POSTs sent twice (separate deliveries)
    reorder_ratio: float = 0.0  # share of messages whose first two statuses swap places
    sent_delay_ms: float = 100.0  # acceptance -> `sent`
    delivered_delay_ms: float = 200.0  # `sent` -> `delivered` (or `failed`)
    read_delay_ms: float = 1000.0  # `delivered` -> `read`
    duplicate_delay_ms: float = 200.0  # a status -> its duplicate
    include_conversation: bool = False  # v23.0 and older webhooks carry `conversation`
    include_pricing: bool = True
    template_category: str = "marketing"  # pricing category of template sends
    # Non-template sends to a user with no inbound message in 24 h fail with 131047
    # (accepted by the API, then a `failed` status), as Meta does
    service_window: bool = False
    retry_base_ms: float = 1000.0  # first retry after this, doubling each time ...
    retry_max_ms: float = 3_600_000.0  # ... up to this
    max_age_seconds: float = SEVEN_DAYS  # Meta retries for up to 7 days; then gives up
    max_attempts: int = 0  # 0 = until max_age_seconds
    timeout_seconds: float = 20.0  # per POST
    concurrency: int = 16  # POSTs in flight at once
    log_limit: int = 100_000  # deliveries kept in the log (finished ones dropped first)
    seed: int | None = None  # RNG seed for the ratios (None: random)

    def describe(self) -> dict[str, Any]:
        return asdict(self)


RATIOS = ("read_ratio", "failure_ratio", "duplicate_ratio", "reorder_ratio")


def apply_webhook_config(config: WebhookConfig, data: Mapping[str, Any]) -> WebhookConfig:
    """Set the given knobs (names as in `WebhookConfig`); unknown names are an error."""
    known = {f.name: f for f in fields(config)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown webhook settings: {', '.join(unknown)}")
    for name, value in data.items():
        current = getattr(config, name)
        if name == "seed":
            setattr(config, name, None if value in (None, "", "none") else int(value))
        elif isinstance(current, bool):
            setattr(config, name, _as_bool(value))
        elif isinstance(current, int):
            setattr(config, name, int(value))
        elif isinstance(current, float):
            setattr(config, name, float(value))
        else:
            setattr(config, name, str(value))
    for name in RATIOS:
        if not 0.0 <= getattr(config, name) <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")
    if config.concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    return config


def _as_bool(value: Any) -> bool:
    """A boolean setting from JSON, YAML or a command line ("true", "0", "no", ...)."""
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise ValueError(f"not a boolean: {value!r}")
        return lowered in ("true", "1", "yes", "on")
    return bool(value)


@dataclass
class Delivery:
    """One webhook POST to one app, retried until answered 200 or given up.

    `body` is the exact bytes sent every time (signed per attempt with the app's secret).
    Times: `created_at` on the simulator's clock; attempt times are wall-clock seconds.
    """

    id: int
    app_id: str
    field: str
    kind: str  # status | message | notice
    body: bytes
    payload: dict[str, Any]
    waba_id: str = ""
    phone_number_id: str = ""
    wamid: str = ""
    status: str = ""  # the status's `status`, or the notice's `event` when it has one
    duplicate: bool = False
    created_at: float = 0.0
    due_in: float = 0.0  # seconds after creation of the first attempt
    url: str = ""
    attempts: int = 0
    answers: list[int | None] = dataclasses.field(
        default_factory=list
    )  # per attempt: HTTP status or None
    last_code: int | None = None
    last_error: str = ""
    delivered: bool = False
    gave_up: bool = False
    cancelled: bool = False
    first_attempt_at: float | None = None
    last_attempt_at: float | None = None

    @property
    def pending(self) -> bool:
        return not (self.delivered or self.gave_up or self.cancelled)

    def describe(self, *, payload: bool = False) -> dict[str, Any]:
        out = {
            "id": self.id,
            "app_id": self.app_id,
            "field": self.field,
            "kind": self.kind,
            "waba_id": self.waba_id,
            "phone_number_id": self.phone_number_id,
            "wamid": self.wamid,
            "status": self.status,
            "duplicate": self.duplicate,
            "url": self.url,
            "attempts": self.attempts,
            "answers": list(self.answers),
            "last_code": self.last_code,
            "last_error": self.last_error,
            "delivered": self.delivered,
            "gave_up": self.gave_up,
            "pending": self.pending,
            "created_at": self.created_at,
            "first_attempt_at": self.first_attempt_at,
            "last_attempt_at": self.last_attempt_at,
        }
        if payload:
            out["payload"] = self.payload
        return out


class WebhookBook:
    """The delivery log, the counters, the customers' last messages (service window)."""

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self._ids = itertools.count(1)
        self.deliveries: dict[int, Delivery] = {}
        self.counts: Counter[str] = Counter()
        self.inbound_seen: dict[tuple[str, str], float] = {}

    def reseed(self) -> None:
        self.rng = random.Random(self.config.seed)

    def add(self, delivery: Delivery) -> Delivery:
        self.deliveries[delivery.id] = delivery
        self.counts["total"] += 1
        self.counts[f"field:{delivery.field}"] += 1
        if delivery.duplicate:
            self.counts["duplicates"] += 1
        self._trim()
        return delivery

    def next_id(self) -> int:
        return next(self._ids)

    def _trim(self) -> None:
        """Over `log_limit`, drop the oldest finished deliveries down to 90% of it (in one
        go, so that the cost is spread over many additions)."""
        limit = self.config.log_limit
        if not limit or len(self.deliveries) <= limit:
            return
        excess = len(self.deliveries) - (limit - limit // 10)
        done = [i for i, d in self.deliveries.items() if not d.pending][:excess]
        for i in done:
            del self.deliveries[i]

    def cancel_all(self) -> None:
        for delivery in self.deliveries.values():
            if delivery.pending:
                delivery.cancelled = True

    def record_attempt(self, delivery: Delivery, code: int | None, error: str) -> None:
        self.counts["attempts"] += 1
        if code != 200:
            self.counts["failed_attempts"] += 1
        delivery.answers.append(code)
        delivery.last_code, delivery.last_error = code, error

    def finish(self, delivery: Delivery, *, delivered: bool) -> None:
        if delivered:
            delivery.delivered = True
            self.counts["delivered"] += 1
            if delivery.kind == STATUS:
                self.counts[f"status:{delivery.status}"] += 1
        else:
            delivery.gave_up = True
            self.counts["gave_up"] += 1

    def summary(self) -> dict[str, Any]:
        c = self.counts
        return {
            "total": c["total"],
            "delivered": c["delivered"],
            "pending": sum(1 for d in self.deliveries.values() if d.pending),
            "gave_up": c["gave_up"],
            "attempts": c["attempts"],
            "failed_attempts": c["failed_attempts"],
            "duplicates": c["duplicates"],
            "by_field": _prefixed(c, "field:"),
            "delivered_by_status": _prefixed(c, "status:"),
        }


def _prefixed(counts: Counter[str], prefix: str) -> dict[str, int]:
    return {k[len(prefix) :]: n for k, n in counts.items() if k.startswith(prefix)}
