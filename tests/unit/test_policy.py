"""What to do after one send attempt (worker/whatsapp_worker/policy.py)."""

from __future__ import annotations

import json

import pytest

from whatsapp_graph.errors import ErrorClass, ThrottleScope
from whatsapp_worker.policy import (
    Action,
    Attempt,
    Decision,
    RetryPolicy,
    after_error,
    backoff,
    describe,
    next_attempt,
    number_blocked,
    tenant_unavailable,
)

POLICY = RetryPolicy()
NOW = 1000.0
RANDS = [i / 100 for i in range(100)] + [0.999999]


def err(
    code: int | None,
    attempt: Attempt | None = None,
    *,
    subcode: int | None = None,
    maybe_sent: bool = False,
    now: float = NOW,
    rand: float = 0.5,
    policy: RetryPolicy = POLICY,
) -> Decision:
    return after_error(
        policy,
        attempt or Attempt(),
        code=code,
        subcode=subcode,
        maybe_sent=maybe_sent,
        now=now,
        rand=rand,
    )


# --- backoff ------------------------------------------------------------------------------


@pytest.mark.parametrize("attempts", [-1, 0, 1, 2, 5, 8, 20, 100, 5000], ids=lambda a: f"n{a}")
@pytest.mark.parametrize(
    "policy",
    [RetryPolicy(), RetryPolicy(base_delay=0.1, max_delay=2.0), RetryPolicy(base_delay=5.0)],
    ids=["default", "small", "base5"],
)
def test_backoff_bounds(policy: RetryPolicy, attempts: int) -> None:
    delays = [backoff(policy, attempts, r) for r in RANDS]
    assert all(policy.base_delay * 0.5 <= d <= policy.max_delay for d in delays)
    assert delays == sorted(delays)  # monotone in rand: the jitter is the only randomness


@pytest.mark.parametrize(
    ("attempts", "low", "high"),
    [(0, 0.5, 1.0), (1, 1.0, 2.0), (3, 4.0, 8.0), (8, 128.0, 256.0), (9, 150.0, 300.0)],
    ids=["first", "second", "fourth", "ninth", "capped"],
)
def test_backoff_grows_exponentially(attempts: int, low: float, high: float) -> None:
    assert backoff(POLICY, attempts, 0.0) == pytest.approx(low)
    assert backoff(POLICY, attempts, 0.999999) == pytest.approx(high, rel=1e-5)


@pytest.mark.parametrize("rand", [-0.5, 1.0, 7.0], ids=["negative", "one", "large"])
def test_backoff_clamps_rand(rand: float) -> None:
    assert 0.5 <= backoff(POLICY, 0, rand) <= 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_throttles": 0},
        {"base_delay": 0.0},
        {"base_delay": 10.0, "max_delay": 5.0},
        {"hold_recheck": 0.0},
        {"hold_window": -1.0},
        {"blocked_hold_window": -1.0},
    ],
    ids=["attempts0", "throttles0", "base0", "base>max", "recheck0", "window<0", "blocked<0"],
)
def test_retry_policy_rejects_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"need|must"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# --- after_error: one row per class -------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "action", "reason", "error_class", "scope"),
    [
        (None, Action.RETRY, "graph_unavailable", "retry", None),
        (131000, Action.RETRY, "transient_error", "retry", None),
        (1, Action.RETRY, "transient_error", "retry", None),
        (999999, Action.RETRY, "unknown_error", "unknown", None),
        (4, Action.THROTTLE, "throttled", "throttle", ThrottleScope.APP),
        (80007, Action.THROTTLE, "throttled", "throttle", ThrottleScope.WABA),
        (130429, Action.THROTTLE, "throttled", "throttle", ThrottleScope.PHONE_NUMBER),
        (131056, Action.THROTTLE, "throttled", "throttle", ThrottleScope.PAIR),
        (190, Action.HOLD, "credential_rejected", "credential", None),
        (131005, Action.HOLD, "credential_rejected", "credential", None),
        (368, Action.HOLD, "tenant_blocked", "tenant_blocked", None),
        (131048, Action.HOLD, "tenant_blocked", "tenant_blocked", None),
        (131037, Action.HOLD, "tenant_blocked", "tenant_blocked", None),
        (133010, Action.HOLD, "tenant_blocked", "tenant_blocked", None),
        (131047, Action.DEAD_LETTER, "permanent_error", "permanent", None),
        (100, Action.DEAD_LETTER, "permanent_error", "permanent", None),
        (133016, Action.DEAD_LETTER, "permanent_error", "registration", None),
    ],
    ids=[
        "unavailable",
        "retry-131000",
        "retry-1",
        "unknown",
        "throttle-app",
        "throttle-waba",
        "throttle-number",
        "throttle-pair",
        "credential-190",
        "credential-131005",
        "blocked-368",
        "blocked-131048",
        "blocked-131037",
        "blocked-133010",
        "permanent-131047",
        "permanent-100",
        "registration",
    ],
)
def test_first_error_by_class(
    code: int | None, action: Action, reason: str, error_class: str, scope: ThrottleScope | None
) -> None:
    d = err(code)
    assert (d.action, d.reason, d.error_class, d.scope, d.code) == (
        action,
        reason,
        error_class,
        scope,
        code,
    )
    assert not d.possible_duplicate
    assert d.delay > 0 if action in (Action.RETRY, Action.THROTTLE, Action.HOLD) else d.delay == 0


