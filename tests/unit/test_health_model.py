"""Meta's notices -> status.health, AccountHealthy and Events (operator/whatsapp_operator/model/
health.py, health_state.py, notices.py): each documented event of each webhook field, repeats
that change nothing, notices about another number or tenant, and the stored health read back.

Payloads are Meta's documented `value`s (the references cited in model/notices.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from whatsapp_contract.webhook import notice
from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.facts import PhoneFacts
from whatsapp_operator.model.health import GATING, HealthReason, apply, health_fragment, judge
from whatsapp_operator.model.health_state import MAX_TEMPLATES, Health
from whatsapp_operator.model.notices import Notice, Restriction, parse_notice

T0 = datetime(2026, 9, 1, 12, 0, 0, tzinfo=UTC)
AT = T0.timestamp() - 5
TENANT = "t_acme"
PHONE = PhoneFacts(display_phone_number="+1 555-078-3881", quality_rating="GREEN")


def meta(kind: str, value: dict[str, Any], *, tenant: str = TENANT, at: float = AT) -> Notice:
    """A notice as the receiver publishes it, read back as the operator reads it."""
    body = notice(kind=kind, namespace="shop", name="acme", tenant_id=tenant,  # type: ignore[arg-type]
                  waba_id="102290129340398", value=value, at=at)  # fmt: skip
    parsed = parse_notice(body)
    assert parsed is not None
    return parsed


def quality(event: str, **more: Any) -> Notice:
    return meta("phone_number_quality_update",
                {"display_phone_number": "15550783881", "event": event, **more})  # fmt: skip


def account(event: str, **more: Any) -> Notice:
    return meta("account_update", {"event": event, **more})


def template(template_id: int, event: str, **more: Any) -> Notice:
    return meta("message_template_status_update", {
        "event": event, "message_template_id": template_id,
        "message_template_name": "order_confirmation", "message_template_language": "en_US",
        "reason": more.pop("reason", "NONE"), **more,
    })  # fmt: skip


def ban(state: str) -> Notice:
    info = {"waba_ban_state": state, "waba_ban_date": "October 9, 2026"}
    return account("DISABLED_UPDATE", ban_info=info)


RESTRICTION = account("ACCOUNT_RESTRICTION", restriction_info=[
    {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING",
     "expiration": "2026-09-19T13:59:20+0000"},
    {"restriction_type": "RESTRICTED_ADD_PHONE_NUMBER_ACTION", "expiration": 1789999999},
])  # fmt: skip


def run(*notices: Notice, status: dict[str, Any] | None = None, phone: PhoneFacts = PHONE,
        now: datetime = T0) -> tuple[dict[str, Any], Any]:  # fmt: skip
    fragment = health_fragment(status or {}, notices, tenant_id=TENANT, phone=phone, now=now)
    assert fragment is not None
    return dict(fragment.status["health"]), fragment


@pytest.mark.parametrize(
    ("notices", "expect", "event", "reason"),
    [
        pytest.param([quality("FLAGGED", current_limit="TIER_10K")],
                     {"qualityEvent": "FLAGGED", "messagingLimitTier": "TIER_10K"},
                     ("Warning", "NumberFlagged"), HealthReason.NUMBER_FLAGGED,
                     id="quality FLAGGED: a Warning, AccountHealthy False/NumberFlagged"),
        pytest.param([quality("FLAGGED"), quality("UNFLAGGED")], {"qualityEvent": "UNFLAGGED"},
                     ("Normal", "NumberUnflagged"), HealthReason.HEALTHY,
                     id="quality UNFLAGGED after FLAGGED: healthy again"),
        pytest.param([quality("DOWNGRADE", current_limit="TIER_250", old_limit="TIER_2K")],
                     {"qualityEvent": "DOWNGRADE", "messagingLimitTier": "TIER_250"},
                     ("Warning", "MessagingLimitDowngraded"), HealthReason.HEALTHY,
                     id="quality DOWNGRADE: the tier goes down, a Warning"),
        pytest.param([quality("UPGRADE", current_limit="TIER_10K", old_limit="TIER_2K")],
                     {"messagingLimitTier": "TIER_10K"}, ("Normal", "MessagingLimitUpgraded"),
                     HealthReason.HEALTHY, id="quality UPGRADE: the tier goes up"),
        pytest.param([quality("THROUGHPUT_UPGRADE", max_daily_conversations_per_business=
                              "TIER_UNLIMITED", current_limit="TIER_10K")],
                     {"messagingLimitTier": "TIER_UNLIMITED"}, ("Normal", "ThroughputUpgraded"),
                     HealthReason.HEALTHY,
                     id="THROUGHPUT_UPGRADE: max_daily_conversations_per_business wins"),
        pytest.param([quality("ONBOARDING", current_limit="TIER_NOT_SET")],
                     {"messagingLimitTier": "TIER_NOT_SET"}, ("Normal", "NumberOnboarding"),
                     HealthReason.HEALTHY, id="quality ONBOARDING"),
        pytest.param([ban("DISABLE")], {"banState": "DISABLE", "banDate": "October 9, 2026"},
                     ("Warning", "AccountDisabled"), HealthReason.ACCOUNT_DISABLED,
                     id="DISABLED_UPDATE DISABLE: AccountDisabled (gates Ready)"),
        pytest.param([ban("SCHEDULE_FOR_DISABLE")], {"banState": "SCHEDULE_FOR_DISABLE"},
                     ("Warning", "AccountDisableScheduled"),
                     HealthReason.ACCOUNT_DISABLE_SCHEDULED, id="SCHEDULE_FOR_DISABLE"),
        pytest.param([ban("DISABLE"), ban("REINSTATE")], {"banState": "REINSTATE"},
                     ("Normal", "AccountReinstated"), HealthReason.HEALTHY,
                     id="REINSTATE after DISABLE: healthy again"),
        pytest.param([RESTRICTION], {"restrictions": [
                         {"type": "RESTRICTED_BIZ_INITIATED_MESSAGING",
                          "expiration": "2026-09-19T13:59:20Z"},
                         {"type": "RESTRICTED_ADD_PHONE_NUMBER_ACTION",
                          "expiration": "2026-09-21T14:13:19Z"}]},
                     ("Warning", "AccountRestricted"), HealthReason.ACCOUNT_RESTRICTED,
                     id="ACCOUNT_RESTRICTION: ISO text and unix expirations"),
        pytest.param([account("ACCOUNT_VIOLATION", violation_info={"violation_type": "SCAM"})],
                     {"violationType": "SCAM", "accountEvent": "ACCOUNT_VIOLATION"},
                     ("Warning", "AccountViolation"), HealthReason.HEALTHY,
                     id="ACCOUNT_VIOLATION: a Warning Event, no standing state"),
        pytest.param([account("ACCOUNT_DELETED")], {"accountDeleted": True},
                     ("Warning", "AccountDeleted"), HealthReason.ACCOUNT_DELETED,
                     id="ACCOUNT_DELETED (gates Ready)"),
        pytest.param([account("PARTNER_REMOVED")], {"accountEvent": "PARTNER_REMOVED"},
                     ("Warning", "PartnerRemoved"), HealthReason.HEALTHY, id="PARTNER_REMOVED"),
        pytest.param([account("VOLUME_BASED_PRICING_TIER_UPDATE")], {},
                     ("Normal", "VolumeBasedPricingTierUpdate"), HealthReason.HEALTHY,
                     id="another account_update event: Normal"),
        pytest.param([meta("phone_number_name_update", {"display_phone_number": "15550783881",
                      "decision": "APPROVED", "requested_verified_name": "Lucky Shrub",
                      "rejection_reason": None})], {"nameStatus": "APPROVED"},
                     ("Normal", "DisplayNameApproved"), HealthReason.HEALTHY, id="name APPROVED"),
        pytest.param([meta("phone_number_name_update", {"decision": "REJECTED",
                      "rejection_reason": "NAME_FORMAT_UNACCEPTABLE"})],
                     {"nameStatus": "REJECTED", "nameRejectionReason": "NAME_FORMAT_UNACCEPTABLE"},
                     ("Warning", "DisplayNameRejected"), HealthReason.HEALTHY, id="name REJECTED"),
        pytest.param([meta("business_capability_update", {"max_daily_conversations_per_business":
                      2000, "max_phone_numbers_per_waba": 25})],
                     {"capabilities": {"maxDailyConversationsPerBusiness": "2000",
                                       "maxPhoneNumbersPerWaba": 25}},
                     ("Normal", "BusinessCapabilityUpdate"), HealthReason.HEALTHY,
                     id="business_capability_update (Meta's example)"),
        pytest.param([meta("business_capability_update", {"max_daily_conversation_per_phone": -1,
                      "max_phone_numbers_per_business": 2})],
                     {"capabilities": {"maxDailyConversationPerPhone": -1,
                                       "maxPhoneNumbersPerBusiness": 2}},
                     ("Normal", "BusinessCapabilityUpdate"), HealthReason.HEALTHY,
                     id="capabilities: the older per-phone limit"),
        pytest.param([template(1689556908129832, "APPROVED")], {"templates": {"APPROVED": 1}},
                     ("Normal", "TemplateApproved"), HealthReason.HEALTHY, id="template APPROVED"),
        pytest.param([template(1, "REJECTED", reason="INVALID_FORMAT")],
                     {"templates": {"REJECTED": 1}}, ("Warning", "TemplateRejected"),
                     HealthReason.HEALTHY, id="template REJECTED"),
        pytest.param([template(1, "APPROVED"), template(1, "PAUSED")],
                     {"templates": {"PAUSED": 1}}, ("Warning", "TemplatePaused"),
                     HealthReason.HEALTHY, id="APPROVED then PAUSED: counted once, PAUSED"),
        pytest.param([template(1, "DISABLED"), template(1, "REINSTATED")],
                     {"templates": {"APPROVED": 1}}, ("Normal", "TemplateReinstated"),
                     HealthReason.HEALTHY, id="REINSTATED counts as APPROVED"),
        pytest.param([template(1, "APPROVED"), template(1, "DELETED")], {"templates": {}},
                     ("Normal", "TemplateDeleted"), HealthReason.HEALTHY,
                     id="DELETED: no longer counted"),
        pytest.param([template(1, "PENDING_DELETION")], {"templates": {"PENDING_DELETION": 1}},
                     ("Warning", "TemplatePendingDeletion"), HealthReason.HEALTHY,
                     id="PENDING_DELETION"),
        pytest.param([template(1, "SOMETHING_NEW")], {"templates": {"OTHER": 1}},
                     ("Normal", "TemplateSomethingNew"), HealthReason.HEALTHY,
                     id="an undocumented status counts as OTHER"),
    ],
)  # fmt: skip
def test_each_documented_event(
    notices: list[Notice], expect: dict[str, Any], event: tuple[str, str], reason: str
) -> None:
    health, fragment = run(*notices)
    for key, value in expect.items():
        assert health.get(key) == value, key
    last = fragment.events[-1]
    assert (last.type, last.reason) == event
    assert len(fragment.events) == len(notices)
    assert fragment.condition.type == c.ACCOUNT_HEALTHY
    assert fragment.condition.reason == reason
    assert fragment.condition.status == ("True" if reason == HealthReason.HEALTHY else "False")
    assert fragment.gates_ready == (reason in GATING)
    assert health["lastNotice"] == {"kind": notices[-1].kind, "at": "2026-09-01T11:59:55Z"}
    assert health["qualityRating"] == "GREEN"  # from the number's Graph check


@pytest.mark.parametrize(
    "repeated",
    [
        pytest.param(quality("FLAGGED"), id="quality FLAGGED twice"),
        pytest.param(ban("DISABLE"), id="DISABLE twice"),
        pytest.param(RESTRICTION, id="the same restrictions twice"),
        pytest.param(template(7, "APPROVED"), id="a template APPROVED twice"),
        pytest.param(meta("phone_number_name_update", {"decision": "PENDING"}), id="name twice"),
        pytest.param(meta("business_capability_update", {"max_phone_numbers_per_waba": 25}),
                     id="capabilities twice"),
    ],
)  # fmt: skip
def test_a_repeat_changes_nothing_and_posts_no_event(repeated: Notice) -> None:
    first, fragment = run(repeated)
    assert len(fragment.events) == 1
    again, fragment = run(repeated, status={"health": first})
    assert fragment.events == ()
    assert again == first
    assert again.get("templates", {}).get("APPROVED", 0) <= 1


def test_notices_about_another_number_or_tenant_are_ignored() -> None:
    other_number = meta("phone_number_quality_update",
                        {"display_phone_number": "15550000000", "event": "FLAGGED"})  # fmt: skip
    other_tenant = account("ACCOUNT_DELETED")
    stale = meta("account_update", {"event": "ACCOUNT_DELETED"}, tenant="t_previous")
    assert health_fragment({}, [other_number, stale], tenant_id=TENANT, phone=PHONE, now=T0) is None
    # the number unknown yet (no check): a quality notice is taken as the tenant's
    health, fragment = run(other_number, phone=PhoneFacts())
    assert health["qualityEvent"] == "FLAGGED"
    health, fragment = run(other_tenant, stale)
    assert len(fragment.events) == 1


def test_no_notice_ever_means_no_health_and_no_condition() -> None:
    assert health_fragment({}, [], tenant_id=TENANT, phone=PHONE, now=T0) is None


def test_stored_health_is_carried_and_quality_comes_from_the_check() -> None:
    stored, _ = run(quality("FLAGGED", current_limit="TIER_2K"))
    red = PhoneFacts(display_phone_number="15550783881", quality_rating="RED")
    health, fragment = run(status={"health": stored}, phone=red)
    assert health["qualityRating"] == "RED"
    assert health["messagingLimitTier"] == "TIER_2K"
    assert fragment.condition.reason == HealthReason.QUALITY_LOW  # RED comes before FLAGGED
    assert fragment.events == ()
    assert Health.from_status(json.loads(json.dumps(health))).to_status() == health


def test_a_restriction_ends_at_its_expiration() -> None:
    health, fragment = run(RESTRICTION)
    assert fragment.condition.reason == HealthReason.ACCOUNT_RESTRICTED
    later = T0 + timedelta(days=19)  # after the first, before the second
    health, fragment = run(status={"health": health}, now=later)
    assert [r["type"] for r in health["restrictions"]] == ["RESTRICTED_ADD_PHONE_NUMBER_ACTION"]
    health, fragment = run(status={"health": health}, now=T0 + timedelta(days=30))
    assert health["restrictions"] == []
    assert fragment.condition.reason == HealthReason.HEALTHY


def test_the_worst_state_decides() -> None:
    worst = Health(quality_rating="RED", quality_event="FLAGGED", ban_state="DISABLE",
                   restrictions=(Restriction("RESTRICTED_BIZ_INITIATED_MESSAGING"),),
                   account_deleted=True)  # fmt: skip
    order = [HealthReason.ACCOUNT_DELETED, HealthReason.ACCOUNT_DISABLED,
             HealthReason.ACCOUNT_RESTRICTED, HealthReason.QUALITY_LOW,
             HealthReason.NUMBER_FLAGGED, HealthReason.HEALTHY]  # fmt: skip
    seen = []
    for clear in ({}, {"account_deleted": False}, {"ban_state": None}, {"restrictions": ()},
                  {"quality_rating": "GREEN"}, {"quality_event": "UNFLAGGED"}):  # fmt: skip
        worst = Health(**{**worst.__dict__, **clear})
        seen.append(judge(worst, T0).reason)
    assert seen == order


def test_templates_are_remembered_up_to_a_bound() -> None:
    health = Health()
    for i in range(MAX_TEMPLATES + 5):
        health, _ = apply(health, template(i, "APPROVED"))
    assert len(health.templates) == MAX_TEMPLATES
    assert health.counts() == {"APPROVED": MAX_TEMPLATES}
    assert health.templates[0][0] == "5"  # the oldest notified went first


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not JSON"),
        pytest.param(b"[]", id="not an object"),
        pytest.param(json.dumps({"schemaVersion": 2}).encode(), id="another schema"),
        pytest.param(notice(kind="messages", namespace="s", name="a", tenant_id="t",  # type: ignore[arg-type]
                            waba_id="1", value={}, at=AT), id="a kind that is no notice"),
        pytest.param(notice(kind="account_update", namespace="", name="a", tenant_id="t",
                            waba_id="1", value={}, at=AT), id="no namespace"),
        pytest.param(notice(kind="account_update", namespace="s", name="a", tenant_id="t",
                            waba_id="1", value={}, at=-1), id="a time before 1970"),
        pytest.param(json.dumps({"schemaVersion": 1, "kind": "account_update", "namespace": "s",
                                 "name": "a", "tenantId": "t", "wabaId": "1", "value": [],
                                 "at": AT}).encode(), id="value not an object"),
    ],
)  # fmt: skip
def test_what_is_not_a_notice(body: bytes) -> None:
    assert parse_notice(body) is None


def test_meta_values_of_other_types_read_as_absent() -> None:
    odd = account("DISABLED_UPDATE", ban_info={"waba_ban_state": ["SCHEDULE_FOR_DISABLE",
                  "DISABLE"]}, restriction_info="none")  # fmt: skip
    health, _ = run(odd, meta("phone_number_quality_update", {"event": 3}))
    assert health["banState"] == "DISABLE"  # one of Meta's examples lists the states
    assert health["restrictions"] == []
    assert "qualityEvent" not in health
