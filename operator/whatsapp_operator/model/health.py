"""Account and number health from Meta's notices: `status.health`, `AccountHealthy`. Pure.

The webhook receiver hands the operator Meta's account-level webhooks for each tenant
(model/notices.py). A tenant's pass takes the notices that arrived since its last pass,
applies them in order to the health stored in `status.health` (health_state.py: a restarted
operator keeps it) and reports (`health_fragment`):
- `status.health`: the quality rating (from the number's last Graph check: Meta's quality
  webhook carries none), the last quality event and messaging-limit tier, the account's
  restrictions, ban state and last violation, the display name's review, the capabilities,
  the templates counted by status (each template counted once, by its id: a repeated or
  redelivered notice changes nothing) and the last notice;
- `AccountHealthy` (`judge`): True/Healthy, else the first of AccountDeleted, AccountDisabled,
  AccountRestricted, AccountDisableScheduled, QualityLow, NumberFlagged. Only AccountDeleted
  and AccountDisabled make `Ready` False: the others are warnings beside it;
- one Event per notice that changed something (Warning when it is bad news), none for a
  repeat; a copy of a notice applied lately (redelivered by the broker or by Meta:
  notice_ids.py, `status.health.recentNotices`) is not applied again.

Notices about another tenant (a tenant id that is not this tenant's) and quality or name
notices about another number of the WABA (by `display_phone_number`, when the tenant's display
number is known) are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.conditions import Condition
from whatsapp_operator.model.facts import PhoneFacts
from whatsapp_operator.model.fragment import Event, Fragment
from whatsapp_operator.model.health_state import MAX_TEMPLATES, STATUS_KEY, Health
from whatsapp_operator.model.notice_ids import is_repeat, remember
from whatsapp_operator.model.notices import (
    Notice,
    Restriction,
    digits,
    read_account,
    read_capabilities,
    read_name,
    read_quality,
    read_template,
)

_TEMPLATE_STATUS = {"REINSTATED": "APPROVED"}  # Meta: "can be sent in template messages again"
_TEMPLATE_WARNINGS = frozenset(
    {"REJECTED", "PAUSED", "DISABLED", "FLAGGED", "LIMIT_EXCEEDED", "PENDING_DELETION"}
)


class HealthReason:
    """AccountHealthy's reasons (and the Events' that are not Meta's words CamelCased)."""

    HEALTHY = "Healthy"
    ACCOUNT_DELETED = "AccountDeleted"  # account_update ACCOUNT_DELETED
    ACCOUNT_DISABLED = "AccountDisabled"  # DISABLED_UPDATE, waba_ban_state DISABLE
    ACCOUNT_RESTRICTED = "AccountRestricted"  # ACCOUNT_RESTRICTION, until it expires
    ACCOUNT_DISABLE_SCHEDULED = "AccountDisableScheduled"  # waba_ban_state SCHEDULE_FOR_DISABLE
    QUALITY_LOW = "QualityLow"  # the number's quality_rating is RED (Graph check)
    NUMBER_FLAGGED = "NumberFlagged"  # phone_number_quality_update FLAGGED, until another event


FALSE: c.Status = "False"
GATING = frozenset({HealthReason.ACCOUNT_DELETED, HealthReason.ACCOUNT_DISABLED})
_QUALITY_EVENTS = {
    "FLAGGED": ("Warning", HealthReason.NUMBER_FLAGGED),
    "UNFLAGGED": ("Normal", "NumberUnflagged"),
    "DOWNGRADE": ("Warning", "MessagingLimitDowngraded"),
    "UPGRADE": ("Normal", "MessagingLimitUpgraded"),
    "THROUGHPUT_UPGRADE": ("Normal", "ThroughputUpgraded"),
    "ONBOARDING": ("Normal", "NumberOnboarding"),
}
_BAN_EVENTS = {
    "DISABLE": ("Warning", HealthReason.ACCOUNT_DISABLED),
    "SCHEDULE_FOR_DISABLE": ("Warning", HealthReason.ACCOUNT_DISABLE_SCHEDULED),
    "REINSTATE": ("Normal", "AccountReinstated"),
}
_ACCOUNT_WARNINGS = frozenset(
    {"ACCOUNT_DELETED", "ACCOUNT_OFFBOARDED", "PARTNER_REMOVED", "PARTNER_APP_UNINSTALLED"}
)
_WORD = re.compile(r"^[A-Z][A-Z0-9_]{0,60}$")


def camel(word: str | None, default: str) -> str:
    """Meta's `UPPER_CASE` word as an Event reason (`PENDING_DELETION` -> `PendingDeletion`)."""
    if word is None or not _WORD.match(word):
        return default
    return "".join(part.capitalize() for part in word.split("_") if part)


# --- one notice ---------------------------------------------------------------------------
Change = tuple[Health, Event | None]  # the health after the notice, the Event it would post


