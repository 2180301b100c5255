"""What a sender worker does after one send attempt: ack, retry, throttle, hold or dead-letter.

The class of a failure comes from `whatsapp_graph.errors.classify` (Meta says: decide by the
error code, never by HTTP status). This module turns that class plus the message's own
history (`Attempt`, carried in its headers between tries) into one `Decision`.

It is pure: the clock (`now`) and the jitter source (`rand` in [0, 1)) are passed in, so every
path is table-tested without sleeping or mocking.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from whatsapp_graph.errors import (
    Classification,
    ErrorClass,
    ThrottleScope,
    classify,
    token_problem,
)

# 2**64 * base_delay exceeds any sane max_delay; larger exponents would overflow a float.
_MAX_EXPONENT = 64

# The Graph API was unreachable or answered without Meta's envelope: transient.
_UNAVAILABLE = Classification(ErrorClass.RETRY)


class Action(enum.Enum):
    ACK = "ack"  # accepted by Meta: publish the result, ack
    RETRY = "retry"  # send again after `delay` (backoff with jitter)
    THROTTLE = "throttle"  # pause `scope`, then retry after `delay`; not a failed attempt
    HOLD = "hold"  # credential/tenant/number problem: keep the message, re-check after `delay`
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float = 0.0
    scope: ThrottleScope | None = None
    # Machine-readable reason: "accepted", "graph_unavailable", "transient_error",
    # "unknown_error", "throttled", and for holds/dead letters "permanent_error",
    # "tenant_blocked" (Meta blocked the number: held, then dead-lettered after
    # `blocked_hold_window`), "retries_exhausted", "credential_rejected",
    # "throttled_too_long", "tenant_unavailable".
    reason: str = ""
    code: int | None = None  # Meta error code, when Meta answered with one
    error_class: str | None = None  # ErrorClass.value
    possible_duplicate: bool = False  # a timeout after the request may have reached Meta
    subcode: int | None = None

    @property
    def terminal(self) -> bool:
        """True when the message leaves the queue (acked or dead-lettered)."""
        return self.action in (Action.ACK, Action.DEAD_LETTER)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8  # send attempts for RETRY/UNKNOWN-class failures and unavailability
    base_delay: float = 1.0
    max_delay: float = 300.0
    hold_window: float = 900.0  # how long held messages wait before dead-lettering
    hold_recheck: float = 30.0
    max_throttles: int = 50
    # How long messages of a number Meta blocked (errors.TENANT_BLOCKED_CODES) are held: a
    # block lifts when someone acts (an appeal, a payment, a registration), in hours or days.
    blocked_hold_window: float = 86_400.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_throttles < 1:
            raise ValueError("max_attempts and max_throttles must be >= 1")
        if not 0 < self.base_delay <= self.max_delay:
            raise ValueError("need 0 < base_delay <= max_delay")
        if not (self.hold_window >= 0 and self.blocked_hold_window >= 0 and self.hold_recheck > 0):
            raise ValueError("need hold windows >= 0 and hold_recheck > 0")


@dataclass(frozen=True)
class Attempt:
    """The message's history, carried in its headers between tries."""

    attempts: int = 0  # failed attempts so far (throttles and holds not counted)
    throttles: int = 0  # throttling answers so far (all scopes)
    held_since: float | None = None  # start of the current run of holds
    pair_throttles: int = 0  # consecutive 131056 answers: X in Meta's "retry after 4^X s"


def backoff(policy: RetryPolicy, attempts: int, rand: float) -> float:
    """Exponential backoff with "equal jitter": uniform in [cap/2, cap), cap = base * 2^n.

    Half the delay is fixed so a retry never comes back almost at once, half is random so
    messages failed by one outage do not all return in the same instant. The result is never
    below `base_delay / 2` and never above `max_delay`.
    """
    exponent = min(max(attempts, 0), _MAX_EXPONENT)
    cap = min(policy.max_delay, policy.base_delay * 2.0**exponent)
    r = min(max(rand, 0.0), 1.0)
    delay = cap / 2.0 + r * cap / 2.0
    return min(policy.max_delay, max(policy.base_delay / 2.0, delay))


def _hold(
    policy: RetryPolicy,
    attempt: Attempt,
    now: float,
    template: Decision,
    window: float | None = None,
) -> Decision:
    """HOLD until `window` (`hold_window` unless given) has passed since the first hold of
    the current run of holds, then DEAD_LETTER."""
    held_since = attempt.held_since if attempt.held_since is not None else now
    remaining = held_since + (policy.hold_window if window is None else window) - now
    if remaining <= 0:
        return replace(template, action=Action.DEAD_LETTER, delay=0.0)
    # Never sleep past the end of the window: the last re-check is the one that dead-letters.
    return replace(template, action=Action.HOLD, delay=min(policy.hold_recheck, remaining))


