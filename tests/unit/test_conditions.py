"""Condition merging (operator/whatsapp_operator/model/conditions.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.conditions import Condition, merge

T0 = datetime(2026, 9, 1, 12, 0, 0, tzinfo=UTC)
T1 = datetime(2026, 9, 1, 13, 30, 5, tzinfo=UTC)
T0_TEXT = "2026-09-01T12:00:00Z"
T1_TEXT = "2026-09-01T13:30:05Z"


def stored(type_: str, status: str, reason: str = "R", message: str = "m") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": T0_TEXT,
        "observedGeneration": 1,
    }


@pytest.mark.parametrize(
    ("old", "new", "expected_time"),
    [
        pytest.param(
            None, Condition(c.READY, "True", "Ready", "ok"), T1_TEXT, id="new condition gets now"
        ),
        pytest.param(
            stored(c.READY, "False", "SecretNotFound", "no secret"),
            Condition(c.READY, "False", "TokenExpired", "expired"),
            T0_TEXT,
            id="same status, new reason and message keeps the transition time",
        ),
        pytest.param(
            stored(c.READY, "True", "Ready", "ok"),
            Condition(c.READY, "True", "Ready", "ok"),
            T0_TEXT,
            id="no change keeps the transition time",
        ),
        pytest.param(
            stored(c.READY, "False"),
            Condition(c.READY, "True", "Ready", "ok"),
            T1_TEXT,
            id="False to True flips the transition time",
        ),
        pytest.param(
            stored(c.READY, "True"),
            Condition(c.READY, "Unknown", "GraphApiUnavailable", "down"),
            T1_TEXT,
            id="True to Unknown flips the transition time",
        ),
    ],
)
def test_merge_transition_time(
    old: dict[str, Any] | None, new: Condition, expected_time: str
) -> None:
    (out,) = merge([old] if old else [], [new], generation=7, now=T1)
    assert out == {
        "type": new.type,
        "status": new.status,
        "reason": new.reason,
        "message": new.message,
        "lastTransitionTime": expected_time,
        "observedGeneration": 7,
    }


def test_merge_keeps_other_condition_types_after_ours_in_their_order() -> None:
    foreign = [
        {"type": "Zeta", "status": "True", "lastTransitionTime": T0_TEXT, "extra": 1},
        stored(c.READY, "True"),
        {"type": "Alpha", "status": "False", "lastTransitionTime": T0_TEXT},
    ]
    out = merge(foreign, [Condition(c.READY, "True", "Ready", "ok")], generation=2, now=T1)
    assert [x["type"] for x in out] == [c.READY, "Zeta", "Alpha"]
    assert out[1] == foreign[0]
    assert out[2] == foreign[2]


def test_merge_writes_ours_in_fixed_order_whatever_the_input_order() -> None:
    updates = [
        Condition(c.READY, "True", "Ready", "ok"),
        Condition(c.PHONE_NUMBER_VERIFIED, "True", "PhoneNumberVerified", "ok"),
        Condition(c.SECRET_RESOLVED, "True", "Resolved", "ok"),
        Condition(c.TOKEN_VALID, "True", "TokenValid", "ok"),
    ]
    existing = [stored(c.READY, "True"), stored(c.SECRET_RESOLVED, "True")]
    out = merge(existing, updates, generation=3, now=T1)
    assert [x["type"] for x in out] == [
        c.SECRET_RESOLVED,
        c.TOKEN_VALID,
        c.PHONE_NUMBER_VERIFIED,
        c.READY,
    ]
    assert all(x["observedGeneration"] == 3 for x in out)


def test_merge_sets_observed_generation_even_when_nothing_else_changes() -> None:
    (out,) = merge(
        [stored(c.READY, "True", "Ready", "ok")],
        [Condition(c.READY, "True", "Ready", "ok")],
        generation=9,
        now=T1,
    )
    assert out["observedGeneration"] == 9


def test_merge_does_not_modify_its_input() -> None:
    existing = [stored(c.READY, "False"), {"type": "Other", "status": "True"}]
    snapshot = [dict(x) for x in existing]
    merge(existing, [Condition(c.READY, "True", "Ready", "ok")], generation=2, now=T1)
    assert existing == snapshot


def test_merge_caps_message_length() -> None:
    (out,) = merge([], [Condition(c.READY, "False", "X", "m" * 40000)], generation=1, now=T1)
    assert len(out["message"]) == 32768


@pytest.mark.parametrize(
    ("conditions", "type_", "found"),
    [
        pytest.param([stored(c.READY, "True")], c.READY, True, id="present"),
        pytest.param([stored(c.TOKEN_VALID, "True")], c.READY, False, id="absent"),
        pytest.param([], c.READY, False, id="empty"),
    ],
)
def test_find(conditions: list[dict[str, Any]], type_: str, found: bool) -> None:
    result = c.find(conditions, type_)
    assert (result is not None) is found
    if result is not None:
        assert result["type"] == type_


def test_rfc3339_is_utc_second_precision() -> None:
    assert c.rfc3339(datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
