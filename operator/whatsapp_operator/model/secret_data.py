"""Reading the Meta access token out of a tenant's Secret, and naming it without showing it.

Pure: takes the Secret's `data` map (base64 values, as the API returns them) and says what
is wrong in words the Secret's author understands. The token value lives only inside
`ResolvedToken`, whose repr never shows it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from whatsapp_contract.fingerprint import fingerprint as fingerprint  # re-exported
from whatsapp_operator.model.conditions import Reason

MAX_TOKEN_BYTES = 4096  # Meta's tokens are a few hundred bytes; anything far larger is a mistake


@dataclass(frozen=True)
class ResolvedToken:
    value: str = field(repr=False)
    fingerprint: str
    trimmed: bool = False  # surrounding whitespace (a trailing newline, usually) was removed
    # Meta's appsecret_proof for this token, when the tenant's app secret is known (app_proof)
    proof: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"<token {self.fingerprint}>"


@dataclass(frozen=True)
class SecretOutcome:
    token: ResolvedToken | None
    reason: str
    message: str

    @property
    def ok(self) -> bool:
        return self.token is not None


@dataclass(frozen=True)
class Decoded:
    """One value of a Secret's `data` map decoded: the one decoder of Secret data (tokens,
    app credentials, a signup's code and PIN). `problem` is empty when the value is text;
    otherwise `no-secret`, `no-key`, `not-base64` or `not-text`. Each reader says in its own
    words what it wanted and why this is not it."""

    problem: str
    message: str = ""  # the problem in words the Secret's author understands
    raw_size: int = 0
    text: str = field(default="", repr=False)  # as written (UTF-8), not stripped

    @property
    def stripped(self) -> str:
        return self.text.strip()

    @property
    def one_value(self) -> bool:
        """A single printable value: no whitespace or control character inside."""
        return not any(ch.isspace() or not ch.isprintable() for ch in self.stripped)


def decode(data: Mapping[str, str] | None, secret_name: str, key: str) -> Decoded:
    """The value under `key` of a Secret's data map (base64 values; `data` None: no Secret)."""
    if data is None:
        return Decoded("no-secret", f"Secret {secret_name!r} not found")
    if key not in data:
        present = ", ".join(sorted(data)) or "none"
        message = f"Secret {secret_name!r} has no key {key!r} (keys present: {present})"
        return Decoded("no-key", message)
    try:
        raw = base64.b64decode(data[key] or "", validate=True)
    except (binascii.Error, ValueError):
        return Decoded("not-base64")
    try:
        return Decoded("", raw_size=len(raw), text=raw.decode("utf-8"))
    except UnicodeDecodeError:
        return Decoded("not-text", raw_size=len(raw))


def resolve_token(data: Mapping[str, str] | None, secret_name: str, key: str) -> SecretOutcome:
    """The token from a Secret's data map, or why there is none. `data` None: no Secret."""
    found = decode(data, secret_name, key)
    if found.problem == "no-secret":
        return SecretOutcome(None, Reason.SECRET_NOT_FOUND, found.message)
    if found.problem == "no-key":
        return SecretOutcome(None, Reason.SECRET_KEY_MISSING, found.message)
    where = f"Secret {secret_name!r} key {key!r}"
    if found.problem == "not-base64":
        return SecretOutcome(None, Reason.TOKEN_MALFORMED, f"{where} is not valid base64")
    if found.raw_size > MAX_TOKEN_BYTES:
        return SecretOutcome(
            None,
            Reason.TOKEN_MALFORMED,
            f"{where} holds {found.raw_size} bytes; a Meta access token is at most "
            f"{MAX_TOKEN_BYTES}",
        )
    if found.problem == "not-text":
        return SecretOutcome(None, Reason.TOKEN_MALFORMED, f"{where} is binary, not text")
    if not found.text:
        return SecretOutcome(None, Reason.TOKEN_EMPTY, f"{where} is empty")
    token = found.stripped
    if not token:
        return SecretOutcome(None, Reason.TOKEN_EMPTY, f"{where} holds only whitespace")
    if not found.one_value:
        return SecretOutcome(
            None,
            Reason.TOKEN_MALFORMED,
            f"{where} contains whitespace or control characters inside the token",
        )
    trimmed = token != found.text
    note = " (surrounding whitespace ignored)" if trimmed else ""
    return SecretOutcome(
        ResolvedToken(token, fingerprint(token), trimmed),
        Reason.RESOLVED,
        f"token read from {where}{note}",
    )


@dataclass(frozen=True)
class AppCredentials:
    """The Meta app's id and secret from a Secret, or why they cannot be had."""

    app_id: str | None
    app_secret: str | None = field(repr=False)
    problem: str = ""  # empty when both were read

    @property
    def ok(self) -> bool:
        return not self.problem


def decode_value(data: Mapping[str, str], key: str) -> str | None:
    """A base64 value of a Secret as stripped text; None when absent, empty or not text."""
    found = decode(data, "", key)
    return (found.stripped or None) if not found.problem else None


def read_app_credentials(
    data: Mapping[str, str] | None, secret_name: str, app_id_key: str, app_secret_key: str
) -> AppCredentials:
    """The app id and secret from a Secret's data map (None: no Secret). Never echoed."""
    if data is None:
        return AppCredentials(None, None, f"Secret {secret_name!r} not found")
    app_id, app_secret = decode_value(data, app_id_key), decode_value(data, app_secret_key)
    if not app_id or not app_secret:
        return AppCredentials(
            None, None, f"Secret {secret_name!r} lacks {app_id_key!r} or {app_secret_key!r}"
        )
    return AppCredentials(app_id, app_secret)


def with_proof(outcome: SecretOutcome, proof: str | None, note: str) -> SecretOutcome:
    """The outcome with its token's appsecret_proof attached and `note` (where the proof
    comes from, or why there is none) added to the message."""
    if outcome.token is None:
        return outcome
    token = replace(outcome.token, proof=proof)
    message = f"{outcome.message}; {note}" if note else outcome.message
    return SecretOutcome(token, outcome.reason, message)
