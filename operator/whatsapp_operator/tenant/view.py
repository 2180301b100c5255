"""The typed view of what a pass gathered, the one thing its stages plan from. Pure.

`view_of` reads the facts once: the verdicts of the Secret, the token and the number (this
pass's check, or the stored ones), whether Meta blocks the number, Meta's phone facts (typed,
from the check or the stored status), and `ready`: readiness before the stages, which the
row and the publication go by. `tenant.compose` adds the stages' fragments to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.blocking import (
    BlockState,
    Health,
    SendingFacts,
    judge_block,
    publishable_when,
)
from whatsapp_operator.model.claims import Conflict
from whatsapp_operator.model.conditions import Condition, Reason
from whatsapp_operator.model.facts import (
    USER_TOKEN_ADVICE,
    CheckResult,
    PhoneFacts,
    Verdict,
    not_checked,
)
from whatsapp_operator.model.fragment import AuditNote, Event
from whatsapp_operator.model.secret_data import ResolvedToken, SecretOutcome


@dataclass(frozen=True)
class Facts:
    """What a pass gathered: the spec's generation (and its error, if it is invalid), the
    Secret, a claim conflict, the Graph check if one ran, the status as stored, the clock."""

    generation: int
    spec_error: str  # non-empty: the stored spec could not be understood
    secret: SecretOutcome | None  # None when not looked at (invalid spec)
    conflict: Conflict | None
    check: CheckResult | None  # None: no check ran this time; carry the stored verdicts
    status: Mapping[str, Any]  # as stored
    now: datetime
    grace: timedelta = timedelta(minutes=15)
    sending: SendingFacts | None = None  # the tenant's number, and a block reported now
    app: Verdict | None = None  # AppResolved: its spec.appRef (None: it names no app)


@dataclass(frozen=True)
class View:
    facts: Facts
    secret: Verdict  # SecretResolved
    token: Verdict  # TokenValid
    phone: Verdict  # PhoneNumberVerified
    block: BlockState
    phone_facts: PhoneFacts | None  # what Meta said of the number: now, or when last checked
    ready: Condition  # before the stages: the Secret, the token, the number, a block

    @property
    def resolved_token(self) -> ResolvedToken | None:
        secret = self.facts.secret
        return secret.token if secret is not None else None

    @property
    def publishable(self) -> bool:
        """Ready before the stages, or not only because Meta blocks the number."""
        return publishable_when(self.ready.status, self.ready.reason)

    @property
    def blocked_code(self) -> int | None:
        """The code to publish for the workers while the number is blocked."""
        return self.block.block.code if self.block.block is not None else None

    def ready_with(self, gates: list[Condition]) -> Condition:
        """`Ready` once the stages' gating conditions (Synced) are counted too."""
        return _ready(self.facts, self._checks() + gates, self.block)

    def _checks(self) -> list[Condition]:
        return _checks(self.secret, self.token, self.phone, self.facts.app)

    def conditions(self) -> list[Condition]:
        """SecretResolved, TokenValid, PhoneNumberVerified and SendingBlocked (once known)."""
        blocked = [self.block.condition] if self.block.condition is not None else []
        return self._checks() + blocked

    def phone_status(self) -> dict[str, Any] | None:
        """`status.phone`: this pass's check, or as stored."""
        check = self.facts.check
        if check is not None and check.phone is not None:
            return check.phone.to_status() or None
        stored = self.facts.status.get("phone")
        return dict(stored) if stored else None


def view_of(facts: Facts) -> View:
    secret_v, token_v, phone_v = _verdicts(facts)
    health = Health.of(facts.check) if facts.check is not None else None
    block = judge_block(facts.status, facts.sending, health, facts.now)
    check = facts.check
    phone = check.phone if check is not None and check.phone is not None else None
    phone = phone or PhoneFacts.from_status(facts.status.get("phone"))
    ready = _ready(facts, _checks(secret_v, token_v, phone_v, facts.app), block)
    return View(facts, secret_v, token_v, phone_v, block, phone, ready)


def _checks(
    secret: Verdict, token: Verdict, phone: Verdict, app: Verdict | None = None
) -> list[Condition]:
    """The checks in the order Ready reads them (AppResolved only with spec.appRef)."""
    apps = [] if app is None else [Condition(c.APP_RESOLVED, app.status, app.reason, app.message)]
    return [
        Condition(c.SECRET_RESOLVED, secret.status, secret.reason, secret.message),
        *apps,
        Condition(c.TOKEN_VALID, token.status, token.reason, token.message),
        Condition(c.PHONE_NUMBER_VERIFIED, phone.status, phone.reason, phone.message),
    ]


def _stored_verdict(status: Mapping[str, Any], type_: str) -> Verdict | None:
    found = c.find(status.get("conditions") or (), type_)
    if found is None:
        return None
    return Verdict(found["status"], found.get("reason", ""), found.get("message", ""))


