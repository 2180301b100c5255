"""Graph API error classification and envelope parsing (graph/whatsapp_graph/errors.py)."""

from __future__ import annotations

from typing import Any

import pytest

from whatsapp_graph.errors import (
    ErrorClass,
    ThrottleScope,
    TokenProblem,
    classify,
    parse_error_envelope,
    token_problem,
)

# Every code named in meta-cloud-api.md, "Errors", with the class the project gives it.
RETRY_CODES = [1, 2, 131000, 131016, 133004, 131057, 133015, 132069]
CREDENTIAL_CODES = [0, 3, 10, 102, 104, 190, 131005, 200, 210, 250, 299]
# issue 16: codes that block the account or the number pause the number's sending
TENANT_BLOCKED_CODES = [368, 131031, 131042, 130497, 131064, 131048, 131037, 131045, 133010]
PERMANENT_CODES = [
    100,
    131008,
    131009,
    131021,
    131026,
    131047,
    131049,
    131050,
    131051,
    131053,
    130403,
    130472,
    132000,
    132001,
    132005,
    132007,
    132012,
    132015,
    132016,
    135000,
    131030,
    132068,
    134011,
]
REGISTRATION_CODES = [133000, 133005, 133006, 133008, 133009, 133016]


def _cases(codes: list[int], expected: ErrorClass) -> list[Any]:
    return [pytest.param(code, expected, id=f"{code} is {expected.value}") for code in codes]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        *_cases(RETRY_CODES, ErrorClass.RETRY),
        *_cases(CREDENTIAL_CODES, ErrorClass.CREDENTIAL),
        *_cases(TENANT_BLOCKED_CODES, ErrorClass.TENANT_BLOCKED),
        *_cases(PERMANENT_CODES, ErrorClass.PERMANENT),
        *_cases(REGISTRATION_CODES, ErrorClass.REGISTRATION),
    ],
)
def test_classify_known_codes(code: int, expected: ErrorClass) -> None:
    assert classify(code).error_class is expected


@pytest.mark.parametrize(
    ("code", "scope"),
    [
        pytest.param(4, ThrottleScope.APP, id="4 throttles the app"),
        pytest.param(80007, ThrottleScope.WABA, id="80007 throttles the WABA"),
        pytest.param(80008, ThrottleScope.WABA, id="80008 throttles the WABA"),
        pytest.param(130429, ThrottleScope.PHONE_NUMBER, id="130429 throttles the phone number"),
        pytest.param(131056, ThrottleScope.PAIR, id="131056 throttles the pair"),
    ],
)
def test_classify_throttle_names_its_scope(code: int, scope: ThrottleScope) -> None:
    result = classify(code)
    assert result.error_class is ErrorClass.THROTTLE
    assert result.throttle_scope is scope
    assert result.min_delay > 0


@pytest.mark.parametrize(
    ("code", "floor"),
    [
        pytest.param(131057, 60.0, id="131057 throughput upgrade waits about a minute"),
        pytest.param(133015, 300.0, id="133015 waits at least five minutes"),
    ],
)
def test_classify_retry_floors(code: int, floor: float) -> None:
    assert classify(code).min_delay >= floor


def test_classify_code_1_is_retried_only_a_few_times() -> None:
    limit = classify(1).max_attempts
    assert limit is not None
    assert 1 < limit <= 5


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(300, id="just past the 2xx permission range"),
        pytest.param(199, id="just before the 2xx permission range"),
        pytest.param(803, id="803 is not in Meta's table"),
        pytest.param(999999, id="an invented code"),
        pytest.param(-1, id="a negative code"),
    ],
)
def test_classify_unknown_code_gets_a_few_attempts(code: int) -> None:
    result = classify(code)
    assert result.error_class is ErrorClass.UNKNOWN
    assert result.max_attempts is not None
    assert result.max_attempts >= 1


def test_non_throttle_classes_name_no_scope() -> None:
    for code in RETRY_CODES + CREDENTIAL_CODES + PERMANENT_CODES:
        assert classify(code).throttle_scope is None, code


