"""Meta blocked a tenant's number or account: the `SendingBlocked` condition. Pure.

A worker that gets one of `errors.TENANT_BLOCKED_CODES` at send time holds the number's
messages and signals the operator (`sending_blocked`, whatsapp_contract.signals). The tenant's
next pass turns the signal into a `Block`, kept in `status.sendingBlock` (a restart keeps
it), reported as `SendingBlocked=True` and `Ready=False/SendingBlocked`, and published to the
workers as the tenant's `blocked_code`. A later live check that finds the token valid and the
number able to send (`health_status.can_send_message` AVAILABLE or LIMITED) lifts it.

A `credential_rejected` signal asks for a live check of the tenant's token, unless the token
was replaced since (`wants_recheck`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from whatsapp_contract.signals import TenantSignal
from whatsapp_graph.errors import TENANT_BLOCKED_CODES
from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.conditions import Condition, Reason
from whatsapp_operator.model.facts import PhoneFacts, Verdict

STATUS_KEY = "sendingBlock"
HEALTHY = frozenset({"AVAILABLE", "LIMITED"})  # health_status.can_send_message
_REASONS = {
    368: Reason.ACCOUNT_RESTRICTED,
    130497: Reason.COUNTRY_RESTRICTED,
    131031: Reason.ACCOUNT_LOCKED,
    131037: Reason.DISPLAY_NAME_NOT_APPROVED,
    131042: Reason.PAYMENT_ISSUE,
    131045: Reason.CERTIFICATE_INVALID,
    131048: Reason.SPAM_RATE_LIMIT,
    131064: Reason.ACCOUNT_ENFORCEMENT,
    133010: Reason.NUMBER_NOT_REGISTERED,
}
# The credential reasons of TokenValid: a token already known refused is not asked about again
# (the circuit breaker of schedule.py) because a worker saw it refused too.
_REFUSED = frozenset(
    {
        Reason.TOKEN_EXPIRED, Reason.TOKEN_INVALIDATED, Reason.APP_REMOVED,
        Reason.PASSWORD_CHANGED, Reason.ACCOUNT_CHECKPOINT, Reason.TOKEN_UNREADABLE,
        Reason.TOKEN_REJECTED, Reason.PERMISSION_DENIED,
    }
)  # fmt: skip


def block_reason(code: int) -> str:
    """The SendingBlocked reason for Meta's code: a name, or `MetaError<code>`."""
    return _REASONS.get(code, f"MetaError{code}")


@dataclass(frozen=True)
class Pending:
    """What the workers reported about a tenant since its last pass (registry.post_signal)."""

    refused: frozenset[str] = frozenset()  # fingerprints of tokens Meta refused at send time
    blocked: TenantSignal | None = None  # the latest sending_blocked signal

    def add(self, signal: TenantSignal) -> Pending:
        if signal.kind == "sending_blocked":
            return replace(self, blocked=signal)
        return replace(self, refused=self.refused | {signal.token_fingerprint})

    def merge(self, other: Pending) -> Pending:
        """`other` is newer."""
        return Pending(self.refused | other.refused, other.blocked or self.blocked)


def publishable_when(ready_status: str, ready_reason: str) -> bool:
    """Ready, or not Ready only because Meta blocks the number: a blocked tenant stays
    published (with its `blocked_code`) so that its workers hold its messages."""
    return ready_status == "True" or ready_reason == Reason.SENDING_BLOCKED


def publishable(status: Mapping[str, Any]) -> bool:
    """`publishable_when`, read from a tenant's status."""
    ready = c.find(status.get("conditions") or (), c.READY) or {}
    return publishable_when(str(ready.get("status", "")), str(ready.get("reason", "")))


def blocked_code(status: Mapping[str, Any]) -> int | None:
    """The code to publish for the workers while the number is blocked."""
    block = Block.from_status(status.get(STATUS_KEY))
    return block.code if block is not None else None


def wants_recheck(pending: Pending | None, fingerprint: str, status: Mapping[str, Any]) -> bool:
    """A worker saw the tenant's current token refused: check it live now, unless the status
    already says Meta refused this very token."""
    if pending is None or fingerprint not in pending.refused:
        return False  # no signal, or one about a token replaced since
    verdict = c.find(status.get("conditions") or (), c.TOKEN_VALID) or {}
    known = (status.get("token") or {}).get("fingerprint") == fingerprint
    return not (known and verdict.get("status") == "False" and verdict.get("reason") in _REFUSED)