@pytest.mark.parametrize(
    ("code", "max_sends"),
    [(None, 8), (131000, 8), (2, 8), (1, 3), (999999, 3), (131057, 8)],
    ids=["unavailable", "131000", "2", "code1-few", "unknown-few", "131057"],
)
def test_retries_are_bounded(code: int | None, max_sends: int) -> None:
    attempt = Attempt()
    for _ in range(max_sends - 1):
        d = err(code, attempt)
        assert d.action is Action.RETRY
        attempt = next_attempt(attempt, d, NOW)
    assert attempt.attempts == max_sends - 1
    d = err(code, attempt)
    assert (d.action, d.reason) == (Action.DEAD_LETTER, "retries_exhausted")


def test_policy_max_attempts_caps_the_classification() -> None:
    policy = RetryPolicy(max_attempts=2)
    assert err(999999, Attempt(attempts=0), policy=policy).action is Action.RETRY
    assert err(999999, Attempt(attempts=1), policy=policy).action is Action.DEAD_LETTER


@pytest.mark.parametrize(
    ("code", "attempts", "floor"),
    [(131057, 0, 60.0), (131057, 5, 60.0), (133015, 0, 300.0), (133015, 6, 300.0)],
    ids=["131057-first", "131057-later", "133015-first", "133015-later"],
)
def test_retry_min_delay_floors(code: int, attempts: int, floor: float) -> None:
    for rand in RANDS:
        d = err(code, Attempt(attempts=attempts), rand=rand)
        assert d.action is Action.RETRY
        assert d.delay >= floor


@pytest.mark.parametrize("rand", [0.0, 0.3, 0.99], ids=["r0", "r0.3", "r0.99"])
@pytest.mark.parametrize("attempts", [0, 3, 6], ids=["a0", "a3", "a6"])
def test_retry_delay_is_the_backoff(attempts: int, rand: float) -> None:
    d = err(131000, Attempt(attempts=attempts), rand=rand)
    assert d.delay == backoff(POLICY, attempts, rand)


@pytest.mark.parametrize(
    ("code", "maybe_sent"),
    [(None, True), (None, False), (131000, True)],
    ids=["timeout-after-send", "connect-error", "meta-error"],
)
def test_maybe_sent_marks_a_possible_duplicate(code: int | None, maybe_sent: bool) -> None:
    d = err(code, maybe_sent=maybe_sent)
    assert d.possible_duplicate is maybe_sent
    exhausted = err(code, Attempt(attempts=7), maybe_sent=maybe_sent)
    assert exhausted.action is Action.DEAD_LETTER
    assert exhausted.possible_duplicate is maybe_sent


# --- throttles ----------------------------------------------------------------------------


def test_pair_throttle_grows_as_4_to_the_x() -> None:
    attempt = Attempt(attempts=2)
    delays = []
    for _ in range(6):
        d = err(131056, attempt)
        assert (d.action, d.scope) == (Action.THROTTLE, ThrottleScope.PAIR)
        delays.append(d.delay)
        attempt = next_attempt(attempt, d, NOW)
    # 4^1 = 4 is below Meta's 6 s pair floor; then 16, 64, 256, and the cap at max_delay.
    assert delays == [6.0, 16.0, 64.0, 256.0, 300.0, 300.0]
    assert (attempt.attempts, attempt.throttles, attempt.pair_throttles) == (2, 6, 6)


