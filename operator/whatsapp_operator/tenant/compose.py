"""Gather -> decide -> apply: the decide step, as a pure function.

`decide` turns everything the reconcile gathered (spec, Secret outcome, ownership, the Graph
check if one ran, the status as stored) into the status to store and the Events to post.
Nothing here does I/O or reads a clock; the reconcile passes `now` in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.blocking import STATUS_KEY, Health, SendingFacts, judge_block
from whatsapp_operator.model.claims import Conflict
from whatsapp_operator.model.conditions import Condition, Reason
from whatsapp_operator.model.facts import (
    USER_TOKEN_ADVICE,
    PhoneFacts,
    TokenFacts,
    Verdict,
    not_checked,
)
from whatsapp_operator.model.secret_data import SecretOutcome
from whatsapp_operator.tokens.rotation import RotationInputs


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one Graph API check of a tenant's token and phone number."""

    token_verdict: Verdict
    phone_verdict: Verdict
    token: TokenFacts | None = None
    phone: PhoneFacts | None = None
    checked_at: datetime | None = None

    @property
    def transient(self) -> bool:
        return self.token_verdict.transient or self.phone_verdict.transient


@dataclass(frozen=True)
class SyncResult:
    """The outcome of keeping the tenant's Postgres row in sync (see sync.py)."""

    status: c.Status
    reason: str
    message: str
    row_id: int | None = None
    wrote: bool = False
    at: datetime | None = None  # when the row was last written by this sync (None: no write)
    drift_columns: tuple[str, ...] = ()
    adopted: bool = False

    @property
    def transient(self) -> bool:
        return self.reason == Reason.DATABASE_UNAVAILABLE

    @classmethod
    def synced(
        cls,
        row_id: int,
        *,
        wrote: bool,
        at: datetime | None,
        drift_columns: tuple[str, ...] = (),
        adopted: bool = False,
    ) -> SyncResult:
        # The message must not depend on whether this pass wrote, or the status would change
        # again on the next pass (status.database.syncedAt records the writes).
        return cls(
            "True",
            Reason.SYNCED,
            f"row {row_id} of tenant_whatsapp_config matches the cluster",
            row_id,
            wrote,
            at,
            drift_columns,
            adopted,
        )

    @classmethod
    def unavailable(cls, message: str) -> SyncResult:
        return cls("False", Reason.DATABASE_UNAVAILABLE, f"PostgreSQL unavailable: {message}")

    @classmethod
    def failed(cls, reason: str, message: str, row_id: int | None = None) -> SyncResult:
        return cls("False", reason, message, row_id)

    @classmethod
    def skipped(cls, message: str) -> SyncResult:
        return cls("Unknown", Reason.NOT_SYNCED, message)


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Inputs:
    generation: int
    spec_error: str  # non-empty: the stored spec could not be understood
    secret: SecretOutcome | None  # None when not looked at (invalid spec)
    conflict: Conflict | None
    check: CheckResult | None  # None: no check ran this time; carry the stored verdicts
    status: Mapping[str, Any]  # as stored
    now: datetime
    grace: timedelta = timedelta(minutes=15)
    sync: SyncResult | None = None  # None: PostgreSQL sync is not configured
    token_storage: str = "encrypted"
    rotation: RotationInputs | None = None
    api_version: Condition | None = None
    published: Mapping[str, str] | None = None  # where the resolved config carries it
    sending: SendingFacts | None = None  # the tenant's number, and a block reported now


@dataclass(frozen=True)
class AuditNote:
    """An entry for the audit trail (audit.py): an event name, a fingerprint, a detail."""

    event: str
    fingerprint: str | None
    detail: str


@dataclass(frozen=True)
class Decision:
    status: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    audit: list[AuditNote] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        ready = c.find(self.status.get("conditions", ()), c.READY)
        return ready is not None and ready.get("status") == "True"


def _stored_verdict(status: Mapping[str, Any], type_: str) -> Verdict | None:
    found = c.find(status.get("conditions") or (), type_)
    if found is None:
        return None
    return Verdict(found["status"], found.get("reason", ""), found.get("message", ""))


def _within_grace(inputs: Inputs, verdict_type: str, new: Verdict) -> bool:
    """A transient failure keeps a Ready tenant Ready until the outage outlasts the grace (and
    a blocked one blocked, not unknown: its workers keep holding its messages)."""
    if not new.transient:
        return False
    ready = c.find(inputs.status.get("conditions") or (), c.READY) or {}
    if ready.get("status") != "True" and ready.get("reason") != Reason.SENDING_BLOCKED:
        return False
    stored = c.find(inputs.status.get("conditions") or (), verdict_type)
    since = inputs.now
    if (
        stored is not None
        and stored.get("status") == "Unknown"
        and stored.get("reason") == new.reason
    ):
        since = datetime.fromisoformat(stored["lastTransitionTime"].replace("Z", "+00:00"))
    return inputs.now - since < inputs.grace


