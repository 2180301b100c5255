"""What Meta says about a token and a phone number (operator/whatsapp_operator/model/facts.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from whatsapp_graph.errors import ErrorClass, GraphApiErrorInfo, classify
from whatsapp_operator.model.conditions import Reason
from whatsapp_operator.model.facts import (
    WABA_NUMBERS,
    HealthEntity,
    Ownership,
    PhoneFacts,
    TokenFacts,
    judge_error,
    judge_phone,
    judge_token,
)

WABA = "102290129340398"
OTHER_WABA = "109999999999999"
PHONE = "106540352242922"
NOW = datetime(2026, 9, 15, 12, 0, 0, tzinfo=UTC)
NOW_TS = int(NOW.timestamp())
SCOPES = ["business_management", "whatsapp_business_management", "whatsapp_business_messaging"]


def debug_data(**overrides: Any) -> dict[str, Any]:
    """A realistic `debug_token` data object for a never-expiring system user token."""
    data: dict[str, Any] = {
        "app_id": "1234567890123456",
        "type": "SYSTEM_USER",
        "application": "Acme WhatsApp",
        "data_access_expires_at": 0,
        "expires_at": 0,
        "is_valid": True,
        "issued_at": NOW_TS - 86400 * 30,
        "scopes": [*SCOPES, "public_profile"],
        "granular_scopes": [
            {"scope": "business_management", "target_ids": ["884400000000001"]},
            {"scope": "whatsapp_business_management", "target_ids": [WABA, OTHER_WABA]},
            {"scope": "whatsapp_business_messaging", "target_ids": [WABA]},
        ],
        "user_id": "122100000000000001",
    }
    data.update(overrides)
    return data


def invalid_data(subcode: int | None, code: int = 190) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": "Error validating access token"}
    if subcode is not None:
        error["subcode"] = subcode
    return debug_data(is_valid=False, error=error, expires_at=NOW_TS - 3600)


def test_from_debug_token_reads_a_valid_system_user_token() -> None:
    facts = TokenFacts.from_debug_token(debug_data(expires_at=NOW_TS + 86400 * 60))
    assert facts.is_valid
    assert facts.type == "SYSTEM_USER"
    assert facts.app_id == "1234567890123456"
    assert facts.expires_at == datetime.fromtimestamp(NOW_TS + 86400 * 60, UTC)
    assert facts.data_access_expires_at is None  # 0 means never
    assert facts.issued_at == datetime.fromtimestamp(NOW_TS - 86400 * 30, UTC)
    assert "whatsapp_business_messaging" in facts.scopes
    assert facts.targets["whatsapp_business_management"] == (WABA, OTHER_WABA)
    assert facts.error_code is None


def test_from_debug_token_reads_an_invalid_token() -> None:
    facts = TokenFacts.from_debug_token(invalid_data(463))
    assert not facts.is_valid
    assert (facts.error_code, facts.error_subcode) == (190, 463)
    assert facts.error_message == "Error validating access token"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({}, id="empty object"),
        pytest.param({"is_valid": "true"}, id="is_valid as a string is not valid"),
        pytest.param(
            {"is_valid": True, "granular_scopes": [{"scope": "x"}, "junk", None]},
            id="granular scopes without target ids",
        ),
        pytest.param({"is_valid": True, "expires_at": True, "error": "boom"}, id="odd field types"),
    ],
)
def test_from_debug_token_tolerates_odd_payloads(data: dict[str, Any]) -> None:
    facts = TokenFacts.from_debug_token(data)
    assert facts.is_valid is (data.get("is_valid") is True)
    assert facts.expires_at is None
    assert dict(facts.targets) == {}


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        pytest.param(debug_data(), "True", Reason.TOKEN_VALID, id="valid never-expiring token"),
        pytest.param(
            debug_data(expires_at=NOW_TS + 3600),
            "True",
            Reason.TOKEN_VALID,
            id="valid token expiring in an hour",
        ),
        pytest.param(
            debug_data(expires_at=NOW_TS), "False", Reason.TOKEN_EXPIRED, id="expires right now"
        ),
        pytest.param(
            debug_data(expires_at=NOW_TS - 1),
            "False",
            Reason.TOKEN_EXPIRED,
            id="expired by time though Meta still says valid",
        ),
        pytest.param(invalid_data(463), "False", Reason.TOKEN_EXPIRED, id="invalid 190/463"),
        pytest.param(invalid_data(467), "False", Reason.TOKEN_INVALIDATED, id="invalid 190/467"),
        pytest.param(invalid_data(458), "False", Reason.APP_REMOVED, id="invalid 190/458"),
        pytest.param(invalid_data(460), "False", Reason.PASSWORD_CHANGED, id="invalid 190/460"),
        pytest.param(invalid_data(459), "False", Reason.ACCOUNT_CHECKPOINT, id="invalid 190/459"),
        pytest.param(invalid_data(464), "False", Reason.ACCOUNT_CHECKPOINT, id="invalid 190/464"),
        pytest.param(
            invalid_data(None), "False", Reason.TOKEN_UNREADABLE, id="invalid without subcode"
        ),
        pytest.param(
            debug_data(is_valid=False), "False", Reason.TOKEN_UNREADABLE, id="invalid, no error"
        ),
        pytest.param(
            debug_data(scopes=["whatsapp_business_management"]),
            "False",
            Reason.MISSING_SCOPES,
            id="missing the messaging scope",
        ),
        pytest.param(debug_data(scopes=[]), "False", Reason.MISSING_SCOPES, id="no scopes at all"),
        pytest.param(
            debug_data(
                granular_scopes=[
                    {"scope": "whatsapp_business_management", "target_ids": [WABA]},
                    {"scope": "whatsapp_business_messaging", "target_ids": [OTHER_WABA]},
                ]
            ),
            "False",
            Reason.WABA_NOT_IN_SCOPE,
            id="messaging scope covers another WABA",
        ),
        pytest.param(
            debug_data(granular_scopes=[{"scope": "whatsapp_business_management"}]),
            "True",
            Reason.TOKEN_VALID,
            id="target ids absent (admin system user): valid",
        ),
        pytest.param(
            debug_data(granular_scopes=None), "True", Reason.TOKEN_VALID, id="no granular scopes"
        ),
        pytest.param(
            debug_data(
                scopes=[*SCOPES, "whatsapp_business_manage_events"],
                granular_scopes=[
                    {"scope": "whatsapp_business_management"},
                    {"scope": "whatsapp_business_messaging"},
                    {"scope": "whatsapp_business_manage_events"},
                ],
            ),
            "True",
            Reason.TOKEN_VALID,
            id="mid-2026 signup token: manage_events, no target ids",
        ),
        pytest.param(debug_data(type="USER"), "True", Reason.TOKEN_VALID, id="a user token works"),
    ],
)
def test_judge_token(data: dict[str, Any], status: str, reason: str) -> None:
    verdict = judge_token(TokenFacts.from_debug_token(data), WABA, NOW)
    assert (verdict.status, verdict.reason) == (status, reason)
    assert verdict.ok is (status == "True")
    assert not verdict.transient


@pytest.mark.parametrize(
    ("kind", "advised"),
    [("USER", True), ("SYSTEM_USER", False), ("PAGE", False), (None, False)],
)
def test_a_user_token_is_valid_with_meta_s_advice(kind: str | None, advised: bool) -> None:
    verdict = judge_token(TokenFacts.from_debug_token(debug_data(type=kind)), WABA, NOW)
    assert verdict.ok
    assert ("Meta recommends system-user tokens in production" in verdict.message) is advised


def test_judge_token_messages_say_what_is_wrong() -> None:
    missing = judge_token(
        TokenFacts.from_debug_token(debug_data(scopes=["whatsapp_business_management"])), WABA, NOW
    )
    assert "whatsapp_business_messaging" in missing.message
    wrong = judge_token(
        TokenFacts.from_debug_token(
            debug_data(
                granular_scopes=[{"scope": "whatsapp_business_messaging", "target_ids": ["9"]}]
            )
        ),
        WABA,
        NOW,
    )
    assert WABA in wrong.message
    expired = judge_token(
        TokenFacts.from_debug_token(debug_data(expires_at=NOW_TS - 60)), WABA, NOW
    )
    assert "2026-09-15T11:59:00Z" in expired.message


def test_token_status_holds_facts_not_the_token() -> None:
    facts = TokenFacts.from_debug_token(debug_data(expires_at=NOW_TS + 60))
    status = facts.status("sha256:0123456789abcdef", NOW)
    assert status["fingerprint"] == "sha256:0123456789abcdef"
    assert status["lastValidatedAt"] == "2026-09-15T12:00:00Z"
    assert status["expiresAt"] == "2026-09-15T12:01:00Z"
    assert status["type"] == "SYSTEM_USER"
    assert status["scopes"] == sorted(status["scopes"])
    assert "dataAccessExpiresAt" not in status


PHONE_PAYLOAD: dict[str, Any] = {
    "id": PHONE,
    "display_phone_number": "+1 555-010-0100",
    "verified_name": "Acme Shop",
    "quality_rating": "GREEN",
    "code_verification_status": "VERIFIED",
    "name_status": "APPROVED",
    "throughput": {"level": "STANDARD"},
    "platform_type": "CLOUD_API",
    "whatsapp_business_manager_messaging_limit": "TIER_2K",
    "status": "CONNECTED",
    "health_status": {
        "can_send_message": "LIMITED",
        "entities": [
            {"entity_type": "PHONE_NUMBER", "id": PHONE, "can_send_message": "AVAILABLE"},
            {
                "entity_type": "WABA",
                "id": WABA,
                "can_send_message": "LIMITED",
                "errors": [{"error_code": 141006, "error_description": "payment"}],
            },
            {"entity_type": "BUSINESS", "id": "884400000000001", "can_send_message": "AVAILABLE"},
        ],
    },
}


def test_phone_facts_from_graph() -> None:
    facts = PhoneFacts.from_graph(PHONE_PAYLOAD)
    assert facts.to_status() == {
        "displayPhoneNumber": "+1 555-010-0100",
        "verifiedName": "Acme Shop",
        "qualityRating": "GREEN",
        "throughputLevel": "STANDARD",
        "codeVerificationStatus": "VERIFIED",
        "nameStatus": "APPROVED",
        "messagingLimit": "TIER_2K",
        "platformType": "CLOUD_API",
        "status": "CONNECTED",
        "canSendMessage": "LIMITED",
    }
    assert (facts.status, facts.can_send_message) == ("CONNECTED", "LIMITED")
    assert [e.entity_type for e in facts.health_entities] == ["PHONE_NUMBER", "WABA", "BUSINESS"]
    (limited,) = facts.not_available()
    assert limited == HealthEntity("WABA", WABA, "LIMITED", (141006,))
    assert limited.describe() == f"WABA {WABA} LIMITED (errors 141006)"


def test_phone_facts_from_a_sparse_payload() -> None:
    facts = PhoneFacts.from_graph({"id": PHONE, "verified_name": "", "health_status": "odd"})
    assert facts.to_status() == {}
    assert facts.health_entities == ()
    assert not hasattr(facts, "waba_id")  # the number's node names no WABA


@pytest.mark.parametrize(
    ("payload", "limit"),
    [
        pytest.param({"messaging_limit_tier": "TIER_1K"}, "TIER_1K", id="v23 and older: tier"),
        pytest.param(
            {"whatsapp_business_manager_messaging_limit": "TIER_10K"},
            "TIER_10K",
            id="v24 and newer: the portfolio's limit",
        ),
        pytest.param(
            {"whatsapp_business_manager_messaging_limit": {"current_limit": "TIER_100K"}},
            "TIER_100K",
            id="the portfolio's limit as an object",
        ),
        pytest.param({}, None, id="neither"),
    ],
)
def test_messaging_limit_from_either_field(payload: dict[str, Any], limit: str | None) -> None:
    assert PhoneFacts.from_graph({"id": PHONE, **payload}).messaging_limit == limit


def scan(pages: list[tuple[list[str], bool]], phone: str = PHONE) -> Ownership:
    """Feed pages (ids, another page follows) until the scan is settled, as validation does."""
    ownership = Ownership()
    for ids, more in pages:
        ownership = ownership.after_page(ids, more, phone)
        if ownership.settled:
            break
    return ownership


@pytest.mark.parametrize(
    ("pages", "expected"),
    [
        pytest.param([([PHONE], False)], Ownership(True, 1, 1, False), id="found on the only page"),
        pytest.param(
            [(["1", "2"], True), (["3", PHONE], True), (["5"], False)],
            Ownership(True, 2, 4, True),
            id="found on page 2: page 3 never read",
        ),
        pytest.param(
            [(["1", "2"], True), (["3"], False)],
            Ownership(False, 2, 3, False),
            id="not found after the last page",
        ),
        pytest.param([([], False)], Ownership(False, 1, 0, False), id="an empty WABA"),
        pytest.param(
            [(["1"], True), (["2"], True)],
            Ownership(False, 2, 2, True),
            id="pages left unread (the cap)",
        ),
    ],
)
def test_ownership_scan(pages: list[tuple[list[str], bool]], expected: Ownership) -> None:
    assert scan(pages) == expected


FACTS = PhoneFacts.from_graph(PHONE_PAYLOAD)


@pytest.mark.parametrize(
    ("ownership", "status", "reason", "needle"),
    [
        pytest.param(
            Ownership(True, 2, 150, True), "True", Reason.PHONE_NUMBER_VERIFIED, "verified",
            id="found on page 2",
        ),
        pytest.param(
            Ownership(False, 3, 201, False), "False", Reason.PHONE_NUMBER_NOT_IN_WABA,
            f"not among the 201 numbers of WABA {WABA}", id="not found after the last page",
        ),
        pytest.param(
            Ownership(False, 20, 2000, True), "False", Reason.PHONE_NUMBER_NOT_IN_WABA,
            "read stopped after 20 pages", id="not among the pages read",
        ),
    ],
)  # fmt: skip
def test_judge_phone(ownership: Ownership, status: str, reason: str, needle: str) -> None:
    verdict = judge_phone(FACTS, PHONE, ownership, WABA)
    assert (verdict.status, verdict.reason) == (status, reason)
    assert needle in verdict.message


def test_judge_phone_message_names_the_number() -> None:
    verdict = judge_phone(FACTS, PHONE, Ownership(True, 1, 1, False), WABA)
    assert "+1 555-010-0100 (Acme Shop)" in verdict.message
    assert "GREEN" in verdict.message


def _info(code: int, subcode: int | None = None) -> GraphApiErrorInfo:
    return GraphApiErrorInfo(code, subcode, "OAuthException", "boom", None, "trace", 400)


@pytest.mark.parametrize(
    ("code", "subcode", "what", "status", "reason"),
    [
        pytest.param(
            200,
            None,
            "phone number",
            "False",
            Reason.PHONE_NUMBER_NO_ACCESS,
            id="200 on the phone number: no access",
        ),
        pytest.param(
            10,
            None,
            "phone number",
            "False",
            Reason.PHONE_NUMBER_NO_ACCESS,
            id="10 on the phone number: no access",
        ),
        pytest.param(
            200,
            None,
            "token check",
            "False",
            Reason.PERMISSION_DENIED,
            id="200 on the token: permission denied",
        ),
        pytest.param(
            190,
            463,
            "phone number",
            "False",
            Reason.TOKEN_EXPIRED,
            id="190/463 on the phone number is still the token",
        ),
        pytest.param(
            190, 467, "token check", "False", Reason.TOKEN_INVALIDATED, id="190/467 on the token"
        ),
        pytest.param(
            100,
            None,
            "phone number",
            "False",
            Reason.PHONE_NUMBER_NOT_FOUND,
            id="100 on the phone number: not found",
        ),
        pytest.param(
            803,
            None,
            "phone number",
            "False",
            Reason.PHONE_NUMBER_NOT_FOUND,
            id="803 on the phone number: not found",
        ),
        pytest.param(
            4,
            None,
            "token check",
            "Unknown",
            Reason.GRAPH_API_THROTTLED,
            id="app throttle: Unknown",
        ),
        pytest.param(
            80007,
            None,
            "phone number",
            "Unknown",
            Reason.GRAPH_API_THROTTLED,
            id="WABA throttle: Unknown",
        ),
        pytest.param(
            2,
            None,
            "token check",
            "Unknown",
            Reason.GRAPH_API_UNAVAILABLE,
            id="retryable on the token: Unknown",
        ),
        pytest.param(
            131000,
            None,
            "phone number",
            "Unknown",
            Reason.GRAPH_API_UNAVAILABLE,
            id="retryable on the phone number: Unknown",
        ),
        pytest.param(
            999999,
            None,
            "token check",
            "Unknown",
            Reason.GRAPH_API_UNAVAILABLE,
            id="unknown code: Unknown",
        ),
    ],
)
def test_judge_error(code: int, subcode: int | None, what: str, status: str, reason: str) -> None:
    verdict = judge_error(_info(code, subcode), classify(code).error_class, what)
    assert (verdict.status, verdict.reason) == (status, reason)
    assert verdict.transient is (status == "Unknown")
    assert str(code) in verdict.message
    assert what in verdict.message


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        pytest.param(100, "False", Reason.PHONE_NUMBER_NOT_IN_WABA, id="100: unknown WABA"),
        pytest.param(200, "False", Reason.PHONE_NUMBER_NO_ACCESS, id="200: no access to it"),
        pytest.param(80007, "Unknown", Reason.GRAPH_API_THROTTLED, id="80007: throttled"),
        pytest.param(190, "False", Reason.TOKEN_UNREADABLE, id="190: still the token"),
    ],
)
def test_judge_error_on_the_wabas_numbers(code: int, status: str, reason: str) -> None:
    verdict = judge_error(_info(code), classify(code).error_class, WABA_NUMBERS)
    assert (verdict.status, verdict.reason) == (status, reason)


@pytest.mark.parametrize(
    "message",
    [
        "API calls from the server require an appsecret_proof argument",
        "Invalid appsecret_proof provided in the API argument",
    ],
)
@pytest.mark.parametrize("what", ["token check", "phone number", WABA_NUMBERS])
def test_meta_refusing_without_a_proof_says_what_to_do(message: str, what: str) -> None:
    info = GraphApiErrorInfo(100, None, "GraphMethodException", message, None, "t", 400)
    verdict = judge_error(info, classify(100).error_class, what)
    assert (verdict.status, verdict.reason) == ("False", Reason.APP_SECRET_PROOF_REQUIRED)
    assert "spec.rotation.appCredentialsSecretRef" in verdict.message


def test_judge_error_uses_the_class_it_is_given() -> None:
    verdict = judge_error(_info(100), ErrorClass.THROTTLE, "token check")
    assert verdict.reason == Reason.GRAPH_API_THROTTLED