def _quality(health: Health, value: Mapping[str, Any]) -> Change:
    q = read_quality(value)
    new = replace(
        health,
        quality_event=q.event or health.quality_event,
        messaging_limit_tier=q.limit or health.messaging_limit_tier,
    )
    type_, reason = _QUALITY_EVENTS.get(q.event or "", ("Normal", "PhoneNumberQualityUpdate"))
    limit = f"; messaging limit {q.limit}" if q.limit else ""
    limit += f" (was {q.old_limit})" if q.limit and q.old_limit else ""
    number = q.display_phone_number or "(not named)"
    message = f"Meta: phone_number_quality_update {q.event or '(no event)'} for number {number}"
    return new, Event(type_, reason, message + limit)


def _account(health: Health, value: Mapping[str, Any]) -> Change:
    a = read_account(value)
    new = replace(health, account_event=a.event or health.account_event)
    if a.ban_state is not None:
        new = replace(new, ban_state=a.ban_state, ban_date=a.ban_date)
    if a.restrictions is not None:
        new = replace(new, restrictions=a.restrictions)
    if a.violation_type is not None:
        new = replace(new, violation_type=a.violation_type)
    if a.event == "ACCOUNT_DELETED":
        new = replace(new, account_deleted=True)
    if a.event == "DISABLED_UPDATE":
        type_, reason = _BAN_EVENTS.get(a.ban_state or "", ("Warning", "DisabledUpdate"))
    elif a.event == "ACCOUNT_RESTRICTION":
        type_, reason = "Warning", HealthReason.ACCOUNT_RESTRICTED
    elif a.event == "ACCOUNT_VIOLATION":
        type_, reason = "Warning", "AccountViolation"
    else:
        warning = a.event in _ACCOUNT_WARNINGS
        type_, reason = "Warning" if warning else "Normal", camel(a.event, "AccountUpdate")
    details = [f"ban state {a.ban_state}" if a.ban_state else ""]
    details.append(f"date {a.ban_date}" if a.ban_date else "")
    details.append(f"violation {a.violation_type}" if a.violation_type else "")
    if a.restrictions is not None:
        details.append("restrictions: " + (_describe(a.restrictions) or "none"))
    detail = "; ".join(d for d in details if d)
    message = f"Meta: account_update {a.event or '(no event)'}" + (f" ({detail})" if detail else "")
    return new, Event(type_, reason, message)


def _describe(restrictions: Iterable[Restriction]) -> str:
    return ", ".join(
        r.type + (f" until {r.expiration}" if r.expiration else "") for r in restrictions
    )


def _name(health: Health, value: Mapping[str, Any]) -> Change:
    n = read_name(value)
    if n.decision is None:
        return health, None
    new = replace(health, name_status=n.decision, name_rejection_reason=n.rejection_reason)
    type_ = "Warning" if n.decision == "REJECTED" else "Normal"
    reason = "DisplayName" + camel(n.decision, "Update")
    message = f"Meta: phone_number_name_update {n.decision}"
    message += f" for the name {n.requested_name!r}" if n.requested_name else ""
    message += f" (reason {n.rejection_reason})" if n.rejection_reason else ""
    return new, Event(type_, reason, message)


def _capabilities(health: Health, value: Mapping[str, Any]) -> Change:
    found = read_capabilities(value)
    if not found:
        return health, None
    merged = dict(health.capabilities) | found
    new = replace(health, capabilities=tuple(sorted(merged.items())))
    listed = ", ".join(f"{k}={v}" for k, v in sorted(found.items()))
    return new, Event("Normal", "BusinessCapabilityUpdate", f"Meta: capabilities {listed}")


def _template(health: Health, value: Mapping[str, Any]) -> Change:
    t = read_template(value)
    if t.template_id is None or t.event is None:
        return health, None
    status = _TEMPLATE_STATUS.get(t.event, t.event)
    known = dict(health.templates)
    if known.get(t.template_id) == status:
        return health, None  # a repeat: counted once
    if t.event == "DELETED" and t.template_id not in known:
        return health, None
    rest = [(i, s) for i, s in health.templates if i != t.template_id]
    if t.event != "DELETED":
        rest.append((t.template_id, status))
    new = replace(health, templates=tuple(rest[-MAX_TEMPLATES:]))
    type_ = "Warning" if t.event in _TEMPLATE_WARNINGS else "Normal"
    about = f"template {t.name or '(unnamed)'}"
    about += f" ({t.language}, id {t.template_id})" if t.language else f" (id {t.template_id})"
    why = f", reason {t.reason}" if t.reason and t.reason != "NONE" else ""
    return new, Event(
        type_, "Template" + camel(t.event, "StatusUpdate"), f"{about}: {t.event}{why}"
    )


_APPLY = {
    "phone_number_quality_update": _quality,
    "account_update": _account,
    "phone_number_name_update": _name,
    "business_capability_update": _capabilities,
    "message_template_status_update": _template,
}
_ABOUT_A_NUMBER = frozenset({"phone_number_quality_update", "phone_number_name_update"})


