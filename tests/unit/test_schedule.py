"""When a tenant's token is checked again (operator/whatsapp_operator/model/recheck.py)."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.conditions import Reason
from whatsapp_operator.model.recheck import (
    BLOCKED_RECHECK,
    CREDENTIAL_BACKOFF,
    JITTER,
    backoff,
    jitter_factor,
    next_check,
)

FP = "sha256:0123456789abcdef"
UID = "6f1c7a52-1111-4c4e-9d7e-000000000001"
LAST = datetime(2026, 9, 1, 12, 0, 0, tzinfo=UTC)
NOW = LAST + timedelta(minutes=10)
HOUR = timedelta(hours=1)


def status(
    *,
    fingerprint: str = FP,
    generation: int = 3,
    token_reason: str | None = Reason.TOKEN_VALID,
    phone_reason: str | None = Reason.PHONE_NUMBER_VERIFIED,
    last: str | None = "2026-09-01T12:00:00Z",
) -> dict[str, Any]:
    conditions = []
    if token_reason is not None:
        conditions.append({"type": c.TOKEN_VALID, "status": "True", "reason": token_reason})
    if phone_reason is not None:
        conditions.append(
            {"type": c.PHONE_NUMBER_VERIFIED, "status": "True", "reason": phone_reason}
        )
    token: dict[str, Any] = {"fingerprint": fingerprint}
    if last is not None:
        token["lastValidatedAt"] = last
    return {"observedGeneration": generation, "token": token, "conditions": conditions}


def due(stored: dict[str, Any]) -> datetime:
    return next_check(stored, fingerprint=FP, generation=3, interval=HOUR, uid=UID, now=NOW)


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param({}, id="never checked"),
        pytest.param(status(fingerprint="sha256:ffffffffffffffff"), id="token changed"),
        pytest.param(status(generation=2), id="spec changed"),
        pytest.param(status(last=None), id="no lastValidatedAt"),
        pytest.param(status(last="yesterday"), id="unreadable lastValidatedAt"),
        pytest.param(status(token_reason=None), id="no TokenValid verdict"),
        pytest.param(
            status(token_reason=Reason.GRAPH_API_UNAVAILABLE), id="token check: Graph API down"
        ),
        pytest.param(status(token_reason=Reason.GRAPH_API_THROTTLED), id="token check: throttled"),
        pytest.param(status(token_reason=Reason.NOT_CHECKED), id="token not checked"),
        pytest.param(
            status(phone_reason=Reason.GRAPH_API_UNAVAILABLE), id="phone check: Graph API down"
        ),
        pytest.param(status(phone_reason=Reason.GRAPH_API_THROTTLED), id="phone check: throttled"),
    ],
)
def test_due_now(stored: dict[str, Any]) -> None:
    assert due(stored) == NOW


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param(status(), id="valid token, verified phone"),
        pytest.param(status(token_reason=Reason.MISSING_SCOPES), id="missing scopes"),
        pytest.param(
            # found by the idle check: Meta refusing a call without appsecret_proof was not
            # settled, so the tenant was checked again every 30 s
            status(token_reason=Reason.APP_SECRET_PROOF_REQUIRED),
            id="the app requires appsecret_proof",
        ),
        pytest.param(
            status(phone_reason=Reason.PHONE_NUMBER_NOT_IN_WABA), id="phone not in the WABA"
        ),
        pytest.param(status(phone_reason=None), id="no phone verdict stored"),
    ],
)
def test_due_after_the_jittered_interval(stored: dict[str, Any]) -> None:
    when = due(stored)
    assert when == LAST + HOUR * jitter_factor(UID)
    assert LAST + HOUR * (1 - JITTER) <= when <= LAST + HOUR * (1 + JITTER)
    assert when > NOW


@pytest.mark.parametrize(
    "reason",
    [
        Reason.TOKEN_EXPIRED,
        Reason.TOKEN_INVALIDATED,
        Reason.APP_REMOVED,
        Reason.PASSWORD_CHANGED,
        Reason.ACCOUNT_CHECKPOINT,
        Reason.TOKEN_UNREADABLE,
        Reason.TOKEN_REJECTED,
        Reason.PERMISSION_DENIED,
    ],
)
def test_circuit_breaker_rejected_tokens_wait_the_long_backoff(reason: str) -> None:
    when = due(status(token_reason=reason, phone_reason=Reason.NOT_CHECKED))
    assert when == LAST + CREDENTIAL_BACKOFF * jitter_factor(UID)


MINUTE = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("since", "interval", "token_reason", "anchor", "period"),
    [
        pytest.param(LAST - HOUR, HOUR, Reason.TOKEN_VALID, LAST, BLOCKED_RECHECK,
                     id="blocked before the last check: 5 min after it"),
        pytest.param(LAST + 7 * MINUTE, HOUR, Reason.TOKEN_VALID, LAST + 7 * MINUTE,
                     BLOCKED_RECHECK, id="blocked since: 5 min after the block, not at once"),
        pytest.param(LAST, 2 * MINUTE, Reason.TOKEN_VALID, LAST, 2 * MINUTE,
                     id="a shorter interval of the tenant's own"),
        pytest.param(LAST, HOUR, Reason.TOKEN_INVALIDATED, LAST, CREDENTIAL_BACKOFF,
                     id="a refused token: the circuit breaker wins"),
        pytest.param(None, HOUR, Reason.TOKEN_VALID, LAST, HOUR, id="not blocked"),
    ],
)  # fmt: skip
def test_a_blocked_number_is_checked_again_sooner(
    since: datetime | None, interval: timedelta, token_reason: str, anchor: datetime,
    period: timedelta,
) -> None:  # fmt: skip
    stored = status(token_reason=token_reason)
    if since is not None:
        stored["sendingBlock"] = {"code": 131048, "since": c.rfc3339(since)}
    when = next_check(stored, fingerprint=FP, generation=3, interval=interval, uid=UID, now=NOW)
    assert when == anchor + period * jitter_factor(UID)


def test_circuit_breaker_opens_at_once_when_the_secret_changes() -> None:
    stored = status(token_reason=Reason.TOKEN_INVALIDATED)
    assert (
        next_check(
            stored,
            fingerprint="sha256:other",
            generation=3,
            interval=HOUR,
            uid=UID,
            now=NOW,
        )
        == NOW
    )


def test_interval_scales_the_next_check() -> None:
    stored = status()
    one = next_check(stored, fingerprint=FP, generation=3, interval=HOUR, uid=UID, now=NOW)
    six = next_check(stored, fingerprint=FP, generation=3, interval=6 * HOUR, uid=UID, now=NOW)
    assert (six - LAST).total_seconds() == pytest.approx(6 * (one - LAST).total_seconds())


def test_jitter_factor_is_deterministic_and_bounded() -> None:
    assert jitter_factor(UID) == jitter_factor(UID)
    factors = [jitter_factor(f"uid-{i}") for i in range(2000)]
    assert all(1 - JITTER <= f <= 1 + JITTER for f in factors)


def test_jitter_factor_spreads_tenants() -> None:
    factors = [jitter_factor(f"uid-{i}") for i in range(2000)]
    assert len(set(factors)) == len(factors)
    assert min(factors) < 1 - JITTER * 0.9
    assert max(factors) > 1 + JITTER * 0.9
    assert abs(statistics.mean(factors) - 1) < JITTER / 10
    below = sum(f < 1 for f in factors)
    assert 800 < below < 1200


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [
        pytest.param(0, 1.0, 2.0, id="attempt 0 counts as the first"),
        pytest.param(1, 1.0, 2.0, id="first failure: 1-2 s"),
        pytest.param(2, 2.0, 4.0, id="second failure: 2-4 s"),
        pytest.param(5, 16.0, 32.0, id="fifth failure: 16-32 s"),
        pytest.param(9, 150.0, 300.0, id="capped at 300 s"),
        pytest.param(500, 150.0, 300.0, id="huge attempt stays capped"),
    ],
)
def test_backoff_bounds(attempt: int, low: float, high: float) -> None:
    rng = random.Random(1234)
    draws = [backoff(attempt, rng=rng) for _ in range(500)]
    assert all(low <= d <= high for d in draws)
    assert max(draws) - min(draws) > (high - low) * 0.8  # jittered, not constant


def test_backoff_is_reproducible_with_a_seed() -> None:
    first = [backoff(3, rng=random.Random(7)) for _ in range(3)]
    assert first == [backoff(3, rng=random.Random(7))] * 3


def test_backoff_custom_base_and_cap() -> None:
    rng = random.Random(0)
    assert all(5.0 <= backoff(1, base=10.0, cap=60.0, rng=rng) <= 10.0 for _ in range(100))
    assert all(30.0 <= backoff(4, base=10.0, cap=60.0, rng=rng) <= 60.0 for _ in range(100))