@pytest.mark.parametrize(
    ("code", "subcode", "expected"),
    [
        pytest.param(190, 458, TokenProblem.APP_REMOVED, id="190/458 app removed"),
        pytest.param(190, 459, TokenProblem.CHECKPOINT, id="190/459 account checkpoint"),
        pytest.param(190, 460, TokenProblem.PASSWORD_CHANGED, id="190/460 password changed"),
        pytest.param(190, 463, TokenProblem.EXPIRED, id="190/463 expired"),
        pytest.param(190, 464, TokenProblem.CHECKPOINT, id="190/464 unconfirmed user"),
        pytest.param(190, 467, TokenProblem.INVALIDATED, id="190/467 invalidated"),
        pytest.param(190, None, TokenProblem.UNREADABLE, id="190 without subcode"),
        pytest.param(190, 12345, TokenProblem.REJECTED, id="190 with an unknown subcode"),
        pytest.param(10, None, TokenProblem.PERMISSION_DENIED, id="10 permission denied"),
        pytest.param(200, None, TokenProblem.PERMISSION_DENIED, id="200 permission denied"),
        pytest.param(299, 33, TokenProblem.PERMISSION_DENIED, id="299 permission denied"),
        pytest.param(3, None, TokenProblem.REJECTED, id="3 capability is a plain rejection"),
        pytest.param(131005, None, TokenProblem.REJECTED, id="131005 access denied"),
    ],
)
def test_token_problem(code: int, subcode: int | None, expected: TokenProblem) -> None:
    assert token_problem(code, subcode) is expected


TOKEN = "EAAGsecretTOKENvalue1234567890abcdef"


def _envelope(**error: Any) -> dict[str, Any]:
    return {"error": error}


FULL = _envelope(
    message="(#130429) Rate limit hit",
    type="OAuthException",
    code=130429,
    error_subcode=2494055,
    error_data={"messaging_product": "whatsapp", "details": "Cloud API message throughput"},
    fbtrace_id="AbCdEf123",
)


def test_parse_full_envelope() -> None:
    info = parse_error_envelope(FULL, 400)
    assert info is not None
    assert info.code == 130429
    assert info.subcode == 2494055
    assert info.type == "OAuthException"
    assert info.message == "(#130429) Rate limit hit"
    assert info.details == "Cloud API message throughput"
    assert info.fbtrace_id == "AbCdEf123"
    assert info.http_status == 400


@pytest.mark.parametrize(
    ("payload", "code", "subcode", "details", "fbtrace_id"),
    [
        pytest.param(
            _envelope(message="Invalid OAuth access token", code=190),
            190,
            None,
            None,
            None,
            id="missing subcode, details and trace id",
        ),
        pytest.param(
            _envelope(message="x", code="131056", error_subcode="2494055"),
            131056,
            2494055,
            None,
            None,
            id="code and subcode as strings",
        ),
        pytest.param(
            _envelope(message="x", code=100, error_data="not a mapping"),
            100,
            None,
            None,
            None,
            id="error_data not a mapping",
        ),
        pytest.param(
            _envelope(message="x", code=100, error_subcode=True, fbtrace_id=42),
            100,
            None,
            None,
            "42",
            id="boolean subcode ignored, numeric trace id kept as text",
        ),
    ],
)
def test_parse_partial_envelopes(
    payload: Any, code: int, subcode: int | None, details: str | None, fbtrace_id: str | None
) -> None:
    info = parse_error_envelope(payload, 400)
    assert info is not None
    assert (info.code, info.subcode, info.details, info.fbtrace_id) == (
        code,
        subcode,
        details,
        fbtrace_id,
    )


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(None, id="no body"),
        pytest.param("Internal Server Error", id="plain text"),
        pytest.param([{"error": {"code": 1}}], id="a list"),
        pytest.param({"data": []}, id="a success body"),
        pytest.param({"error": "boom"}, id="error is a string"),
        pytest.param({"error": {"message": "no code"}}, id="error without code"),
        pytest.param({"error": {"code": "abc"}}, id="non-numeric code"),
        pytest.param({"error": {"code": True}}, id="boolean code"),
        pytest.param({"error": {"code": 1.5}}, id="float code"),
    ],
)
def test_parse_rejects_what_is_not_an_envelope(payload: Any) -> None:
    assert parse_error_envelope(payload, 500) is None


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(
            _envelope(message=f"Malformed access token {TOKEN}", code=190),
            id="token in message",
        ),
        pytest.param(
            _envelope(message="x", code=131008, error_data={"details": f"param token={TOKEN}"}),
            id="token in details",
        ),
        pytest.param(
            _envelope(
                message=f"{TOKEN}{TOKEN}",
                code=190,
                error_data={"details": f"{TOKEN} and again {TOKEN}"},
            ),
            id="token repeated in both",
        ),
    ],
)
def test_parse_redacts_echoed_secrets(payload: Any) -> None:
    info = parse_error_envelope(payload, 400, redact=(TOKEN, ""))
    assert info is not None
    assert TOKEN not in repr(info)
    assert "[REDACTED]" in info.message + (info.details or "")


def test_parse_truncates_long_messages() -> None:
    info = parse_error_envelope(_envelope(message="m" * 5000, code=1), 500)
    assert info is not None
    assert 0 < len(info.message) <= 500