def _verdicts(inputs: Inputs) -> tuple[Verdict, Verdict, Verdict]:
    """SecretResolved, TokenValid, PhoneNumberVerified."""
    secret = inputs.secret
    if secret is None:
        skipped = not_checked("spec is invalid")
        return skipped, skipped, skipped
    secret_v = Verdict("True" if secret.ok else "False", secret.reason, secret.message)
    if not secret.ok:
        why = f"no token to check: {secret.message}"
        return secret_v, not_checked(why), not_checked(why)
    if inputs.conflict is not None:
        why = f"not checked while {inputs.conflict.owner.ref} owns this tenant's ids"
        return secret_v, not_checked(why), not_checked(why)
    if inputs.check is not None:
        return secret_v, inputs.check.token_verdict, inputs.check.phone_verdict
    token_v = _stored_verdict(inputs.status, c.TOKEN_VALID) or not_checked("not checked yet")
    phone_v = _stored_verdict(inputs.status, c.PHONE_NUMBER_VERIFIED) or not_checked(
        "not checked yet"
    )
    return secret_v, token_v, phone_v


def _ready(inputs: Inputs, secret_v: Verdict, token_v: Verdict, phone_v: Verdict) -> Condition:
    if inputs.spec_error:
        return Condition(c.READY, "False", Reason.INVALID_SPEC, inputs.spec_error)
    if inputs.conflict is not None:
        return Condition(c.READY, "False", inputs.conflict.reason, inputs.conflict.message)
    checks = [
        (c.SECRET_RESOLVED, secret_v),
        (c.TOKEN_VALID, token_v),
        (c.PHONE_NUMBER_VERIFIED, phone_v),
    ]
    if inputs.sync is not None:
        sync = inputs.sync
        checks.append((c.SYNCED, Verdict(sync.status, sync.reason, sync.message)))
    for type_, verdict in checks:
        if verdict.ok:
            continue
        if _within_grace(inputs, type_, verdict):
            return Condition(
                c.READY,
                "True",
                Reason.READY,
                f"{verdict.message} (still Ready: transient, grace {inputs.grace})",
            )
        status: c.Status = "Unknown" if verdict.status == "Unknown" else "False"
        return Condition(c.READY, status, verdict.reason, verdict.message)
    return Condition(c.READY, "True", Reason.READY, f"{token_v.message}; {phone_v.message}")


def _token_status(inputs: Inputs) -> dict[str, Any] | None:
    secret = inputs.secret
    if secret is None or secret.token is None:
        return None
    check = inputs.check
    if check is not None and check.checked_at is not None:
        if check.token is not None:
            return check.token.status(secret.token.fingerprint, check.checked_at)
        # Meta refused to describe the token (a 190 on debug_token): still a verdict, dated.
        return {
            "fingerprint": secret.token.fingerprint,
            "lastValidatedAt": c.rfc3339(check.checked_at),
        }
    stored = dict(inputs.status.get("token") or {})
    if stored.get("fingerprint") != secret.token.fingerprint:
        return {"fingerprint": secret.token.fingerprint}
    return stored


def decide(inputs: Inputs) -> Decision:
    secret_v, token_v, phone_v = _verdicts(inputs)
    ready = _ready(inputs, secret_v, token_v, phone_v)
    health = Health.of(inputs.check) if inputs.check is not None else None
    blocked = judge_block(inputs.status, inputs.sending, health, inputs.now)
    if blocked.block is not None and ready.status == "True":
        ready = Condition(c.READY, "False", Reason.SENDING_BLOCKED, blocked.block.describe())
    updates = [
        Condition(c.SECRET_RESOLVED, secret_v.status, secret_v.reason, secret_v.message),
        Condition(c.TOKEN_VALID, token_v.status, token_v.reason, token_v.message),
        Condition(c.PHONE_NUMBER_VERIFIED, phone_v.status, phone_v.reason, phone_v.message),
        *([blocked.condition] if blocked.condition is not None else []),
        ready,
    ]
    sync = inputs.sync
    if sync is not None:
        updates.insert(-1, Condition(c.SYNCED, sync.status, sync.reason, sync.message))
    warnings = [w for w in (_rotation_condition(inputs), inputs.api_version) if w is not None]
    updates[-1:-1] = warnings
    status: dict[str, Any] = {
        "observedGeneration": inputs.generation,
        "conditions": c.merge(
            inputs.status.get("conditions") or (),
            updates,
            generation=inputs.generation,
            now=inputs.now,
        ),
    }
    phone = (
        inputs.check.phone.to_status()
        if inputs.check is not None and inputs.check.phone is not None
        else inputs.status.get("phone")
    )
    if phone:
        status["phone"] = dict(phone)
    token = _token_status(inputs)
    if token:
        status["token"] = token
    database = _database_status(inputs)
    if database:
        status["database"] = database
    if inputs.published:
        status["published"] = dict(inputs.published)
    if blocked.block is not None:
        status[STATUS_KEY] = blocked.block.to_status()
    rotation = inputs.rotation
    if rotation is not None:
        renewal = rotation.renewal()
        if token and renewal is not None:
            token["renewalTime"] = c.rfc3339(renewal)
        if rotation.strategy == "Refresh" or inputs.status.get("rotation"):
            status["rotation"] = rotation.state.to_status()
    events = _events(inputs.status, ready) + _sync_events(inputs.sync) + _user_token(inputs)
    for warning in warnings:
        events += _warning_events(inputs.status, warning)
    events += [Event(*event) for event in blocked.events]
    return Decision(status, events + _rotation_events(rotation), _audit_notes(inputs))


