"""Redelivered notices are recognised (operator/whatsapp_operator/model/notice_ids.py and
model/health.py's `health_fragment`): a copy of a notice applied lately, whether the broker
delivered it again (the same receiver time) or Meta posted it again (a later one within the
window), changes nothing, posts no Event and counts nothing, for every kind of notice, also
across passes (the memory is in `status.health.recentNotices`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from test_health_model import AT, PHONE, T0, TENANT, account, ban, meta, quality, run, template

from whatsapp_operator.model.health import health_fragment
from whatsapp_operator.model.health_state import Health
from whatsapp_operator.model.notice_ids import (
    MAX_REMEMBERED,
    REDELIVERY_WINDOW,
    is_repeat,
    notice_id,
    remember,
)
from whatsapp_operator.model.notices import Notice


def later(notice: Notice, seconds: float) -> Notice:
    return dataclasses.replace(notice, at=notice.at + seconds)


CAPS = meta("business_capability_update", {"max_phone_numbers_per_waba": 25})
NAME = meta("phone_number_name_update", {
    "display_phone_number": "15550783881", "decision": "APPROVED",
    "requested_verified_name": "Acme",
})  # fmt: skip


@pytest.mark.parametrize(
    ("applied", "incoming", "repeat"),
    [
        pytest.param(quality("FLAGGED"), quality("FLAGGED"), True,
                     id="the broker's redelivery: same content, same receiver time"),
        pytest.param(quality("FLAGGED"), later(quality("FLAGGED"), 90), True,
                     id="Meta's retry: same content, 90 s later"),
        pytest.param(quality("FLAGGED"), later(quality("FLAGGED"), -90), True,
                     id="a copy handled earlier, applied after"),
        pytest.param(quality("FLAGGED"), later(quality("FLAGGED"), REDELIVERY_WINDOW + 1), False,
                     id="the same change again after the window: new"),
        pytest.param(quality("FLAGGED"), quality("UNFLAGGED"), False, id="another event"),
        pytest.param(template(11, "APPROVED"), template(12, "APPROVED"), False,
                     id="another template"),
        pytest.param(account("ACCOUNT_DELETED"), account("ACCOUNT_DELETED", tenant="t_other"),
                     False, id="another tenant"),
        pytest.param(meta("account_update", {"event": "X", "ban_info": {"a": 1, "b": 2}}),
                     meta("account_update", {"ban_info": {"b": 2, "a": 1}, "event": "X"}), True,
                     id="key order does not matter"),
        pytest.param(CAPS, CAPS, True, id="business_capability_update"),
        pytest.param(NAME, NAME, True, id="phone_number_name_update"),
    ],
)  # fmt: skip
def test_is_repeat(applied: Notice, incoming: Notice, repeat: bool) -> None:
    seen = remember((), applied)
    assert is_repeat(seen, incoming) is repeat
    assert is_repeat((), incoming) is False


def test_the_memory_is_bounded_and_forgets_what_the_window_left_behind() -> None:
    seen: Any = ()
    for i in range(MAX_REMEMBERED + 5):
        seen = remember(seen, later(template(i, "APPROVED"), i))
    assert len(seen) == MAX_REMEMBERED
    assert seen[-1][0] == notice_id(template(MAX_REMEMBERED + 4, "APPROVED"))
    assert not is_repeat(seen, template(0, "APPROVED"))  # the oldest went first
    old = remember((), quality("FLAGGED"))
    newer = remember(old, later(quality("UNFLAGGED"), REDELIVERY_WINDOW + 10))
    assert [i for i, _ in newer] == [notice_id(quality("UNFLAGGED"))]


# every kind: the notice, a notice in between that changes something, then the copy
@pytest.mark.parametrize(
    ("first", "between", "field", "expect"),
    [
        pytest.param(quality("FLAGGED"), quality("UNFLAGGED"), "qualityEvent", "UNFLAGGED",
                     id="phone_number_quality_update"),
        pytest.param(ban("DISABLE"), ban("REINSTATE"), "banState", "REINSTATE",
                     id="account_update"),
        pytest.param(template(11, "APPROVED"), template(11, "PAUSED"), "templates",
                     {"PAUSED": 1}, id="message_template_status_update"),
        pytest.param(NAME, meta("phone_number_name_update", {"decision": "REJECTED",
                     "display_phone_number": "15550783881", "rejection_reason": "X"}),
                     "nameStatus", "REJECTED", id="phone_number_name_update"),
        pytest.param(CAPS, meta("business_capability_update", {"max_phone_numbers_per_waba": 2}),
                     "capabilities", {"maxPhoneNumbersPerWaba": 2},
                     id="business_capability_update"),
    ],
)  # fmt: skip
def test_a_copy_after_a_newer_notice_neither_undoes_it_nor_posts_again(
    first: Notice, between: Notice, field: str, expect: Any
) -> None:
    # within one pass
    health, fragment = run(first, later(between, 10), later(first, 20))
    assert health[field] == expect
    assert len(fragment.events) == 2  # the first and the one between: none for the copy
    # across passes, as a restarted replica meets the broker's redelivery
    stored, _ = run(first, later(between, 10))
    again, fragment = run(first, status={"health": stored})
    assert again[field] == expect
    assert fragment.events == ()
    assert again == stored


def test_the_memory_survives_the_status_round_trip() -> None:
    health, _ = run(quality("FLAGGED"), template(1, "APPROVED"))
    recent = Health.from_status(health).recent
    assert [i for i, _ in recent] == [notice_id(quality("FLAGGED")),
                                      notice_id(template(1, "APPROVED"))]  # fmt: skip
    assert all(at == AT for _, at in recent)
    assert Health.from_status({"recentNotices": [{"id": 3, "at": "x"}, {"at": True}]}).recent == ()


def test_an_ignored_notice_is_not_remembered() -> None:
    other = meta("phone_number_quality_update", {"display_phone_number": "15550000000",
                                                 "event": "FLAGGED"})  # fmt: skip
    assert health_fragment({}, [other], tenant_id=TENANT, phone=PHONE, now=T0) is None
