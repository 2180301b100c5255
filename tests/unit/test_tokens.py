"""Reading the token from a Secret's data (operator/whatsapp_operator/model/secret_data.py)."""

from __future__ import annotations

import base64

import pytest

from whatsapp_operator.model.conditions import Reason
from whatsapp_operator.model.secret_data import ResolvedToken, fingerprint, resolve_token

TOKEN = "EAAGm0PX4ZCpsBAKZB7ZCZBdemoTOKEN1234567890"
KEY = "accessToken"


def b64(raw: bytes | str) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("data", "reason", "words"),
    [
        pytest.param(None, Reason.SECRET_NOT_FOUND, ["'meta'", "not found"], id="Secret missing"),
        pytest.param(
            {"token": b64(TOKEN), "appSecret": b64("x")},
            Reason.SECRET_KEY_MISSING,
            ["'accessToken'", "appSecret, token"],
            id="key missing lists the keys present",
        ),
        pytest.param(
            {}, Reason.SECRET_KEY_MISSING, ["keys present: none"], id="Secret without keys"
        ),
        pytest.param({KEY: ""}, Reason.TOKEN_EMPTY, ["empty"], id="empty value"),
        pytest.param(
            {KEY: b64(" \n\t ")}, Reason.TOKEN_EMPTY, ["only whitespace"], id="whitespace only"
        ),
        pytest.param(
            {KEY: b64("EAAG abc")},
            Reason.TOKEN_MALFORMED,
            ["whitespace or control"],
            id="inner space",
        ),
        pytest.param(
            {KEY: b64("EAAG\nabc")},
            Reason.TOKEN_MALFORMED,
            ["whitespace or control"],
            id="inner newline",
        ),
        pytest.param(
            {KEY: b64("EAAG\x00abc")},
            Reason.TOKEN_MALFORMED,
            ["control"],
            id="control character",
        ),
        pytest.param(
            {KEY: b64("EAAGabc\x7f")},
            Reason.TOKEN_MALFORMED,
            ["control"],
            id="trailing DEL",
        ),
        pytest.param(
            {KEY: b64(b"\xff\xfe\x00binary")},
            Reason.TOKEN_MALFORMED,
            ["binary"],
            id="binary value",
        ),
        pytest.param(
            {KEY: "not base64!!"}, Reason.TOKEN_MALFORMED, ["base64"], id="invalid base64"
        ),
        pytest.param(
            {KEY: TOKEN[:-1]}, Reason.TOKEN_MALFORMED, ["base64"], id="plain token, not base64"
        ),
        pytest.param(
            {KEY: b64("E" * 4097)}, Reason.TOKEN_MALFORMED, ["4097 bytes"], id="over 4096 bytes"
        ),
    ],
)
def test_resolve_token_failures(data: dict[str, str] | None, reason: str, words: list[str]) -> None:
    outcome = resolve_token(data, "meta", KEY)
    assert not outcome.ok
    assert outcome.token is None
    assert outcome.reason == reason
    for word in words:
        assert word in outcome.message
    assert "EAAG" not in outcome.message


@pytest.mark.parametrize(
    ("raw", "trimmed"),
    [
        pytest.param(TOKEN, False, id="good token"),
        pytest.param(TOKEN + "\n", True, id="trailing newline trimmed"),
        pytest.param("  " + TOKEN + "\r\n", True, id="surrounding whitespace trimmed"),
        pytest.param("E" * 4096, False, id="exactly 4096 bytes"),
    ],
)
def test_resolve_token_success(raw: str, trimmed: bool) -> None:
    outcome = resolve_token({KEY: b64(raw), "other": b64("x")}, "meta", KEY)
    assert outcome.ok
    assert outcome.reason == Reason.RESOLVED
    assert outcome.token is not None
    assert outcome.token.value == raw.strip()
    assert outcome.token.trimmed is trimmed
    assert outcome.token.fingerprint == fingerprint(raw.strip())
    assert ("whitespace ignored" in outcome.message) is trimmed
    assert raw.strip() not in outcome.message


def test_trimmed_token_has_the_same_fingerprint_as_the_clean_one() -> None:
    clean = resolve_token({KEY: b64(TOKEN)}, "s", KEY).token
    dirty = resolve_token({KEY: b64(TOKEN + "\n")}, "s", KEY).token
    assert clean is not None
    assert dirty is not None
    assert clean.fingerprint == dirty.fingerprint


def test_fingerprint_is_stable_short_and_hides_the_token() -> None:
    fp = fingerprint(TOKEN)
    assert fp == fingerprint(TOKEN)
    assert fp != fingerprint(TOKEN + "x")
    assert fp.startswith("sha256:")
    assert len(fp) <= 32
    assert TOKEN not in fp
    assert TOKEN[:12] not in fp


def test_resolved_token_never_shows_its_value() -> None:
    token = ResolvedToken(TOKEN, fingerprint(TOKEN), trimmed=True)
    outcome = resolve_token({KEY: b64(TOKEN)}, "meta", KEY)
    for text in (repr(token), str(token), repr(outcome), str(outcome)):
        assert TOKEN not in text
    assert fingerprint(TOKEN) in str(token)
