"""Access tokens at rest: AES-256-GCM under a keyring, each ciphertext bound to its tenant.

Stored form of an encrypted token (the `access_token` column)::

    enc:v1:<key id>:<urlsafe base64 (no padding) of nonce(12) || ciphertext || tag(16)>

The associated data is ``b"tenant_whatsapp_config:" + tenant_id``, so a ciphertext copied into
another tenant's row does not decrypt. The `verify_token` column (a WhatsAppApp's webhook
verify token) is sealed the same way, its associated data naming the column too
(``b"tenant_whatsapp_config:verify_token:" + tenant_id``; tenant ids hold no colon), so neither
column's ciphertext opens as the other's. Values not starting with ``enc:`` are plaintext tokens
(rows written in `plaintext` mode, or by the legacy service): the `plaintext` and `none` modes
read them back as they are; the `encrypted` mode refuses them (`open` gives None, as for a
tampered value), so a token written into the row by hand is never taken for the tenant's: the
tenant's reconcile replaces it with its Secret's token, sealed (and says so in an Event).

Keys come from a Kubernetes Secret (`Keyring.from_secret_data`, or mounted as a folder:
`Keyring.from_directory`) or from an env var (`Keyring.from_env`). The primary key, used for
new writes, is explicit: the key named by the `primary` entry, or the only key. With several
keys and no `primary` entry a keyring still decrypts (a legacy reader needs no primary), but
the `encrypted` mode refuses it. A key added next to the primary is a decryption key only, so
legacy readers can be given it first; naming it `primary` is the switch: from then on new
writes use it and the rekey pass re-seals rows under the older keys (`TokenCipher.needs_rekey`,
postgres/maintenance.py).

Pure: no I/O besides reading the files it is pointed at. Nothing here ever puts key material
or a token into a message, a repr or an exception.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, get_args

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

Mode = Literal["encrypted", "plaintext", "none"]
MODES: tuple[str, ...] = get_args(Mode)
PREFIX = "enc:"
VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
PRIMARY_ENTRY = "primary"
AAD_PREFIX = b"tenant_whatsapp_config:"
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_B64_TEXT = re.compile(rb"\s*[A-Za-z0-9+/_-]{43}=?\s*")  # 32 bytes as base64 text


def _aad(tenant_id: str, column: str) -> bytes:
    """The associated data of a sealed value: the row's tenant, and the column unless it is
    `access_token` (whose form predates the others)."""
    named = b"" if column == "access_token" else column.encode() + b":"
    return AAD_PREFIX + named + tenant_id.encode()


def generate_key() -> bytes:
    """A fresh random AES-256 key."""
    return os.urandom(KEY_BYTES)


def encode_key(key: bytes) -> str:
    """A key as standard base64 (the form `from_env` and Secret `stringData` take)."""
    return base64.b64encode(key).decode()


def _check_id(kid: str, where: str) -> None:
    if not isinstance(kid, str) or not _KEY_ID.fullmatch(kid):
        shown = repr(kid[:40]) if isinstance(kid, str) else type(kid).__name__
        raise ValueError(
            f"{where}: invalid key id {shown}: use 1-32 characters from A-Z a-z 0-9 _ -"
        )


def _b64decode(text: str | bytes) -> bytes:
    """Standard or URL-safe base64, padding optional; raises binascii.Error/ValueError."""
    raw = text.encode() if isinstance(text, str) else text
    raw = raw.strip().replace(b"-", b"+").replace(b"_", b"/")
    raw += b"=" * (-len(raw) % 4)
    return base64.b64decode(raw, validate=True)


def _key_bytes(kid: str, raw: bytes, where: str) -> bytes:
    """32 raw bytes, or 32 bytes written as base64 text (a Secret's stringData, say)."""
    if len(raw) == KEY_BYTES:
        return raw
    if _B64_TEXT.fullmatch(raw):
        decoded = _b64decode(raw)
        if len(decoded) == KEY_BYTES:
            return decoded
    raise ValueError(
        f"{where}: key {kid!r} is {len(raw)} bytes; an AES-256 key is exactly {KEY_BYTES} "
        "bytes (raw, or as 44 characters of base64)"
    )


def no_primary(keyring: Keyring) -> str:
    """The one line that says a keyring has several keys and names none primary."""
    return (
        f"encryption keys: {len(keyring.key_ids)} keys ({', '.join(keyring.key_ids)}) and none "
        f"named primary: add an entry `{PRIMARY_ENTRY}` (a file in the keys folder, a key of "
        "the Secret) whose value is the key id that encrypts new writes"
    )


class Keyring:
    """AES-256 keys by id, and which one encrypts new values. Its repr names ids only."""

    __slots__ = ("_aead", "_primary")

    def __init__(self, keys: Mapping[str, bytes], primary: str | None = None) -> None:
        """`primary`: the key id of new writes; None: the only key, or none (decrypt only)."""
        if not keys:
            raise ValueError("keyring is empty: at least one 32-byte key is needed")
        aead: dict[str, AESGCM] = {}
        for kid, key in keys.items():
            _check_id(kid, "keyring")
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                size = len(key) if isinstance(key, bytes) else type(key).__name__
                raise ValueError(
                    f"keyring: key {kid!r} is {size} bytes; an AES-256 key is exactly "
                    f"{KEY_BYTES} bytes"
                )
            aead[kid] = AESGCM(key)
        if primary is None:
            primary = next(iter(aead)) if len(aead) == 1 else None  # explicit unless one key
        elif primary not in aead:
            raise ValueError(
                f"keyring: primary key {primary[:40]!r} is not among the keys "
                f"({', '.join(sorted(aead))})"
            )
        self._aead = aead
        self._primary = primary

    @property
    def primary(self) -> str | None:
        """The key of new writes; None with several keys and none named (decrypt only)."""
        return self._primary

    def with_primary(self, primary: str) -> Keyring:
        """The same keys, with `primary` as the primary key (ValueError if absent)."""
        if primary not in self._aead:
            raise ValueError(f"keyring: primary key {primary[:40]!r} is not among the keys")
        ring = object.__new__(Keyring)
        ring._aead, ring._primary = self._aead, primary
        return ring

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._aead))

    def __contains__(self, kid: object) -> bool:
        return kid in self._aead

    def aead(self, kid: str) -> AESGCM | None:
        return self._aead.get(kid)

    def __repr__(self) -> str:
        return f"Keyring(key_ids={list(self.key_ids)!r}, primary={self._primary!r})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Keyring cannot be pickled (it holds key material)")

    @classmethod
    def from_secret_data(cls, data: Mapping[str, str]) -> Keyring:
        """From a Secret's `data` (base64 values): one entry per key id, plus an optional
        `primary` entry whose value is the primary key id."""
        keys: dict[str, bytes] = {}
        primary: str | None = None
        for name, value in data.items():
            try:
                raw = _b64decode(value or "")
            except (binascii.Error, ValueError):
                raise ValueError(f"Secret entry {name[:60]!r} is not valid base64") from None
            if name == PRIMARY_ENTRY:
                primary = raw.decode("utf-8", "replace").strip()
                continue
            _check_id(name, "Secret")
            keys[name] = _key_bytes(name, raw, "Secret")
        return cls._build(keys, primary, "Secret")

    @classmethod
    def from_env(cls, text: str) -> Keyring:
        """From ``kid1=<base64>,kid2=<base64>`` (optionally ``primary=<kid>``)."""
        keys: dict[str, bytes] = {}
        primary: str | None = None
        for number, entry in enumerate(text.split(","), 1):
            entry = entry.strip()
            if not entry:
                continue
            kid, sep, value = entry.partition("=")
            kid = kid.strip()
            if not sep:
                raise ValueError(f"keys: entry {number} is not of the form <key id>=<base64 key>")
            if kid == PRIMARY_ENTRY:
                primary = value.strip()
                continue
            _check_id(kid, "keys")
            try:
                raw = _b64decode(value)
            except (binascii.Error, ValueError):
                raise ValueError(f"keys: key {kid!r} is not valid base64") from None
            if len(raw) != KEY_BYTES:
                raise ValueError(
                    f"keys: key {kid!r} decodes to {len(raw)} bytes; an AES-256 key is "
                    f"exactly {KEY_BYTES} bytes"
                )
            keys[kid] = raw
        return cls._build(keys, primary, "keys")

    @classmethod
    def from_directory(cls, path: Path | str) -> Keyring:
        """From a mounted Secret: one file per key id (raw or base64 content), an optional
        `primary` file naming the primary key id; kubelet's dot entries are ignored."""
        folder = Path(path)
        if not folder.is_dir():
            raise ValueError(f"key folder {folder} does not exist or is not a folder")
        keys: dict[str, bytes] = {}
        primary: str | None = None
        where = f"key folder {folder}"
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith(".") or not entry.is_file():
                continue
            try:
                raw = entry.read_bytes()
            except OSError as err:
                raise ValueError(f"{where}: cannot read {entry.name!r}: {err.strerror}") from None
            if entry.name == PRIMARY_ENTRY:
                primary = raw.decode("utf-8", "replace").strip()
                continue
            _check_id(entry.name, where)
            keys[entry.name] = _key_bytes(entry.name, raw, where)
        return cls._build(keys, primary, where)

    @classmethod
    def _build(cls, keys: dict[str, bytes], primary: str | None, where: str) -> Keyring:
        if not keys:
            raise ValueError(f"{where}: no keys found (expected entries named by key id)")
        if primary is not None and primary not in keys:
            raise ValueError(
                f"{where}: primary names key {primary[:40]!r}, which is not among the keys "
                f"({', '.join(sorted(keys))})"
            )
        return cls(keys, primary)


