"""Pure decisions about webhooks: which statuses an accepted send gets and when, whether a
failed POST is retried and after how long. Table-tested (tests/unit/simulator).

Meta's pages behind them (docs/simulator.md, "Webhooks"):
- a send gets `sent`, then `delivered` (or `failed`), then possibly `read`; "a status is
  considered read only if it has been delivered"
  (https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status);
- Meta does not promise order, and retries can duplicate a notification
  (https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/overview);
- a POST not answered 200 is retried with decreasing frequency for up to 7 days (same
  page); the create-webhook-endpoint page says 36 hours: the age is a knob.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from whatsapp_simulator.webhook_model import WebhookConfig

RE_ENGAGEMENT = 131047  # "More than 24 hours have passed since the recipient last replied"
SERVICE_WINDOW_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class PlannedStatus:
    """A status to POST `delay` seconds after the send was accepted."""

    status: str
    delay: float
    error_code: int | None = None
    duplicate: bool = False


def plan_statuses(
    config: WebhookConfig, draw: Callable[[], float], *, forced_failure: int | None = None
) -> list[PlannedStatus]:
    """The statuses of one accepted send, ordered by delay. `draw` returns uniform [0, 1)
    numbers (the RNG); it is called a fixed number of times, in a fixed order, so a seeded
    RNG gives the same plan. `forced_failure`: the send fails with this code whatever the
    failure ratio says (the service window's 131047)."""
    failure_draw, read_draw, reorder_draw = draw(), draw(), draw()
    code = forced_failure
    if code is None and failure_draw < config.failure_ratio:
        code = config.failure_code
    sent_at = config.sent_delay_ms / 1000.0
    next_at = sent_at + config.delivered_delay_ms / 1000.0
    plan: list[PlannedStatus] = []
    if code is None or config.failed_after_sent:
        plan.append(PlannedStatus("sent", sent_at))
    if code is not None:
        plan.append(PlannedStatus("failed", next_at, error_code=code))
    else:
        plan.append(PlannedStatus("delivered", next_at))
        if read_draw < config.read_ratio:
            plan.append(PlannedStatus("read", next_at + config.read_delay_ms / 1000.0))
    if len(plan) >= 2 and reorder_draw < config.reorder_ratio:
        first, second = plan[0], plan[1]
        plan[0], plan[1] = replace(second, delay=first.delay), replace(first, delay=second.delay)
    return with_duplicates(plan, config, draw)


def with_duplicates(
    plan: list[PlannedStatus], config: WebhookConfig, draw: Callable[[], float]
) -> list[PlannedStatus]:
    """Each status is POSTed a second time with probability `duplicate_ratio`."""
    out = list(plan)
    for item in plan:
        if draw() < config.duplicate_ratio:
            copy = replace(item, delay=item.delay + config.duplicate_delay_ms / 1000.0)
            out.append(replace(copy, duplicate=True))
    return sorted(out, key=lambda p: p.delay)


def window_failure(
    config: WebhookConfig, *, is_template: bool, last_inbound: float | None, now: float
) -> int | None:
    """131047 for a non-template send outside the 24-hour customer service window, when the
    `service_window` knob is on; None otherwise."""
    if not config.service_window or is_template:
        return None
    if last_inbound is not None and now - last_inbound < SERVICE_WINDOW_SECONDS:
        return None
    return RE_ENGAGEMENT


def carries_pricing(status: str, delivered_planned: bool) -> bool:
    """`pricing` is "only included with sent status, and one of either delivered or read
    status": on `sent`, on `delivered`, and on `read` only when no `delivered` was sent."""
    if status in ("sent", "delivered"):
        return True
    return status == "read" and not delivered_planned


def pricing_category(message_type: str, config: WebhookConfig) -> str:
    """Template sends are billed by the template's category (a knob: the simulator has no
    templates); other sends happen inside the service window: `service`."""
    return config.template_category if message_type == "template" else "service"


def retry_delay(config: WebhookConfig, attempts: int, age: float) -> float | None:
    """Seconds until the next attempt after `attempts` failed ones, the first `age` seconds
    ago; None: give up (older than `max_age_seconds`, or `max_attempts` reached)."""
    if config.max_attempts and attempts >= config.max_attempts:
        return None
    factor = 1 << min(40, max(0, attempts - 1))
    delay = min(config.retry_base_ms * factor, config.retry_max_ms) / 1000.0
    if age + delay > config.max_age_seconds:
        return None
    return delay
