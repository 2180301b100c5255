"""Is this request Meta's? The two checks of Meta's webhooks, pure (no I/O).

Graph API Webhooks, "Getting Started"
(https://developers.facebook.com/docs/graph-api/webhooks/getting-started):

- *Verification requests*: when a Callback URL is configured in the App Dashboard, Meta sends
  `GET <url>?hub.mode=subscribe&hub.challenge=<int>&hub.verify_token=<the Verify Token>`; the
  endpoint checks that `hub.verify_token` is the app's Verify Token and answers with the
  `hub.challenge` value. Anything else: refused (403 here).
- *Event notifications*: every POST is signed: header `X-Hub-Signature-256: sha256=<hex>`,
  the HMAC-SHA256 of the raw body (the bytes as sent, before any JSON parsing) with the
  App Secret as key. The endpoint computes it and compares.

Every comparison of a secret is constant-time (`hmac.compare_digest`), on bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from typing import Literal

SIGNATURE_HEADER = "X-Hub-Signature-256"
PREFIX = "sha256="
_HEX_DIGEST = 64  # hex characters of a SHA-256
# Meta's challenge is an int; anything echoed stays a short, inert token (text/plain anyway)
_CHALLENGE = re.compile(r"[A-Za-z0-9._~-]{1,256}")

Verdict = Literal["ok", "unsigned", "bad_signature"]


def sign(body: bytes, secret: bytes) -> str:
    """The header value Meta sends for `body` signed with `secret` (tests, benchmarks)."""
    return PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_digest(header: str | None) -> bytes | None:
    """The 32 bytes of a `sha256=<64 hex digits>` header, or None when it is not one."""
    if header is None:
        return None
    value = header.strip()
    if value[: len(PREFIX)].lower() != PREFIX or len(value) != len(PREFIX) + _HEX_DIGEST:
        return None
    try:
        return bytes.fromhex(value[len(PREFIX) :])
    except ValueError:
        return None


def verify(body: bytes, header: str | None, secret: bytes) -> Verdict:
    """`ok` when `header` is the signature of `body` with `secret`."""
    if header is None or not header.strip():
        return "unsigned"
    digest = signature_digest(header)
    if digest is None:
        return "bad_signature"
    expected = hmac.new(secret, body, hashlib.sha256).digest()
    return "ok" if hmac.compare_digest(expected, digest) else "bad_signature"


def find_signer(
    body: bytes, header: str | None, secrets: Mapping[str, bytes]
) -> tuple[Verdict, str | None]:
    """For the route without an app in its path: the app (by id) whose secret signed `body`.

    Costs one HMAC per app; an app's own Callback URL (`/webhooks/{app_id}`) costs one."""
    if header is None or not header.strip():
        return "unsigned", None
    digest = signature_digest(header)
    if digest is None:
        return "bad_signature", None
    for app_id, secret in secrets.items():
        expected = hmac.new(secret, body, hashlib.sha256).digest()
        if hmac.compare_digest(expected, digest):
            return "ok", app_id
    return "bad_signature", None


def handshake(query: Mapping[str, str], tokens: Iterable[bytes]) -> str | None:
    """The challenge to answer with, or None (403): `hub.mode` must be `subscribe` and
    `hub.verify_token` one of `tokens` (the app's; every app's on the app-less route)."""
    mode = query.get("hub.mode")
    token = query.get("hub.verify_token")
    challenge = query.get("hub.challenge")
    if mode != "subscribe" or not token or challenge is None:
        return None
    if not _CHALLENGE.fullmatch(challenge):
        return None
    given = token.encode()
    matched = False
    for expected in tokens:  # no early exit: the time taken says nothing about which matched
        matched |= hmac.compare_digest(given, expected)
    return challenge if matched else None