def _verdicts(facts: Facts) -> tuple[Verdict, Verdict, Verdict]:
    """SecretResolved, TokenValid, PhoneNumberVerified."""
    secret = facts.secret
    if secret is None:
        skipped = not_checked("spec is invalid")
        return skipped, skipped, skipped
    secret_v = Verdict("True" if secret.ok else "False", secret.reason, secret.message)
    if not secret.ok:
        why = f"no token to check: {secret.message}"
        return secret_v, not_checked(why), not_checked(why)
    if facts.conflict is not None and not facts.conflict.checks:
        why = f"not checked while {facts.conflict.hold}"
        return secret_v, not_checked(why), not_checked(why)
    if facts.app is not None and not facts.app.ok:
        why = f"not checked without its app: {facts.app.message}"
        return secret_v, not_checked(why), not_checked(why)
    if facts.check is not None:
        return secret_v, facts.check.token_verdict, facts.check.phone_verdict
    token_v = _stored_verdict(facts.status, c.TOKEN_VALID) or not_checked("not checked yet")
    phone_v = _stored_verdict(facts.status, c.PHONE_NUMBER_VERIFIED) or not_checked(
        "not checked yet"
    )
    return secret_v, token_v, phone_v


def _within_grace(facts: Facts, verdict_type: str, new: Verdict) -> bool:
    """A transient failure keeps a Ready tenant Ready until the outage outlasts the grace (and
    a blocked one blocked, not unknown: its workers keep holding its messages)."""
    if not new.transient:
        return False
    ready = c.find(facts.status.get("conditions") or (), c.READY) or {}
    if ready.get("status") != "True" and ready.get("reason") != Reason.SENDING_BLOCKED:
        return False
    stored = c.find(facts.status.get("conditions") or (), verdict_type)
    since = facts.now
    if (
        stored is not None
        and stored.get("status") == "Unknown"
        and stored.get("reason") == new.reason
    ):
        since = datetime.fromisoformat(stored["lastTransitionTime"].replace("Z", "+00:00"))
    return facts.now - since < facts.grace


def _ready(facts: Facts, checks: list[Condition], block: BlockState) -> Condition:
    """The first check that fails decides (a transient one within the grace keeps Ready);
    a tenant otherwise Ready is not while Meta blocks its number."""
    ready = _first_failure(facts, checks)
    if block.block is not None and ready.status == "True":
        return Condition(c.READY, "False", Reason.SENDING_BLOCKED, block.block.describe())
    return ready


def _first_failure(facts: Facts, checks: list[Condition]) -> Condition:
    if facts.spec_error:
        return Condition(c.READY, "False", Reason.INVALID_SPEC, facts.spec_error)
    if facts.conflict is not None:
        return Condition(c.READY, "False", facts.conflict.reason, facts.conflict.message)
    for check in checks:
        verdict = Verdict(check.status, check.reason, check.message)
        if verdict.ok:
            continue
        if _within_grace(facts, check.type, verdict):
            return Condition(
                c.READY,
                "True",
                Reason.READY,
                f"{verdict.message} (still Ready: transient, grace {facts.grace})",
            )
        status: c.Status = "Unknown" if verdict.status == "Unknown" else "False"
        return Condition(c.READY, status, verdict.reason, verdict.message)
    token, phone = (
        next(x for x in checks if x.type == t) for t in (c.TOKEN_VALID, c.PHONE_NUMBER_VERIFIED)
    )
    return Condition(c.READY, "True", Reason.READY, f"{token.message}; {phone.message}")


def token_status(view: View) -> dict[str, Any] | None:
    """`status.token`: what this pass's check found, or as stored for the same token."""
    facts, token = view.facts, view.resolved_token
    if token is None:
        return None
    check = facts.check
    if check is not None and check.checked_at is not None:
        if check.token is not None:
            return check.token.status(token.fingerprint, check.checked_at)
        # Meta refused to describe the token (a 190 on debug_token): still a verdict, dated.
        return {"fingerprint": token.fingerprint, "lastValidatedAt": c.rfc3339(check.checked_at)}
    stored = dict(facts.status.get("token") or {})
    if stored.get("fingerprint") != token.fingerprint:
        return {"fingerprint": token.fingerprint}
    return stored


def audit_notes(view: View) -> list[AuditNote]:
    """What the audit trail records of the facts: the token replaced, a verdict changed. Not
    every routine check: that would be noise, not an audit."""
    facts, token = view.facts, view.resolved_token
    fp = token.fingerprint if token is not None else None
    stored_fp = (facts.status.get("token") or {}).get("fingerprint")
    notes = []
    if fp and stored_fp and fp != stored_fp:
        notes.append(AuditNote("rotated", fp, f"token in the Secret replaced (was {stored_fp})"))
    check = facts.check
    if check is not None and check.checked_at is not None and not check.transient:
        before = _stored_verdict(facts.status, c.TOKEN_VALID)
        now = check.token_verdict
        if before is None or (before.status, before.reason) != (now.status, now.reason):
            notes.append(AuditNote("validated", fp, f"TokenValid={now.status} ({now.reason})"))
    return notes


def user_token_events(view: View) -> list[Event]:
    """A Warning when a check first finds a user token (not on every check: the stored
    status.token.type says what the last one found)."""
    check = view.facts.check
    if check is None or check.token is None or check.token.type != "USER":
        return []
    if (view.facts.status.get("token") or {}).get("type") == "USER":
        return []
    return [Event("Warning", Reason.USER_TOKEN, f"the token is a user token: {USER_TOKEN_ADVICE}")]