@dataclass(frozen=True)
class Block:
    code: int
    since: datetime
    phone_number_id: str
    detail: str = ""  # Meta's message, as the worker scrubbed it
    subcode: int | None = None
    last_check: str = ""  # what the latest live check found, while still blocked

    @property
    def reason(self) -> str:
        return block_reason(self.code)

    def describe(self) -> str:
        code = f"{self.code}/{self.subcode}" if self.subcode is not None else str(self.code)
        text = f"Meta blocked sending from number {self.phone_number_id} (error {code}"
        text += f", {self.reason}" + (f": {self.detail})" if self.detail else ")")
        text += f" since {c.rfc3339(self.since)}; the workers hold its messages"
        return text + (f"; last check: {self.last_check}" if self.last_check else "")

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "since": c.rfc3339(self.since),
            "phoneNumberId": self.phone_number_id,
        }
        extra = {"subcode": self.subcode, "detail": self.detail, "lastCheck": self.last_check}
        return out | {k: v for k, v in extra.items() if v not in (None, "")}

    @classmethod
    def from_status(cls, data: Any) -> Block | None:
        """The block as stored; None when there is none or it is unreadable."""
        if not isinstance(data, Mapping):
            return None
        code, subcode, since = data.get("code"), data.get("subcode"), data.get("since")
        if not isinstance(code, int) or not isinstance(since, str):
            return None
        try:
            when = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            return None
        return cls(
            code, when, str(data.get("phoneNumberId") or ""), str(data.get("detail") or ""),
            subcode if isinstance(subcode, int) else None, str(data.get("lastCheck") or ""),
        )  # fmt: skip


def reported_block(pending: Pending | None, phone_number_id: str, now: datetime) -> Block | None:
    """The block a worker reported for the tenant's number (None: none, another number's, or
    a code that does not block)."""
    signal = pending.blocked if pending is not None else None
    if signal is None or signal.code not in TENANT_BLOCKED_CODES:
        return None
    if signal.phone_number_id != phone_number_id:
        return None  # the tenant moved to another number since
    return Block(signal.code, now, phone_number_id, signal.detail, signal.subcode)


class Check(Protocol):
    """model.facts.CheckResult, as read here."""

    @property
    def token_verdict(self) -> Verdict: ...
    @property
    def phone_verdict(self) -> Verdict: ...
    @property
    def phone(self) -> PhoneFacts | None: ...
    @property
    def transient(self) -> bool: ...


@dataclass(frozen=True)
class Health:
    """What a finished live check found about the token and the number."""

    token_ok: bool
    phone_ok: bool
    can_send_message: str | None = None  # health_status.can_send_message
    number_status: str | None = None  # the number's `status` (CONNECTED, FLAGGED, ...)

    @classmethod
    def of(cls, check: Check) -> Health | None:
        """What a live check found (None: it did not finish: Graph unavailable, throttled)."""
        if check.transient:
            return None
        ok = (check.token_verdict.ok, check.phone_verdict.ok)
        if check.phone is None:
            return cls(*ok)
        return cls(*ok, check.phone.can_send_message, check.phone.status)

    @property
    def healthy(self) -> bool:
        return self.token_ok and self.phone_ok and self.can_send_message in HEALTHY

    def describe(self) -> str:
        if not self.token_ok:
            return "the token is not valid"
        if not self.phone_ok:
            return "the phone number could not be verified"
        if self.can_send_message is None:
            return "Meta did not report the number's health"
        status = f", status {self.number_status}" if self.number_status else ""
        return f"can_send_message {self.can_send_message}{status}"


@dataclass(frozen=True)
class SendingFacts:
    """The pass's view for `judge_block`: the tenant's number and a block reported now."""

    phone_number_id: str
    reported: Block | None = None


@dataclass(frozen=True)
class BlockState:
    block: Block | None  # to store in status.sendingBlock
    condition: Condition | None  # None: the tenant was never blocked (no condition at all)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # type, reason, message


def judge_block(
    status: Mapping[str, Any], facts: SendingFacts | None, health: Health | None, now: datetime
) -> BlockState:
    """The block after this pass: reported now, kept, or lifted by a healthy check."""
    stored = Block.from_status(status.get(STATUS_KEY))
    before = c.find(status.get("conditions") or (), c.SENDING_BLOCKED)
    lifted = ""
    if stored is not None and facts is not None and stored.phone_number_id != facts.phone_number_id:
        stored, lifted = None, f"the tenant's number is now {facts.phone_number_id}"
    block = stored
    reported = facts.reported if facts is not None else None
    if reported is not None:
        if stored is not None and stored.code == reported.code:  # the same block, reported again
            reported = replace(reported, since=stored.since, last_check=stored.last_check)
        block = reported
    elif stored is not None and health is not None and health.healthy:
        block = None
        lifted = (
            f"a check found number {stored.phone_number_id} healthy ({health.describe()}): "
            f"the block by error {stored.code} ({stored.reason}) is lifted"
        )
    elif stored is not None and health is not None:
        block = replace(stored, last_check=health.describe())
    if block is not None:
        cond = Condition(c.SENDING_BLOCKED, "True", block.reason, block.describe())
    elif lifted:
        cond = Condition(c.SENDING_BLOCKED, "False", Reason.SENDING_ALLOWED, lifted)
    elif before is not None:
        cond = Condition(c.SENDING_BLOCKED, "False", Reason.SENDING_ALLOWED, before["message"])
    else:
        return BlockState(None, None)
    return BlockState(block, cond, _events(before, cond))


def _events(before: Mapping[str, Any] | None, cond: Condition) -> list[tuple[str, str, str]]:
    """A Warning when the block starts or its code changes; a Normal one when it lifts."""
    was_blocked = before is not None and before.get("status") == "True"
    if cond.status == "True":
        if was_blocked and before is not None and before.get("reason") == cond.reason:
            return []
        return [("Warning", cond.reason, cond.message)]
    return [("Normal", Reason.SENDING_ALLOWED, cond.message)] if was_blocked else []