def after_error(
    policy: RetryPolicy,
    attempt: Attempt,
    *,
    code: int | None,
    subcode: int | None,
    maybe_sent: bool,
    now: float,
    rand: float,
) -> Decision:
    """The decision after a failed send.

    `code` is Meta's error code; None means the Graph API was unavailable (network error,
    timeout, 5xx without Meta's envelope), which is treated as a transient failure.
    `maybe_sent` (a timeout after the request went out) marks the decision as a possible
    duplicate: Meta has no idempotency key, so a retry may deliver twice.
    """
    c = _UNAVAILABLE if code is None else classify(code)
    cls = c.error_class
    base = Decision(
        Action.DEAD_LETTER,
        code=code,
        subcode=subcode,
        error_class=cls.value,
        possible_duplicate=maybe_sent,
    )

    if cls in (ErrorClass.RETRY, ErrorClass.UNKNOWN):
        return _retry(policy, attempt, c, base, rand)
    if cls is ErrorClass.THROTTLE:
        return _throttle(policy, attempt, c, base, rand)
    if cls is ErrorClass.CREDENTIAL:
        return _hold(policy, attempt, now, replace(base, reason="credential_rejected"))
    if cls is ErrorClass.TENANT_BLOCKED:
        # every later message of the number would fail alike: the caller pauses the number
        blocked = replace(base, reason="tenant_blocked")
        return _hold(policy, attempt, now, blocked, policy.blocked_hold_window)
    # PERMANENT and REGISTRATION: this message can never succeed as sent.
    return replace(base, reason="permanent_error")


def _retry(
    policy: RetryPolicy, attempt: Attempt, c: Classification, base: Decision, rand: float
) -> Decision:
    """A transient failure (or an unknown one, or no answer from Meta): RETRY with backoff,
    until the attempts run out."""
    limit = min(policy.max_attempts, c.max_attempts or policy.max_attempts)
    if attempt.attempts + 1 >= limit:
        return replace(base, reason="retries_exhausted")
    if base.code is None:
        reason = "graph_unavailable"
    else:
        reason = "unknown_error" if c.error_class is ErrorClass.UNKNOWN else "transient_error"
    # Meta's floor (131057: ~1 min, 133015: >= 5 min) wins over max_delay.
    delay = max(backoff(policy, attempt.attempts, rand), c.min_delay)
    return replace(base, action=Action.RETRY, delay=delay, reason=reason)


def _throttle(
    policy: RetryPolicy, attempt: Attempt, c: Classification, base: Decision, rand: float
) -> Decision:
    """Meta throttled a scope (app, WABA, number or pair): THROTTLE it for a while, until
    throttled too long."""
    if attempt.throttles + 1 >= policy.max_throttles:
        return replace(base, reason="throttled_too_long", scope=c.throttle_scope)
    if c.throttle_scope is ThrottleScope.PAIR:
        # Meta: retry after 4^X seconds, X = consecutive pair-rate errors (this one too).
        x = min(attempt.pair_throttles + 1, _MAX_EXPONENT)
        delay = max(c.min_delay, min(policy.max_delay, 4.0**x))
    else:
        delay = max(c.min_delay, backoff(policy, attempt.throttles, rand))
    return replace(
        base, action=Action.THROTTLE, delay=delay, scope=c.throttle_scope, reason="throttled"
    )


def tenant_unavailable(policy: RetryPolicy, attempt: Attempt, now: float) -> Decision:
    """The tenant is not in the loaded config (unknown, suspended, or config not yet synced).

    Config reloads lag the operator by up to a kubelet sync, so the message is held and
    re-checked; only once the hold window has passed is it dead-lettered.
    """
    return _hold(policy, attempt, now, Decision(Action.HOLD, reason="tenant_unavailable"))


def number_blocked(policy: RetryPolicy, attempt: Attempt, now: float, code: int) -> Decision:
    """The number is paused (this worker saw Meta's `code`, or the operator's config says so):
    HOLD without calling Meta, for `blocked_hold_window`, then DEAD_LETTER as tenant_blocked."""
    template = Decision(
        Action.HOLD,
        reason="tenant_blocked",
        code=code,
        error_class=ErrorClass.TENANT_BLOCKED.value,
    )
    return _hold(policy, attempt, now, template, policy.blocked_hold_window)


def next_attempt(attempt: Attempt, decision: Decision, now: float) -> Attempt:
    """The header values for the next try after `decision`.

    RETRY counts a failed attempt; THROTTLE counts a throttle (and a consecutive pair
    throttle for the PAIR scope); HOLD keeps the start of the run of holds. Any other
    outcome ends a run of holds or of pair throttles. Terminal decisions return the
    attempt unchanged: there is no next try.
    """
    if decision.terminal:
        return attempt
    if decision.action is Action.HOLD:
        held = attempt.held_since if attempt.held_since is not None else now
        return replace(attempt, held_since=held, pair_throttles=0)
    if decision.action is Action.THROTTLE:
        pair = attempt.pair_throttles + 1 if decision.scope is ThrottleScope.PAIR else 0
        return replace(
            attempt, throttles=attempt.throttles + 1, pair_throttles=pair, held_since=None
        )
    return replace(attempt, attempts=attempt.attempts + 1, pair_throttles=0, held_since=None)


def describe(decision: Decision) -> dict[str, object]:
    """JSON-safe fields for result events and dead-letter headers (absent values omitted)."""
    out: dict[str, object] = {"action": decision.action.value, "reason": decision.reason}
    if decision.delay > 0:
        out["delay"] = round(decision.delay, 3)
    if decision.scope is not None:
        out["throttle_scope"] = decision.scope.value
    if decision.code is not None:
        out["code"] = decision.code
    if decision.subcode is not None:
        out["subcode"] = decision.subcode
    if decision.error_class is not None:
        out["error_class"] = decision.error_class
    if decision.error_class == ErrorClass.CREDENTIAL.value and decision.code is not None:
        out["token_problem"] = token_problem(decision.code, decision.subcode).value
    if decision.possible_duplicate:
        out["possible_duplicate"] = True
    return out