def test_other_outcome_resets_the_pair_exponent() -> None:
    attempt = Attempt(pair_throttles=3, throttles=3)
    d = err(130429, attempt)
    attempt = next_attempt(attempt, d, NOW)
    assert attempt.pair_throttles == 0
    assert err(131056, attempt).delay == 6.0


@pytest.mark.parametrize(
    ("code", "floor"),
    [(4, 60.0), (80007, 300.0), (80008, 300.0), (130429, 1.0), (131056, 6.0)],
    ids=["app", "waba-80007", "waba-80008", "number", "pair"],
)
def test_throttle_min_delay_floors(code: int, floor: float) -> None:
    for throttles in (0, 1, 10):
        for rand in RANDS:
            d = err(code, Attempt(throttles=throttles), rand=rand)
            assert d.delay >= floor


def test_number_throttle_backs_off_with_repeated_throttles() -> None:
    first = err(130429, Attempt(throttles=0), rand=0.0).delay
    later = err(130429, Attempt(throttles=6), rand=0.0).delay
    assert first == 1.0
    assert later == 32.0


def test_throttles_are_bounded_and_do_not_count_as_attempts() -> None:
    policy = RetryPolicy(max_throttles=5)
    attempt = Attempt()
    for _ in range(4):
        d = err(130429, attempt, policy=policy)
        assert d.action is Action.THROTTLE
        attempt = next_attempt(attempt, d, NOW)
    assert (attempt.attempts, attempt.throttles) == (0, 4)
    d = err(130429, attempt, policy=policy)
    assert (d.action, d.reason, d.scope) == (
        Action.DEAD_LETTER,
        "throttled_too_long",
        ThrottleScope.PHONE_NUMBER,
    )


# --- holds --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("held_since", "now", "action", "delay"),
    [
        (None, NOW, Action.HOLD, 30.0),
        (NOW, NOW + 100.0, Action.HOLD, 30.0),
        (NOW, NOW + 880.0, Action.HOLD, 20.0),  # the last re-check lands on the window's end
        (NOW, NOW + 900.0, Action.DEAD_LETTER, 0.0),
        (NOW, NOW + 5000.0, Action.DEAD_LETTER, 0.0),
    ],
    ids=["first", "within", "last-recheck", "window-end", "long-after"],
)
def test_credential_hold_window(
    held_since: float | None, now: float, action: Action, delay: float
) -> None:
    d = err(190, Attempt(held_since=held_since), subcode=463, now=now)
    assert (d.action, d.reason, d.delay) == (action, "credential_rejected", delay)
    assert (d.code, d.subcode, d.error_class) == (190, 463, ErrorClass.CREDENTIAL.value)
    t = tenant_unavailable(POLICY, Attempt(held_since=held_since), now)
    assert (t.action, t.reason, t.delay) == (action, "tenant_unavailable", delay)


DAY = 86_400.0


@pytest.mark.parametrize("code", [368, 130497, 131031, 131037, 131042, 131045, 131048, 131064,
                                  133010])  # fmt: skip
@pytest.mark.parametrize(
    ("held_since", "now", "action", "delay"),
    [
        (None, NOW, Action.HOLD, 30.0),
        (NOW, NOW + 900.0, Action.HOLD, 30.0),  # past the credential window: still held
        (NOW, NOW + DAY - 10.0, Action.HOLD, 10.0),  # the last re-check lands on the end
        (NOW, NOW + DAY, Action.DEAD_LETTER, 0.0),
        (NOW, NOW + 3 * DAY, Action.DEAD_LETTER, 0.0),
    ],
    ids=["first", "past-900s", "last-recheck", "window-end", "long-after"],
)
def test_blocked_hold_window(
    code: int, held_since: float | None, now: float, action: Action, delay: float
) -> None:
    """Meta's answer with a block code, and a message of a paused number (never sent), are
    held alike for `blocked_hold_window`, then dead-lettered as tenant_blocked."""
    for d in (
        err(code, Attempt(held_since=held_since), now=now),
        number_blocked(POLICY, Attempt(held_since=held_since), now, code),
    ):
        assert (d.action, d.reason, d.delay) == (action, "tenant_blocked", delay)
        assert (d.code, d.error_class) == (code, ErrorClass.TENANT_BLOCKED.value)


