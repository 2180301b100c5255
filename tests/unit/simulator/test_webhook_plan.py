"""The simulator's pure webhook decisions: which statuses a send gets, retries, settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from whatsapp_simulator.webhook_model import WebhookConfig, apply_webhook_config
from whatsapp_simulator.webhook_plan import (
    PlannedStatus,
    carries_pricing,
    plan_statuses,
    pricing_category,
    retry_delay,
    window_failure,
)


def draws(*values: float) -> Callable[[], float]:
    """An RNG that returns `values` in order, then 0.99 (above every ratio below 1)."""
    stream: Iterator[float] = iter(values)
    return lambda: next(stream, 0.99)


def config(**knobs: object) -> WebhookConfig:
    base: dict[str, object] = {
        "sent_delay_ms": 100,
        "delivered_delay_ms": 200,
        "read_delay_ms": 1000,
        "duplicate_delay_ms": 50,
    }
    return apply_webhook_config(WebhookConfig(), {**base, **knobs})


def shown(plan: list[PlannedStatus]) -> list[tuple[str, float, int | None, bool]]:
    return [(p.status, round(p.delay, 3), p.error_code, p.duplicate) for p in plan]


# draws: failure, read, reorder, then one per planned status for duplicates
PLANS = [
    ("sent then delivered", {}, (), None,
     [("sent", 0.1, None, False), ("delivered", 0.3, None, False)]),
    ("read when the draw is under read_ratio", {"read_ratio": 0.5}, (0.9, 0.4), None,
     [("sent", 0.1, None, False), ("delivered", 0.3, None, False), ("read", 1.3, None, False)]),
    ("no read above read_ratio", {"read_ratio": 0.5}, (0.9, 0.6), None,
     [("sent", 0.1, None, False), ("delivered", 0.3, None, False)]),
    ("async failure: failed only", {"failure_ratio": 0.5, "failure_code": 131026}, (0.1,), None,
     [("failed", 0.3, 131026, False)]),
    ("async failure after sent", {"failure_ratio": 1, "failed_after_sent": True}, (0.1,), None,
     [("sent", 0.1, None, False), ("failed", 0.3, 131026, False)]),
    ("a failed send is never read", {"failure_ratio": 1, "read_ratio": 1}, (0.1, 0.0), None,
     [("failed", 0.3, 131026, False)]),
    ("forced failure (service window)", {}, (), 131047,
     [("failed", 0.3, 131047, False)]),
    ("reorder swaps the first two", {"reorder_ratio": 0.5}, (0.9, 0.9, 0.2), None,
     [("delivered", 0.1, None, False), ("sent", 0.3, None, False)]),
    ("duplicates follow their original", {"duplicate_ratio": 0.5}, (0.9, 0.9, 0.9, 0.1, 0.9),
     None,
     [("sent", 0.1, None, False), ("sent", 0.15, None, True), ("delivered", 0.3, None, False)]),
    ("every status duplicated", {"duplicate_ratio": 1.0}, (0.9, 0.9, 0.9, 0.0, 0.0), None,
     [("sent", 0.1, None, False), ("sent", 0.15, None, True),
      ("delivered", 0.3, None, False), ("delivered", 0.35, None, True)]),
]  # fmt: skip


@pytest.mark.parametrize(("knobs", "values", "forced", "want"), [p[1:] for p in PLANS],
                         ids=[p[0] for p in PLANS])  # fmt: skip
def test_plan_statuses(
    knobs: dict[str, object],
    values: tuple[float, ...],
    forced: int | None,
    want: list[tuple[str, float, int | None, bool]],
) -> None:
    assert shown(plan_statuses(config(**knobs), draws(*values), forced_failure=forced)) == want


def test_a_seeded_rng_gives_the_same_plan() -> None:
    import random

    cfg = config(read_ratio=0.5, duplicate_ratio=0.5, reorder_ratio=0.5, failure_ratio=0.2)
    one, two = random.Random(7), random.Random(7)
    assert [plan_statuses(cfg, one.random) for _ in range(50)] == [
        plan_statuses(cfg, two.random) for _ in range(50)
    ]


RETRIES = [
    # attempts so far, age (s), knobs, want (s or None)
    (1, 0.0, {}, 1.0),
    (2, 1.0, {}, 2.0),
    (5, 30.0, {}, 16.0),
    (30, 3600.0, {}, 3600.0),  # capped at retry_max_ms
    (3, 604_798.0, {}, None),  # the next try (4 s) would be past 7 days
    (3, 0.0, {"max_attempts": 3}, None),
    (2, 0.0, {"max_attempts": 3}, 2.0),
    (1, 0.0, {"retry_base_ms": 20, "retry_max_ms": 50}, 0.02),
    (4, 0.0, {"retry_base_ms": 20, "retry_max_ms": 50}, 0.05),
    (1, 0.5, {"max_age_seconds": 0.4}, None),
]


@pytest.mark.parametrize(("attempts", "age", "knobs", "want"), RETRIES)
def test_retry_delay(
    attempts: int, age: float, knobs: dict[str, object], want: float | None
) -> None:
    assert retry_delay(config(**knobs), attempts, age) == want


WINDOWS = [
    # service_window knob, template, last inbound (s before now), want
    (False, False, None, None),
    (True, True, None, None),
    (True, False, None, 131047),
    (True, False, 3600.0, None),
    (True, False, 24 * 3600.0 + 1, 131047),
]


@pytest.mark.parametrize(("knob", "template", "ago", "want"), WINDOWS)
def test_window_failure(knob: bool, template: bool, ago: float | None, want: int | None) -> None:
    now = 1_800_000_000.0
    last = None if ago is None else now - ago
    cfg = config(service_window=knob)
    assert window_failure(cfg, is_template=template, last_inbound=last, now=now) == want


@pytest.mark.parametrize(
    ("status", "delivered", "want"),
    [("sent", True, True), ("delivered", True, True), ("read", True, False),
     ("read", False, True), ("failed", False, False)],
)  # fmt: skip
def test_pricing_rides_on_sent_and_one_of_delivered_or_read(
    status: str, delivered: bool, want: bool
) -> None:
    assert carries_pricing(status, delivered) is want


def test_pricing_category() -> None:
    cfg = config(template_category="utility")
    assert pricing_category("template", cfg) == "utility"
    assert pricing_category("text", cfg) == "service"


@pytest.mark.parametrize(
    ("knobs", "error"),
    [({"read_ratio": 1.5}, "read_ratio"), ({"concurrency": 0}, "concurrency"),
     ({"no_such_knob": 1}, "unknown webhook settings")],
)  # fmt: skip
def test_bad_settings_are_refused(knobs: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        apply_webhook_config(WebhookConfig(), knobs)


def test_settings_are_coerced() -> None:
    cfg = apply_webhook_config(
        WebhookConfig(), {"failure_code": "131047", "read_ratio": "0.25", "seed": "3"}
    )
    assert (cfg.failure_code, cfg.read_ratio, cfg.seed) == (131047, 0.25, 3)


def test_command_line_strings() -> None:
    from whatsapp_simulator.cli import webhook_settings

    settings = webhook_settings(["service_window=false", "include_conversation=yes", "seed=none"])
    cfg = apply_webhook_config(WebhookConfig(service_window=True, seed=4), settings)
    assert (cfg.service_window, cfg.include_conversation, cfg.seed) == (False, True, None)
    with pytest.raises(ValueError, match="not a boolean"):
        apply_webhook_config(WebhookConfig(), {"service_window": "maybe"})


def test_the_log_keeps_pending_deliveries_and_drops_the_oldest_finished() -> None:
    from whatsapp_simulator.webhook_model import Delivery, WebhookBook

    book = WebhookBook(WebhookConfig(log_limit=10))
    for i in range(25):
        delivery = Delivery(id=book.next_id(), app_id="1", field="messages", kind="status",
                            body=b"{}", payload={})  # fmt: skip
        book.add(delivery)
        if i >= 3:  # the first three stay pending
            book.finish(delivery, delivered=True)
    assert len(book.deliveries) <= 10
    assert {1, 2, 3} <= set(book.deliveries)
    assert max(book.deliveries) == 25
    summary = book.summary()
    assert (summary["total"], summary["delivered"], summary["pending"]) == (25, 22, 3)