class TokenCipher:
    """Turns a token into the value stored in `access_token`, and back.

    Modes: `encrypted` (AES-GCM under the keyring's primary key), `plaintext` (the token as
    is, like the seed's service), `none` (never stored: the column holds ''). Every mode
    reads plaintext values and, given the keys, encrypted ones.
    """

    __slots__ = ("keyring", "mode")

    def __init__(self, mode: Mode, keyring: Keyring | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"token storage mode {mode!r} is not one of {', '.join(MODES)}")
        if mode == "encrypted" and keyring is None:
            raise ValueError("token storage mode 'encrypted' needs a keyring")
        if mode == "encrypted" and keyring is not None and keyring.primary is None:
            raise ValueError(no_primary(keyring))
        self.mode: Mode = mode
        self.keyring = keyring

    @property
    def keyring_primary(self) -> str | None:
        return self.keyring.primary if self.keyring is not None else None

    def __repr__(self) -> str:
        return f"TokenCipher(mode={self.mode!r}, keyring={self.keyring!r})"

    __str__ = __repr__

    def seal(self, token: str, tenant_id: str, column: str = "access_token") -> str:
        """The `access_token` (or `column`) value for `token` in this tenant's row."""
        if not token or self.mode == "none":
            return ""
        if self.mode == "plaintext":
            if token.startswith(PREFIX):
                raise ValueError(f"a token starting with {PREFIX!r} cannot be stored as plaintext")
            return token
        assert self.keyring is not None
        kid = self.keyring.primary
        aead = self.keyring.aead(kid) if kid is not None else None
        assert kid is not None  # checked by __init__
        assert aead is not None
        nonce = os.urandom(NONCE_BYTES)
        sealed = aead.encrypt(nonce, token.encode(), _aad(tenant_id, column))
        body = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()
        return f"{PREFIX}{VERSION}:{kid}:{body}"

    def open(self, value: str, tenant_id: str, column: str = "access_token") -> str | None:
        """The token in a stored value, or None: empty, unknown key, tampered, another
        tenant's ciphertext, unknown format, or plaintext while encrypting (`is_plaintext`).
        Never raises for what the column holds."""
        if not value or not isinstance(value, str):
            return None
        if not value.startswith(PREFIX):
            return None if self.mode == "encrypted" else value  # see the module docstring
        parts = value.split(":", 3)
        if len(parts) != 4 or parts[1] != VERSION or self.keyring is None:
            return None
        aead = self.keyring.aead(parts[2])
        if aead is None:
            return None
        try:
            blob = _b64decode(parts[3])
            if len(blob) <= NONCE_BYTES + 16:
                return None
            plain = aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(tenant_id, column))
            return plain.decode() or None
        except (InvalidTag, binascii.Error, ValueError):
            return None

    def is_plaintext(self, value: str | None) -> bool:
        """Whether a stored value is a plaintext token that this (encrypted) cipher refuses."""
        return self.mode == "encrypted" and bool(value) and not str(value).startswith(PREFIX)

    @staticmethod
    def key_id(value: str) -> str | None:
        """The key id of an encrypted value; None for plaintext, empty or malformed values."""
        if not value or not value.startswith(PREFIX):
            return None
        parts = value.split(":", 3)
        if len(parts) != 4 or parts[1] != VERSION or not _KEY_ID.fullmatch(parts[2]):
            return None
        return parts[2]

    def needs_rekey(self, value: str) -> bool:
        """Whether the stored form is not what this cipher writes now: encrypted under a key
        other than the primary, plaintext while encrypting, ciphertext while in plaintext
        mode, or any token while in `none` mode. Empty values never need a rekey."""
        if not value:
            return False
        encrypted = value.startswith(PREFIX)
        if self.mode == "none":
            return True
        if self.mode == "plaintext":
            return encrypted
        return not encrypted or self.key_id(value) != self.keyring_primary
