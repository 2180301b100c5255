"""The one decision of a pass: status, Events, audit entries and `Ready`, composed from the
view of the facts and the stages' fragments. Pure: no I/O, no clock (the facts carry `now`).

Conditions keep one order: SecretResolved, TokenValid, PhoneNumberVerified, SendingBlocked,
the gating conditions (Synced), the warnings (TokenRotation, ApiVersionSupported), Ready.
Events are posted on transitions only: a restart or a no-op pass posts nothing.

`decide` is the same composition from a flat `Inputs` (what each stage returned), for the
table-driven tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.blocking import STATUS_KEY, SendingFacts
from whatsapp_operator.model.claims import Conflict
from whatsapp_operator.model.conditions import Condition, Reason
from whatsapp_operator.model.facts import CheckResult, Verdict
from whatsapp_operator.model.fragment import Decision, Event, Fragment
from whatsapp_operator.model.health import health_fragment
from whatsapp_operator.model.notices import Notice
from whatsapp_operator.model.secret_data import SecretOutcome
from whatsapp_operator.pools.publication import published_fragment
from whatsapp_operator.postgres.outcome import SyncResult, sync_fragment
from whatsapp_operator.tenant.view import (
    Facts,
    View,
    audit_notes,
    token_status,
    user_token_events,
    view_of,
)
from whatsapp_operator.tokens.rotation import RotationInputs, rotation_fragment


def compose(
    view: View,
    *,
    rotation: Fragment | None = None,
    row: Fragment | None = None,
    publication: Fragment | None = None,
    api_version: Condition | None = None,
    health: Fragment | None = None,
) -> Decision:
    facts = view.facts
    stages = [f for f in (row, rotation, publication) if f is not None]
    gates = [f.condition for f in stages if f.gates_ready and f.condition is not None]
    warnings = [f.condition for f in stages if not f.gates_ready and f.condition is not None]
    warnings += [api_version] if api_version is not None else []
    # AccountHealthy (model/health.py): beside Ready, or gating it (a disabled account)
    account = [health.condition] if health is not None and health.condition is not None else []
    ready = view.ready_with(gates + (account if health is not None and health.gates_ready else []))
    status: dict[str, Any] = {
        "observedGeneration": facts.generation,
        "conditions": c.merge(
            _without_app(facts),
            [*view.conditions(), *gates, *warnings, *account, ready],
            generation=facts.generation,
            now=facts.now,
        ),
    }
    if phone := view.phone_status():
        status["phone"] = phone
    token = token_status(view)
    if token:
        status["token"] = token
        for stage in stages:
            token.update(stage.token)
    for part in (row, publication):
        status.update(part.status if part is not None else {})
    if view.block.block is not None:
        status[STATUS_KEY] = view.block.block.to_status()
    status.update(rotation.status if rotation is not None else {})
    status.update(health.status if health is not None else {})
    gated = [e for f in stages if f.gates_ready for e in f.events]
    events = _ready_events(facts.status, ready) + gated
    events += user_token_events(view)
    for warning in warnings:
        events += _warning_events(facts.status, warning)
    events += [Event(*event) for event in view.block.events]
    events += [e for f in stages if not f.gates_ready for e in f.events]
    events += list(health.events) if health is not None else []  # one per notice that changed
    audit = audit_notes(view) + [note for f in stages for note in f.audit]
    return Decision(status, events, audit)


def _without_app(facts: Facts) -> list[Mapping[str, Any]]:
    """The stored conditions; AppResolved left out once the tenant names no app."""
    stored = facts.status.get("conditions") or ()
    return [x for x in stored if facts.app is not None or x.get("type") != c.APP_RESOLVED]


def _warning_events(stored: Mapping[str, Any], cond: Condition) -> list[Event]:
    """Warning conditions (TokenRotation, ApiVersionSupported): an Event when one turns
    False with a new reason."""
    before = c.find(stored.get("conditions") or (), cond.type)
    if cond.status != "False" or cond.reason == Reason.REFRESH_FAILED:
        return []  # refresh failures get their own Event per attempt
    if before is not None and before.get("reason") == cond.reason:
        return []
    return [Event("Warning", cond.reason, cond.message)]


def _ready_events(stored: Mapping[str, Any], ready: Condition) -> list[Event]:
    """An Event when Ready changes (status or reason)."""
    before = c.find(stored.get("conditions") or (), c.READY)
    if before is not None and (before.get("status"), before.get("reason")) == (
        ready.status,
        ready.reason,
    ):
        return []
    if ready.status == "True":
        return [Event("Normal", Reason.READY, ready.message)]
    return [Event("Warning", ready.reason, ready.message)]


@dataclass(frozen=True)
class Inputs:
    """The facts of a pass and what each of its stages returned, flat."""

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
    notices: tuple[Notice, ...] = ()  # Meta's notices since the last pass
    tenant_id: str | None = None  # the tenant's id (notices about another are ignored)
    app: Verdict | None = None  # AppResolved (spec.appRef), None: the tenant names no app

    def facts(self) -> Facts:
        return Facts(
            self.generation, self.spec_error, self.secret, self.conflict, self.check,
            self.status, self.now, self.grace, self.sending, self.app,
        )  # fmt: skip


def decide(inputs: Inputs) -> Decision:
    """The decision of a pass whose stages returned `inputs`' results."""
    view = view_of(inputs.facts())
    token = view.resolved_token
    fingerprint = token.fingerprint if token is not None else None
    rotation = inputs.rotation
    return compose(
        view,
        rotation=(
            rotation_fragment(rotation, inputs.status, inputs.now, fingerprint)
            if rotation is not None
            else None
        ),
        row=(
            sync_fragment(inputs.sync, inputs.status, inputs.token_storage)
            if inputs.sync is not None
            else None
        ),
        publication=published_fragment(inputs.published),
        api_version=inputs.api_version,
        health=health_fragment(
            inputs.status,
            inputs.notices,
            tenant_id=inputs.tenant_id,
            phone=view.phone_facts,
            now=inputs.now,
        ),
    )
