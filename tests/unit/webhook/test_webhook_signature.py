"""X-Hub-Signature-256 (HMAC-SHA256 of the raw body with the App Secret) and the handshake
(hub.mode=subscribe + the Verify Token -> hub.challenge), as Meta's Graph API Webhooks
"Getting Started" describes them. Table-driven."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from whatsapp_webhook import signature
from whatsapp_webhook.signature import find_signer, handshake, sign, verify

SECRET = b"app-secret"
BODY = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
GOOD = "sha256=" + hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()


def test_sign_is_metas_header_value() -> None:
    assert sign(BODY, SECRET) == GOOD
    assert signature.SIGNATURE_HEADER == "X-Hub-Signature-256"


@pytest.mark.parametrize(
    ("header", "body", "secret", "verdict"),
    [
        pytest.param(GOOD, BODY, SECRET, "ok", id="the app's signature of the body"),
        pytest.param(GOOD.upper().replace("SHA256=", "sha256="), BODY, SECRET, "ok",
                     id="upper-case hex digits"),
        pytest.param("SHA256=" + GOOD[7:], BODY, SECRET, "ok", id="upper-case prefix"),
        pytest.param(f"  {GOOD} ", BODY, SECRET, "ok", id="surrounding blanks"),
        pytest.param(None, BODY, SECRET, "unsigned", id="no header"),
        pytest.param("", BODY, SECRET, "unsigned", id="empty header"),
        pytest.param("   ", BODY, SECRET, "unsigned", id="blank header"),
        pytest.param(GOOD, BODY, b"another-secret", "bad_signature", id="another app's secret"),
        pytest.param(GOOD, BODY + b" ", SECRET, "bad_signature", id="one byte more"),
        pytest.param(GOOD, BODY.replace(b": ", b":"), SECRET, "bad_signature",
                     id="same JSON, other bytes: the raw body counts"),
        pytest.param(GOOD[7:], BODY, SECRET, "bad_signature", id="hex without the prefix"),
        pytest.param("sha1=" + hmac.new(SECRET, BODY, hashlib.sha1).hexdigest(), BODY, SECRET,
                     "bad_signature", id="the old sha1 header"),
        pytest.param(GOOD[:-1], BODY, SECRET, "bad_signature", id="63 hex digits"),
        pytest.param(GOOD + "0", BODY, SECRET, "bad_signature", id="65 hex digits"),
        pytest.param("sha256=" + "z" * 64, BODY, SECRET, "bad_signature", id="not hex"),
        pytest.param("sha256=" + "é" * 64, BODY, SECRET, "bad_signature", id="not ASCII"),
    ],
)  # fmt: skip
def test_verify(header: str | None, body: bytes, secret: bytes, verdict: str) -> None:
    assert verify(body, header, secret) == verdict


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(sign(BODY, b"secret-b"), ("ok", "b"), id="the second app signed"),
        pytest.param(sign(BODY, b"secret-a"), ("ok", "a"), id="the first app signed"),
        pytest.param(sign(BODY, b"nobody"), ("bad_signature", None), id="no app signed"),
        pytest.param("sha256=xyz", ("bad_signature", None), id="not a signature"),
        pytest.param(None, ("unsigned", None), id="unsigned"),
    ],
)
def test_find_signer_on_the_app_less_route(header: str | None, expected: tuple[str, str]) -> None:
    assert find_signer(BODY, header, {"a": b"secret-a", "b": b"secret-b"}) == expected


TOKENS = [b"token-a", b"token-b"]


def query(mode: str | None = "subscribe", token: str | None = "token-a",
          challenge: str | None = "1158201444") -> dict[str, str]:  # fmt: skip
    q = {"hub.mode": mode, "hub.verify_token": token, "hub.challenge": challenge}
    return {k: v for k, v in q.items() if v is not None}


@pytest.mark.parametrize(
    ("q", "tokens", "answer"),
    [
        pytest.param(query(), TOKENS, "1158201444", id="the right token: the challenge"),
        pytest.param(query(token="token-b"), TOKENS, "1158201444", id="any app's token"),
        pytest.param(query(token="token-b"), [b"token-a"], None, id="another app's token"),
        pytest.param(query(token="token-"), TOKENS, None, id="a prefix of the token"),
        pytest.param(query(token="token-aa"), TOKENS, None, id="the token and more"),
        pytest.param(query(token="wrong"), TOKENS, None, id="a wrong token"),
        pytest.param(query(token=None), TOKENS, None, id="no token"),
        pytest.param(query(token=""), TOKENS, None, id="an empty token"),
        pytest.param(query(token="tökén"), TOKENS, None, id="a non-ASCII token"),
        pytest.param(query(mode="unsubscribe"), TOKENS, None, id="mode not subscribe"),
        pytest.param(query(mode=None), TOKENS, None, id="no mode"),
        pytest.param(query(challenge=None), TOKENS, None, id="no challenge"),
        pytest.param(query(challenge=""), TOKENS, None, id="an empty challenge"),
        pytest.param(query(challenge="<script>alert(1)</script>"), TOKENS, None,
                     id="a challenge that is markup"),
        pytest.param(query(challenge="9" * 257), TOKENS, None, id="a challenge too long"),
        pytest.param(query(), [], None, id="no app configured"),
    ],
)  # fmt: skip
def test_handshake(q: dict[str, str], tokens: list[bytes], answer: str | None) -> None:
    assert handshake(q, tokens) == answer
