"""The audit chain's key: each entry of `whatsapp_operator_audit` carries an HMAC-SHA256 of its
fields and of the entry before it (audit.py), so whoever can edit the table without the key
(its owner, a superuser, anyone with a dump to restore) cannot recompute a chain that
`whatsapp-audit verify` accepts.

The key comes from a Kubernetes Secret mounted as a file (the chart's `auditKey`), named by
`--audit-key-file` / WHATSAPP_OPERATOR_AUDIT_KEY_FILE; the same file is what `whatsapp-audit
verify` and `whatsapp-credentials` (which records every read) are given. Its content, without
surrounding whitespace, is the key: at least 32 bytes, e.g. ``openssl rand -base64 48``.
Nothing here ever puts key material into a message, a repr or an exception.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

KEY_FILE_ENV = "WHATSAPP_OPERATOR_AUDIT_KEY_FILE"
MIN_BYTES = 32


class AuditKey:
    """HMAC-SHA256 key of the audit chain. Its repr and str never show the key."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) < MIN_BYTES:
            size = len(key) if isinstance(key, bytes) else type(key).__name__
            raise ValueError(
                f"audit key: {size} bytes; at least {MIN_BYTES} are needed "
                "(e.g. `openssl rand -base64 48`)"
            )
        self._key = key

    @classmethod
    def from_file(cls, path: str | Path) -> AuditKey:
        """The key in a file (a mounted Secret's key), surrounding whitespace removed."""
        file = Path(path)
        try:
            raw = file.read_bytes()
        except IsADirectoryError:
            raise ValueError(f"audit key file {file} is a folder: name the file in it") from None
        except OSError as err:
            raise ValueError(f"cannot read the audit key file {file}: {err.strerror}") from None
        try:
            return cls(raw.strip())
        except ValueError as err:
            raise ValueError(
                f"audit key file {file}: {str(err).removeprefix('audit key: ')}"
            ) from None

    @classmethod
    def from_env(cls, path: str | None = None) -> AuditKey | None:
        """From `path`, else the file named by $WHATSAPP_OPERATOR_AUDIT_KEY_FILE; None: neither."""
        chosen = path or os.environ.get(KEY_FILE_ENV)
        return cls.from_file(chosen) if chosen else None

    def mac(self, payload: bytes) -> str:
        """HMAC-SHA256 of `payload`, as 64 hex digits (the width of the `hash` column)."""
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "AuditKey(<hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("an AuditKey cannot be pickled (it holds key material)")