def _audit_notes(inputs: Inputs) -> list[AuditNote]:
    """What the audit trail records of this pass: token replaced, a verdict changed, a
    refresh, a revocation. Not every routine check: that would be noise, not an audit."""
    token = inputs.secret.token if inputs.secret is not None else None
    fp = token.fingerprint if token is not None else None
    stored_fp = (inputs.status.get("token") or {}).get("fingerprint")
    notes = []
    if fp and stored_fp and fp != stored_fp:
        notes.append(AuditNote("rotated", fp, f"token in the Secret replaced (was {stored_fp})"))
    check = inputs.check
    if check is not None and check.checked_at is not None and not check.transient:
        before = _stored_verdict(inputs.status, c.TOKEN_VALID)
        now = check.token_verdict
        if before is None or (before.status, before.reason) != (now.status, now.reason):
            notes.append(AuditNote("validated", fp, f"TokenValid={now.status} ({now.reason})"))
    rotation = inputs.rotation
    if rotation is not None and rotation.outcome is not None:
        outcome = rotation.outcome
        event = "refreshed" if outcome.ok else "refresh_failed"
        notes.append(AuditNote(event, outcome.previous_fingerprint or fp, outcome.message))
    if rotation is not None and rotation.retired and "revoked" in rotation.retired:
        previous = (inputs.status.get("rotation") or {}).get("previousTokenFingerprint")
        notes.append(AuditNote("revoked", previous, rotation.retired))
    return notes


def _rotation_condition(inputs: Inputs) -> Condition | None:
    if inputs.rotation is None:
        return None
    return inputs.rotation.condition(inputs.now)


def _warning_events(stored: Mapping[str, Any], cond: Condition) -> list[Event]:
    """Warning conditions (TokenRotation, ApiVersionSupported): an Event when one turns
    False with a new reason."""
    before = c.find(stored.get("conditions") or (), cond.type)
    if cond.status != "False" or cond.reason == Reason.REFRESH_FAILED:
        return []  # refresh failures get their own Event per attempt
    if before is not None and before.get("reason") == cond.reason:
        return []
    return [Event("Warning", cond.reason, cond.message)]


def _user_token(inputs: Inputs) -> list[Event]:
    """A Warning when a check first finds a user token (not on every check: the stored
    status.token.type says what the last one found)."""
    check = inputs.check
    if check is None or check.token is None or check.token.type != "USER":
        return []
    if (inputs.status.get("token") or {}).get("type") == "USER":
        return []
    return [Event("Warning", Reason.USER_TOKEN, f"the token is a user token: {USER_TOKEN_ADVICE}")]


def _rotation_events(rotation: RotationInputs | None) -> list[Event]:
    if rotation is None:
        return []
    events = []
    if rotation.outcome is not None:
        if rotation.outcome.ok:
            events.append(Event("Normal", Reason.TOKEN_REFRESHED, rotation.outcome.message))
        else:
            events.append(Event("Warning", Reason.REFRESH_FAILED, rotation.outcome.message))
    if rotation.retired:
        events.append(Event("Normal", Reason.PREVIOUS_TOKEN_RETIRED, rotation.retired))
    return events


def _database_status(inputs: Inputs) -> dict[str, Any] | None:
    sync = inputs.sync
    stored = dict(inputs.status.get("database") or {})
    if sync is None:
        return None
    if sync.row_id is not None:
        stored["rowId"] = sync.row_id
    if sync.at is not None:
        stored["syncedAt"] = c.rfc3339(sync.at)
    stored["tokenStorage"] = inputs.token_storage
    return stored


def _sync_events(sync: SyncResult | None) -> list[Event]:
    if sync is None:
        return []
    events = []
    if sync.drift_columns:
        events.append(
            Event(
                "Warning",
                Reason.DRIFT_REPAIRED,
                f"row {sync.row_id} was changed outside the operator; restored columns: "
                + ", ".join(sync.drift_columns),
            )
        )
    if sync.adopted:
        events.append(Event("Normal", Reason.ROW_ADOPTED, f"adopted existing row {sync.row_id}"))
    return events


def _events(stored: Mapping[str, Any], ready: Condition) -> list[Event]:
    """Events on transitions only: a restart or a no-op reconcile posts nothing."""
    before = c.find(stored.get("conditions") or (), c.READY)
    if before is not None and (before.get("status"), before.get("reason")) == (
        ready.status,
        ready.reason,
    ):
        return []
    if ready.status == "True":
        return [Event("Normal", Reason.READY, ready.message)]
    return [Event("Warning", ready.reason, ready.message)]
