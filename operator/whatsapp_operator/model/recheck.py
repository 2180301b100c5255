"""When a tenant's token should be checked again. Pure.

A check runs at once when the token or the spec changed, or when the last check did not end
in a verdict; otherwise at lastValidatedAt + interval, shifted by a per-tenant jitter so that
ten thousand tenants created together do not all re-validate in the same second. While Meta
blocks the tenant's number (status.sendingBlock), every BLOCKED_RECHECK at most, counted from
the block or the last check, whichever is later: that check is what lifts the block.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.conditions import Reason

JITTER = 0.1  # +-10% of the interval
# A token Meta rejected is not asked about again for this long (unless the Secret changes or
# someone asks with the revalidate annotation): a revoked token must not burn the app's
# rate limit. The circuit breaker of the issue "Token lifecycle".
CREDENTIAL_BACKOFF = timedelta(hours=6)
# A blocked number is looked at again this often (jittered): never at once after the block (the
# number just failed a send), soon enough that sending resumes minutes after Meta lifts it.
BLOCKED_RECHECK = timedelta(minutes=5)
_CREDENTIAL_REASONS = {
    Reason.TOKEN_EXPIRED, Reason.TOKEN_INVALIDATED, Reason.APP_REMOVED, Reason.PASSWORD_CHANGED,
    Reason.ACCOUNT_CHECKPOINT, Reason.TOKEN_UNREADABLE, Reason.TOKEN_REJECTED,
    Reason.PERMISSION_DENIED,
}  # fmt: skip
_SETTLED = {Reason.TOKEN_VALID} | {
    Reason.TOKEN_EXPIRED,
    Reason.TOKEN_INVALIDATED,
    Reason.APP_REMOVED,
    Reason.PASSWORD_CHANGED,
    Reason.ACCOUNT_CHECKPOINT,
    Reason.TOKEN_UNREADABLE,
    Reason.TOKEN_REJECTED,
    Reason.PERMISSION_DENIED,
    Reason.MISSING_SCOPES,
    Reason.WABA_NOT_IN_SCOPE,
    # Meta refused a call without (or with a wrong) appsecret_proof: settled until the spec
    # names the app's credentials (a spec change checks at once) or the interval passes
    Reason.APP_SECRET_PROOF_REQUIRED,
}
_TRANSIENT = {Reason.GRAPH_API_UNAVAILABLE, Reason.GRAPH_API_THROTTLED}


def jitter_factor(uid: str) -> float:
    """A stable factor in [1 - JITTER, 1 + JITTER] for this object."""
    digest = int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], "big")
    return 1 - JITTER + 2 * JITTER * (digest / 2**64)


def parse_time(ts: Any) -> datetime | None:
    if not isinstance(ts, str):
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


def next_check(
    status: Mapping[str, Any],
    *,
    fingerprint: str,
    generation: int,
    interval: timedelta,
    uid: str,
    now: datetime,
) -> datetime:
    """When the Graph API check of this tenant is next due (<= now: due now)."""
    token = status.get("token") or {}
    last = parse_time(token.get("lastValidatedAt"))
    verdict = c.find(status.get("conditions") or (), c.TOKEN_VALID)
    # A valid token whose phone check failed transiently did not end in a verdict either.
    phone = c.find(status.get("conditions") or (), c.PHONE_NUMBER_VERIFIED) or {}
    if (
        last is None
        or token.get("fingerprint") != fingerprint
        or status.get("observedGeneration") != generation
        or verdict is None
        or verdict.get("reason") not in _SETTLED
        or phone.get("reason") in _TRANSIENT
    ):
        return now
    block = status.get("sendingBlock")
    blocked = parse_time(block.get("since")) if isinstance(block, Mapping) else None
    if verdict.get("reason") in _CREDENTIAL_REASONS:
        interval = max(interval, CREDENTIAL_BACKOFF)
    elif blocked is not None:
        last, interval = max(last, blocked), min(interval, BLOCKED_RECHECK)
    due = last + interval * jitter_factor(uid)
    expires = parse_time(token.get("expiresAt"))
    if verdict.get("reason") == Reason.TOKEN_VALID and expires is not None and expires < due:
        return expires  # confirm the expiry with Meta the moment it happens
    return due


def backoff(
    attempt: int, *, base: float = 2.0, cap: float = 300.0, rng: random.Random | None = None
) -> float:
    """Seconds to wait after the `attempt`-th consecutive transient failure ("full jitter" half)."""
    ceiling = min(cap, base * 2.0 ** max(0, attempt - 1))
    draw = rng.random() if rng is not None else random.random()
    return ceiling * (0.5 + 0.5 * draw)
