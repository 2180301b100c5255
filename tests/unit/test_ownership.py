"""Who owns a tenant id or a phone number id (operator/whatsapp_operator/model/claims.py)."""

from __future__ import annotations

import pytest

from whatsapp_operator.model.claims import Claim, find_conflict
from whatsapp_operator.model.conditions import Reason

OLD = "2026-01-01T00:00:00Z"
NEW = "2026-02-01T00:00:00Z"

ME = Claim(NEW, "shop", "acme", "uid-me")


@pytest.mark.parametrize(
    ("me", "tenant_claims", "phone_claims", "reason", "owner"),
    [
        pytest.param(ME, [ME], [ME], None, None, id="only myself: no conflict"),
        pytest.param(ME, [], [], None, None, id="no claims at all: no conflict"),
        pytest.param(
            ME,
            [ME, Claim(OLD, "other", "acme", "uid-old")],
            [ME],
            Reason.DUPLICATE_TENANT_ID,
            "other/acme",
            id="older tenant with the same tenantId wins",
        ),
        pytest.param(
            Claim(OLD, "shop", "acme", "uid-me"),
            [Claim(OLD, "shop", "acme", "uid-me"), Claim(NEW, "other", "acme", "uid-new")],
            [],
            None,
            None,
            id="I am the older one: no conflict for me",
        ),
        pytest.param(
            Claim(OLD, "b-ns", "acme", "uid-me"),
            [Claim(OLD, "a-ns", "acme", "uid-a")],
            [],
            Reason.DUPLICATE_TENANT_ID,
            "a-ns/acme",
            id="same creation time: lower namespace wins",
        ),
        pytest.param(
            Claim(OLD, "a-ns", "acme", "uid-me"),
            [Claim(OLD, "b-ns", "acme", "uid-b")],
            [],
            None,
            None,
            id="same creation time: I have the lower namespace",
        ),
        pytest.param(
            Claim(OLD, "ns", "zed", "uid-me"),
            [Claim(OLD, "ns", "amy", "uid-a")],
            [],
            Reason.DUPLICATE_TENANT_ID,
            "ns/amy",
            id="same creation time and namespace: lower name wins",
        ),
        pytest.param(
            ME,
            [ME],
            [ME, Claim(OLD, "other", "beta", "uid-old")],
            Reason.DUPLICATE_PHONE_NUMBER_ID,
            "other/beta",
            id="older tenant with the same phoneNumberId wins",
        ),
        pytest.param(
            ME,
            [Claim(OLD, "t", "first", "uid-t")],
            [Claim(OLD, "p", "first", "uid-p")],
            Reason.DUPLICATE_TENANT_ID,
            "t/first",
            id="both ids taken: the tenantId conflict is reported",
        ),
        pytest.param(
            ME,
            [
                Claim(NEW, "z", "n", "uid-z"),
                Claim("2025-06-01T00:00:00Z", "y", "oldest", "uid-y"),
                Claim(OLD, "x", "n", "uid-x"),
            ],
            [],
            Reason.DUPLICATE_TENANT_ID,
            "y/oldest",
            id="several claimants: the oldest is named",
        ),
        pytest.param(
            Claim(NEW, "shop", "acme", "uid-me"),
            [Claim(OLD, "shop", "acme", "uid-me")],
            [],
            None,
            None,
            id="a stale copy of myself is ignored",
        ),
    ],
)
def test_find_conflict(
    me: Claim,
    tenant_claims: list[Claim],
    phone_claims: list[Claim],
    reason: str | None,
    owner: str | None,
) -> None:
    conflict = find_conflict(me, "acme", tenant_claims, "106540352242922", phone_claims)
    if reason is None:
        assert conflict is None
        return
    assert conflict is not None
    assert conflict.reason == reason
    assert conflict.owner.ref == owner
    assert owner in conflict.message


def test_both_sides_agree_on_the_owner() -> None:
    a = Claim(OLD, "a", "t", "uid-a")
    b = Claim(OLD, "b", "t", "uid-b")
    claims = [a, b]
    assert find_conflict(a, "t", claims, "1", []) is None
    conflict = find_conflict(b, "t", claims, "1", [])
    assert conflict is not None
    assert conflict.owner == a


def test_conflict_message_names_the_id() -> None:
    conflict = find_conflict(ME, "acme", [Claim(OLD, "o", "n", "u")], "555", [])
    assert conflict is not None
    assert "tenantId 'acme'" in conflict.message
    conflict = find_conflict(ME, "acme", [], "555", [Claim(OLD, "o", "n", "u")])
    assert conflict is not None
    assert "phoneNumberId '555'" in conflict.message