@pytest.mark.parametrize(
    ("window", "held_for", "action"),
    [(0.0, 0.0, Action.DEAD_LETTER), (60.0, 59.0, Action.HOLD), (60.0, 60.0, Action.DEAD_LETTER)],
    ids=["no-window", "within", "end"],
)
def test_blocked_hold_window_is_its_own_setting(
    window: float, held_for: float, action: Action
) -> None:
    policy = RetryPolicy(blocked_hold_window=window, hold_window=5000.0)
    d = number_blocked(policy, Attempt(held_since=NOW), NOW + held_for, 131048)
    assert d.action is action
    assert err(190, Attempt(held_since=NOW), now=NOW + held_for, policy=policy).action is (
        Action.HOLD
    )


def test_a_blocked_hold_run_is_not_counted_as_attempts() -> None:
    attempt, now = Attempt(attempts=2), NOW
    while True:
        d = number_blocked(POLICY, attempt, now, 131048)
        if d.action is Action.DEAD_LETTER:
            break
        attempt = next_attempt(attempt, d, now)
        assert (attempt.attempts, attempt.held_since) == (2, NOW)
        now += d.delay
    assert now == NOW + POLICY.blocked_hold_window


def test_hold_run_is_tracked_across_tries() -> None:
    attempt, now = Attempt(attempts=1), NOW
    while True:
        d = err(190, attempt, now=now)
        if d.action is Action.DEAD_LETTER:
            break
        attempt = next_attempt(attempt, d, now)
        assert attempt.held_since == NOW
        assert attempt.attempts == 1  # holds are not failed attempts
        now += d.delay
    assert now == NOW + POLICY.hold_window


def test_a_non_hold_outcome_ends_the_hold_run() -> None:
    held = Attempt(held_since=NOW)
    d = err(131000, held)
    assert next_attempt(held, d, NOW + 10).held_since is None


def test_tenant_unavailable_first_hold_starts_the_window() -> None:
    d = tenant_unavailable(POLICY, Attempt(), NOW)
    assert (d.action, d.delay, d.code, d.error_class) == (Action.HOLD, 30.0, None, None)
    assert next_attempt(Attempt(), d, NOW).held_since == NOW


# --- next_attempt and describe ------------------------------------------------------------


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        (Decision(Action.RETRY, 1.0), Attempt(attempts=3, throttles=1)),
        (
            Decision(Action.THROTTLE, 6.0, ThrottleScope.PAIR),
            Attempt(attempts=2, throttles=2, pair_throttles=2),
        ),
        (Decision(Action.THROTTLE, 1.0, ThrottleScope.APP), Attempt(attempts=2, throttles=2)),
        (
            Decision(Action.HOLD, 30.0),
            Attempt(attempts=2, throttles=1, held_since=NOW),
        ),
        (Decision(Action.ACK), Attempt(attempts=2, throttles=1, pair_throttles=1)),
        (Decision(Action.DEAD_LETTER), Attempt(attempts=2, throttles=1, pair_throttles=1)),
    ],
    ids=["retry", "throttle-pair", "throttle-app", "hold", "ack", "dead-letter"],
)
def test_next_attempt(decision: Decision, expected: Attempt) -> None:
    assert next_attempt(Attempt(attempts=2, throttles=1, pair_throttles=1), decision, NOW) == (
        expected
    )


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        (
            err(190, subcode=463),
            {
                "action": "hold",
                "reason": "credential_rejected",
                "delay": 30.0,
                "code": 190,
                "subcode": 463,
                "error_class": "credential",
                "token_problem": "TokenExpired",
            },
        ),
        (
            err(131056),
            {
                "action": "throttle",
                "reason": "throttled",
                "delay": 6.0,
                "throttle_scope": "pair",
                "code": 131056,
                "error_class": "throttle",
            },
        ),
        (
            err(None, Attempt(attempts=7), maybe_sent=True),
            {
                "action": "dead_letter",
                "reason": "retries_exhausted",
                "error_class": "retry",
                "possible_duplicate": True,
            },
        ),
        (Decision(Action.ACK, reason="accepted"), {"action": "ack", "reason": "accepted"}),
    ],
    ids=["credential", "pair-throttle", "exhausted-duplicate", "ack"],
)
def test_describe_is_json_safe(decision: Decision, expected: dict[str, object]) -> None:
    out = describe(decision)
    assert out == expected
    assert json.loads(json.dumps(out)) == out
