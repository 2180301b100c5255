"""Meta Graph API errors and what to do about them.

Meta says to decide by the error `code` (and `details`), never by HTTP status: throttling has
been seen as both 400 and 429. This module is the single place where a Graph API error becomes
one of our classes; the operator and the sender workers both use it. It is pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class ErrorClass(enum.Enum):
    """What the caller should do with a failed Graph API call."""

    RETRY = "retry"  # transient: bounded retries with exponential backoff and jitter
    THROTTLE = "throttle"  # slow down the named scope, then retry
    CREDENTIAL = "credential"  # stop using the token, re-check it, tell the operator
    # Meta blocked the account or the number: pause that number's sending (messages stay
    # queued), tell the operator (SendingBlocked), resume once a check finds it healthy
    TENANT_BLOCKED = "tenant_blocked"
    PERMANENT = "permanent"  # this request can never succeed: dead-letter with the reason
    REGISTRATION = "registration"  # number registration flow problems (operator side)
    UNKNOWN = "unknown"  # not in Meta's table: a few retries, then permanent


class ThrottleScope(enum.Enum):
    """Which budget a throttling error names."""

    APP = "app"
    WABA = "waba"
    PHONE_NUMBER = "phone_number"
    PAIR = "pair"


@dataclass(frozen=True)
class Classification:
    error_class: ErrorClass
    throttle_scope: ThrottleScope | None = None
    # A floor for the next attempt (seconds), where Meta's guidance names one.
    min_delay: float = 0.0
    # How many attempts are worth making at all for this code (None = the caller's default).
    max_attempts: int | None = None


_RETRY: dict[int, Classification] = {
    1: Classification(ErrorClass.RETRY, max_attempts=3),
    2: Classification(ErrorClass.RETRY),
    131000: Classification(ErrorClass.RETRY),
    131016: Classification(ErrorClass.RETRY),
    133004: Classification(ErrorClass.RETRY),
    131057: Classification(ErrorClass.RETRY, min_delay=60.0),
    133015: Classification(ErrorClass.RETRY, min_delay=300.0),
    # Flow throttled: 10 messages with this Flow in the last hour; it lifts within the hour
    132069: Classification(ErrorClass.RETRY, min_delay=3600.0, max_attempts=2),
}
_THROTTLE: dict[int, Classification] = {
    4: Classification(ErrorClass.THROTTLE, ThrottleScope.APP, min_delay=60.0),
    80007: Classification(ErrorClass.THROTTLE, ThrottleScope.WABA, min_delay=300.0),
    80008: Classification(ErrorClass.THROTTLE, ThrottleScope.WABA, min_delay=300.0),
    130429: Classification(ErrorClass.THROTTLE, ThrottleScope.PHONE_NUMBER, min_delay=1.0),
    131056: Classification(ErrorClass.THROTTLE, ThrottleScope.PAIR, min_delay=6.0),
}
# 102 (session key invalid) and 104 (no or malformed access token / signature) are the
# Graph API's own authentication codes, answered before the WhatsApp layer.
_CREDENTIAL_CODES = frozenset({0, 3, 10, 102, 104, 190, 131005}) | frozenset(range(200, 300))
# Codes that block the account (368 policy, 130497 country, 131031 locked, 131042 payment,
# 131064 enforcement) or the number (131048 spam limit, 131037 display name not approved,
# 131045 certificate/registration, 133010 not registered): every later message from the
# number would fail the same way until someone acts, so the number's sending pauses.
TENANT_BLOCKED_CODES = frozenset(
    {368, 130497, 131031, 131037, 131042, 131045, 131048, 131064, 133010}
)
_PERMANENT_CODES = frozenset(
    {
        100,
        131008,
        131009,
        131021,
        131026,
        131030,  # recipient not in the test number's allowed list
        131052,  # media download error (the recipient's media, inbound)
        131047,
        131049,
        131050,
        131051,
        131053,
        130403,
        130472,
        132000,
        132001,
        132005,
        132007,
        132012,
        132015,
        132016,
        132068,  # the Flow is blocked
        134011,  # UNCONFIRMED title: not documented on Meta's error page we could read
        135000,
    }
)
# The registration flow's codes (operator side). 131045 and 133010 at send time block the
# number, so they are in TENANT_BLOCKED_CODES, which wins.
_REGISTRATION_CODES = frozenset({133000, 133005, 133006, 133008, 133009, 133016})


def classify(code: int) -> Classification:
    """The class of a Graph API error code (see meta-cloud-api.md, 'Errors')."""
    if code in _RETRY:
        return _RETRY[code]
    if code in _THROTTLE:
        return _THROTTLE[code]
    if code in _CREDENTIAL_CODES:
        return Classification(ErrorClass.CREDENTIAL)
    if code in TENANT_BLOCKED_CODES:
        return Classification(ErrorClass.TENANT_BLOCKED)
    if code in _PERMANENT_CODES:
        return Classification(ErrorClass.PERMANENT)
    if code in _REGISTRATION_CODES:
        return Classification(ErrorClass.REGISTRATION)
    return Classification(ErrorClass.UNKNOWN, max_attempts=3)


class TokenProblem(enum.Enum):
    """Why Meta rejected a token (code 190 and its subcodes, plus the permission codes)."""

    EXPIRED = "TokenExpired"
    INVALIDATED = "TokenInvalidated"
    APP_REMOVED = "AppRemoved"
    PASSWORD_CHANGED = "PasswordChanged"
    CHECKPOINT = "AccountCheckpoint"
    UNREADABLE = "TokenUnreadable"
    PERMISSION_DENIED = "PermissionDenied"
    REJECTED = "TokenRejected"


_SUBCODE_PROBLEMS: Mapping[int, TokenProblem] = {
    458: TokenProblem.APP_REMOVED,
    459: TokenProblem.CHECKPOINT,
    460: TokenProblem.PASSWORD_CHANGED,
    463: TokenProblem.EXPIRED,
    464: TokenProblem.CHECKPOINT,  # unconfirmed user: the user must act on facebook.com
    467: TokenProblem.INVALIDATED,
}


def token_problem(code: int, subcode: int | None) -> TokenProblem:
    """The token-level reason for a credential-class error."""
    if code == 190:
        if subcode is None:
            return TokenProblem.UNREADABLE
        return _SUBCODE_PROBLEMS.get(subcode, TokenProblem.REJECTED)
    if code == 10 or 200 <= code < 300:
        return TokenProblem.PERMISSION_DENIED
    if code in (102, 104):
        return TokenProblem.UNREADABLE
    return TokenProblem.REJECTED


class GraphError(Exception):
    """Base of everything the Graph API client raises. Messages never contain tokens."""


class GraphUnavailable(GraphError):
    """The Graph API could not be reached or did not answer usably (network, timeout, 5xx)."""

    def __init__(self, message: str, *, maybe_sent: bool = False) -> None:
        super().__init__(message)
        # True when the request may have reached Meta (a timeout after sending): a retry of a
        # message send may then deliver twice.
        self.maybe_sent = maybe_sent


@dataclass(frozen=True)
class GraphApiErrorInfo:
    code: int
    subcode: int | None
    type: str
    message: str
    details: str | None
    fbtrace_id: str | None
    http_status: int


class GraphApiError(GraphError):
    """Meta answered with its error envelope."""

    def __init__(self, info: GraphApiErrorInfo) -> None:
        sub = f"/{info.subcode}" if info.subcode is not None else ""
        super().__init__(f"Graph API error {info.code}{sub}: {info.message}")
        self.info = info
        self.classification = classify(info.code)

    @property
    def code(self) -> int:
        return self.info.code

    @property
    def subcode(self) -> int | None:
        return self.info.subcode


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def parse_error_envelope(
    payload: Any, http_status: int, redact: tuple[str, ...] = ()
) -> GraphApiErrorInfo | None:
    """Read Meta's `{"error": {...}}` envelope; None if the payload is not one.

    `redact` lists strings (tokens, app secrets) that must not survive into the message, in
    case Meta (or a proxy) echoes them back.
    """
    if not isinstance(payload, Mapping):
        return None
    error = payload.get("error")
    if not isinstance(error, Mapping):
        return None
    code = _as_int(error.get("code"))
    if code is None:
        return None
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, Mapping) else None
    return GraphApiErrorInfo(
        code=code,
        subcode=_as_int(error.get("error_subcode")),
        type=str(error.get("type", "")),
        message=scrub(str(error.get("message", "")), redact)[:500],
        details=scrub(str(details), redact)[:1000] if details is not None else None,
        fbtrace_id=str(error["fbtrace_id"]) if "fbtrace_id" in error else None,
        http_status=http_status,
    )


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """Replace each secret occurring in text by a marker."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[REDACTED]")
    return text
