"""Who owns a tenant id or a phone number id (operator/whatsapp_operator/model/claims.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from whatsapp_operator.model.claims import Claim, find_conflict, number_verified
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


# --- issue 19: only allowed claims count; a verified number outranks an unverified one -------
def ok(claim: Claim) -> Claim:
    """The same claim, its number verified by Meta for its current spec."""
    return Claim(claim.created, claim.namespace, claim.name, claim.uid, claim.tenant_id, True)


A_OLD = Claim(OLD, "team-a", "acme", "uid-a", "acme")
B_OLD = Claim(OLD, "team-b", "squat", "uid-b", "acme")
B_NEW = Claim(NEW, "team-b", "squat", "uid-b", "acme")
A_NEW = Claim(NEW, "team-a", "acme", "uid-a", "acme")


def only_team_a(claim: Claim) -> bool:
    return claim.namespace == "team-a"


@pytest.mark.parametrize(
    ("me", "tenant_claims", "phone_claims", "allowed", "reason", "owner", "checks"),
    [
        pytest.param(
            A_NEW,
            [A_NEW, B_OLD],
            [],
            only_team_a,
            None,
            None,
            False,
            id="an older tenant of a namespace not allowed the id never blocks the allowed one",
        ),
        pytest.param(
            A_NEW,
            [A_NEW, B_OLD],
            [],
            lambda c: True,
            Reason.DUPLICATE_TENANT_ID,
            "team-b/squat",
            False,
            id="both allowed: the older keeps the id, as before",
        ),
        pytest.param(
            A_NEW,
            [A_NEW],
            [A_NEW, B_OLD],
            only_team_a,
            None,
            None,
            False,
            id="a disallowed tenant's claim on the number does not count either",
        ),
        pytest.param(
            A_NEW,
            [A_NEW],
            [A_NEW, B_OLD],
            lambda c: True,
            Reason.DUPLICATE_PHONE_NUMBER_ID,
            "team-b/squat",
            True,
            id="older unverified owner of the number: the newcomer is still checked at Meta",
        ),
        pytest.param(
            ok(A_NEW),
            [A_NEW],
            [ok(A_NEW), B_OLD],
            lambda c: True,
            None,
            None,
            False,
            id="verified newcomer outranks the older unverified claimant",
        ),
        pytest.param(
            B_OLD,
            [B_OLD],
            [B_OLD, ok(A_NEW)],
            lambda c: True,
            Reason.DUPLICATE_PHONE_NUMBER_ID,
            "team-a/acme",
            True,
            id="the older unverified claimant loses to a verified one, and is checked",
        ),
        pytest.param(
            A_NEW,
            [A_NEW],
            [A_NEW, ok(B_OLD)],
            lambda c: True,
            Reason.DUPLICATE_PHONE_NUMBER_ID,
            "team-b/squat",
            False,
            id="older and verified: keeps the number, the newcomer is not checked",
        ),
        pytest.param(
            ok(A_NEW),
            [A_NEW],
            [ok(A_NEW), ok(B_OLD)],
            lambda c: True,
            Reason.DUPLICATE_PHONE_NUMBER_ID,
            "team-b/squat",
            False,
            id="both verified: the older wins, as before",
        ),
        pytest.param(
            A_OLD,
            [A_OLD],
            [A_OLD, ok(B_NEW)],
            lambda c: True,
            Reason.DUPLICATE_PHONE_NUMBER_ID,
            "team-b/squat",
            True,
            id="older but unverified: loses to a newer verified one until Meta confirms it",
        ),
    ],
)
def test_policy_filter_and_verified_ranking(
    me: Claim,
    tenant_claims: list[Claim],
    phone_claims: list[Claim],
    allowed: Callable[[Claim], bool],
    reason: str | None,
    owner: str | None,
    checks: bool,
) -> None:
    conflict = find_conflict(me, "acme", tenant_claims, "555", phone_claims, allowed=allowed)
    if reason is None:
        assert conflict is None
        return
    assert conflict is not None
    assert (conflict.reason, conflict.checks) == (reason, checks)
    assert conflict.owner is not None
    assert conflict.owner.ref == owner
    assert owner in conflict.message


def test_a_squatter_first_never_keeps_the_number_from_its_owner() -> None:
    """B names A's number first, with its own token (Meta never confirms it); A comes later.
    A is checked, confirmed, and then owns the number; B waits, unchecked."""
    squatter, owner = B_OLD, A_NEW
    first = find_conflict(owner, "acme", [], "555", [squatter, owner])
    assert first is not None
    assert first.checks  # A is checked although B is older
    assert find_conflict(ok(owner), "acme", [], "555", [squatter, ok(owner)]) is None
    held = find_conflict(squatter, "squat", [], "555", [squatter, ok(owner)])
    assert held is not None
    assert held.owner == owner
    assert held.checks  # B is still checked: Meta never confirms its token, so it never wins


@pytest.mark.parametrize(
    ("meta", "status", "verified"),
    [
        pytest.param({"generation": 3}, None, False, id="no status"),
        pytest.param(
            {"generation": 3},
            {
                "conditions": [
                    {"type": "PhoneNumberVerified", "status": "True", "observedGeneration": 3}
                ]
            },
            True,
            id="verified for the current spec",
        ),
        pytest.param(
            {"generation": 4},
            {
                "conditions": [
                    {"type": "PhoneNumberVerified", "status": "True", "observedGeneration": 3}
                ]
            },
            False,
            id="verified for an earlier spec: not yet for this one",
        ),
        pytest.param(
            {"generation": 3},
            {
                "conditions": [
                    {
                        "type": "PhoneNumberVerified",
                        "status": "False",
                        "reason": "PhoneNumberNoAccess",
                        "observedGeneration": 3,
                    }
                ]
            },
            False,
            id="Meta says the token does not reach it",
        ),
        pytest.param(
            {"generation": 3},
            {
                "conditions": [
                    {"type": "PhoneNumberVerified", "status": "Unknown", "observedGeneration": 3}
                ]
            },
            False,
            id="not checked",
        ),
    ],
)
def test_number_verified(
    meta: dict[str, Any], status: dict[str, Any] | None, verified: bool
) -> None:
    assert number_verified(meta, status) is verified