def about_another_number(notice: Notice, display_number: str | None) -> bool:
    """A quality or name notice naming a number that is not the tenant's (when known)."""
    if notice.kind not in _ABOUT_A_NUMBER:
        return False
    named = digits(notice.value.get("display_phone_number") if isinstance(
        notice.value.get("display_phone_number"), str) else None)  # fmt: skip
    mine = digits(display_number)
    return bool(named and mine and named != mine)


def apply(health: Health, notice: Notice, display_number: str | None = None) -> Change:
    """The health after `notice`, and the Event to post (None when nothing changed)."""
    handler = _APPLY.get(notice.kind)
    if handler is None or about_another_number(notice, display_number):
        return health, None
    new, event = handler(health, notice.value)
    changed = new != health
    return replace(new, last_notice=(notice.kind, notice.when)), event if changed else None


# --- the condition --------------------------------------------------------------------------
def active_restrictions(health: Health, now: datetime) -> tuple[Restriction, ...]:
    """Restrictions not yet expired (one whose end is unknown counts as active)."""
    return tuple(r for r in health.restrictions if (r.until() or now) >= now)


def judge(health: Health, now: datetime) -> Condition:
    """AccountHealthy: the worst thing the notices (and the number's quality rating) say."""
    t, f = c.ACCOUNT_HEALTHY, FALSE
    if health.account_deleted:
        return Condition(t, f, HealthReason.ACCOUNT_DELETED, "Meta reports the WhatsApp "
                         "Business Account deleted (account_update ACCOUNT_DELETED)")  # fmt: skip
    date = f" ({health.ban_date})" if health.ban_date else ""
    if health.ban_state == "DISABLE":
        return Condition(t, f, HealthReason.ACCOUNT_DISABLED, "Meta disabled the WhatsApp "
                         f"Business Account{date} (account_update DISABLED_UPDATE)")  # fmt: skip
    active = active_restrictions(health, now)
    if active:
        return Condition(t, f, HealthReason.ACCOUNT_RESTRICTED,
                         f"Meta restricts the account: {_describe(active)}")  # fmt: skip
    if health.ban_state == "SCHEDULE_FOR_DISABLE":
        return Condition(t, f, HealthReason.ACCOUNT_DISABLE_SCHEDULED, "Meta scheduled the "
                         f"WhatsApp Business Account to be disabled{date}")  # fmt: skip
    if health.quality_rating == "RED":
        return Condition(t, f, HealthReason.QUALITY_LOW,
                         "the number's quality rating is RED (low)")  # fmt: skip
    if health.quality_event == "FLAGGED":
        return Condition(t, f, HealthReason.NUMBER_FLAGGED, "Meta flagged the number for low "
                         "quality (phone_number_quality_update FLAGGED)")  # fmt: skip
    facts = [f"quality {health.quality_rating}" if health.quality_rating else ""]
    facts.append(
        f"messaging limit {health.messaging_limit_tier}" if health.messaging_limit_tier else ""
    )
    known = "; ".join(x for x in facts if x)
    message = "Meta reports no restriction, ban or low quality" + (f" ({known})" if known else "")
    return Condition(t, "True", HealthReason.HEALTHY, message)


def health_fragment(
    status: Mapping[str, Any],
    notices: Iterable[Notice],
    *,
    tenant_id: str | None,
    phone: PhoneFacts | None,
    now: datetime,
) -> Fragment | None:
    """The pass's health: the stored health with the new notices applied. None for a tenant
    that never had a notice (no AccountHealthy condition at all)."""
    stored = status.get(STATUS_KEY)
    health = Health.from_status(stored)
    display = phone.display_phone_number if phone is not None else None
    events: list[Event] = []
    applied = False
    for notice in notices:
        if tenant_id is None or notice.tenant_id != tenant_id:
            continue  # a stale notice about a tenant that held this name before
        if is_repeat(health.recent, notice):
            continue  # a copy of one applied already (redelivered): nothing changes
        after, event = apply(health, notice, display)
        if after != health:  # applied (not ignored as about another number): remembered
            after = replace(after, recent=remember(health.recent, notice))
        applied = applied or after != health
        health = after
        events += [event] if event is not None else []
    if not isinstance(stored, Mapping) and not applied:
        return None
    if phone is not None and phone.quality_rating:
        health = replace(health, quality_rating=phone.quality_rating)
    if health.messaging_limit_tier is None and phone is not None and phone.messaging_limit:
        health = replace(health, messaging_limit_tier=phone.messaging_limit)
    health = replace(health, restrictions=active_restrictions(health, now))
    cond = judge(health, now)
    return Fragment(
        condition=cond,
        gates_ready=cond.reason in GATING,
        status={STATUS_KEY: health.to_status()},
        events=tuple(events),
    )
