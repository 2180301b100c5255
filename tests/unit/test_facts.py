"""What Meta says about a token and a phone number (operator/whatsapp_operator/facts.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from whatsapp_graph.errors import ErrorClass, GraphApiErrorInfo, classify
from whatsapp_operator.conditions import Reason
from whatsapp_operator.facts import PhoneFacts, TokenFacts, judge_error, judge_phone, judge_token

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
    ],
)
def test_judge_token(data: dict[str, Any], status: str, reason: str) -> None:
    verdict = judge_token(TokenFacts.from_debug_token(data), WABA, NOW)
    assert (verdict.status, verdict.reason) == (status, reason)
    assert verdict.ok is (status == "True")
    assert not verdict.transient


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
}


def test_phone_facts_from_graph() -> None:
    facts = PhoneFacts.from_graph({**PHONE_PAYLOAD, "whatsapp_business_account": {"id": WABA}})
    assert facts.waba_id == WABA
    assert facts.status() == {
        "displayPhoneNumber": "+1 555-010-0100",
        "verifiedName": "Acme Shop",
        "qualityRating": "GREEN",
        "throughputLevel": "STANDARD",
        "codeVerificationStatus": "VERIFIED",
        "nameStatus": "APPROVED",
        "messagingLimit": "TIER_2K",
        "platformType": "CLOUD_API",
    }


def test_phone_facts_from_a_sparse_payload() -> None:
    facts = PhoneFacts.from_graph({"id": PHONE, "verified_name": ""})
    assert facts.waba_id is None
    assert facts.status() == {}


@pytest.mark.parametrize(
    ("payload", "waba_numbers", "status", "reason"),
    [
        pytest.param(
            {**PHONE_PAYLOAD, "whatsapp_business_account": {"id": WABA}},
            None,
            "True",
            Reason.PHONE_NUMBER_VERIFIED,
            id="owner from whatsapp_business_account",
        ),
        pytest.param(
            {**PHONE_PAYLOAD, "whatsapp_business_account": {"id": OTHER_WABA}},
            (PHONE,),
            "False",
            Reason.PHONE_NUMBER_NOT_IN_WABA,
            id="whatsapp_business_account names another WABA",
        ),
        pytest.param(
            PHONE_PAYLOAD,
            ("1", PHONE),
            "True",
            Reason.PHONE_NUMBER_VERIFIED,
            id="owner from the WABA's number list",
        ),
        pytest.param(
            PHONE_PAYLOAD,
            ("1", "2"),
            "False",
            Reason.PHONE_NUMBER_NOT_IN_WABA,
            id="not in the WABA's number list",
        ),
        pytest.param(
            PHONE_PAYLOAD,
            None,
            "False",
            Reason.PHONE_NUMBER_NOT_IN_WABA,
            id="no owner and no list",
        ),
    ],
)
def test_judge_phone(
    payload: dict[str, Any], waba_numbers: tuple[str, ...] | None, status: str, reason: str
) -> None:
    verdict = judge_phone(PhoneFacts.from_graph(payload), PHONE, waba_numbers, WABA)
    assert (verdict.status, verdict.reason) == (status, reason)


def test_judge_phone_message_names_the_number() -> None:
    verdict = judge_phone(PhoneFacts.from_graph(PHONE_PAYLOAD), PHONE, (PHONE,), WABA)
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


def test_judge_error_uses_the_class_it_is_given() -> None:
    verdict = judge_error(_info(100), ErrorClass.THROTTLE, "token check")
    assert verdict.reason == Reason.GRAPH_API_THROTTLED
