"""The legacy way in: a tenant's Meta credentials, as the seed's tenant service serves them
(``GET /tenants/{tenantId}/credentials/meta`` -> ``{"accessToken": ...}``).

For services that read `tenant_whatsapp_config` directly and now meet encrypted tokens::

    creds = await read_credentials(dsn_or_database, "t_a3eecb94bb822a92", cipher)
    creds = read_credentials_sync(dsn, "t_a3eecb94bb822a92", cipher)   # no event loop yet

or from a shell (exit 0 and the token on stdout; exit 1 with the reason on stderr)::

    whatsapp-credentials get --tenant-id t_a3eecb94bb822a92 --keys-dir /etc/whatsapp-keys \
        --audit-key-file /etc/whatsapp-audit/key --json

Every read goes through `AUDIT_HOOKS` (and the `audit` argument), which get a
`CredentialRead`, never the token, and is recorded in the audit trail of the same database
(audit.py): a `credentials_read` entry with actor `caller` (`--actor`; default
`legacy:<OS user>`), the outcome and the token's fingerprint. A read whose entry cannot be
written fails with DatabaseError, so no read goes unrecorded (the reading role needs INSERT
on `whatsapp_operator_audit` and USAGE on its sequence). The trail is keyed (audit_key.py): a
reader is given the audit key (`audit_key`, `--audit-key-file` or
$WHATSAPP_OPERATOR_AUDIT_KEY_FILE) and, without it, gets no credentials. A database without the
audit table yet (migration 3 not applied) is read with a warning instead.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from whatsapp_operator.model import secret_data
from whatsapp_operator.postgres.audit import LIMITS, AuditEvent, AuditLog
from whatsapp_operator.postgres.audit_key import KEY_FILE_ENV, AuditKey
from whatsapp_operator.postgres.crypto import Keyring, TokenCipher
from whatsapp_operator.postgres.database import Database
from whatsapp_operator.postgres.errors import DatabaseError
from whatsapp_operator.postgres.migrations import AUDIT_TABLE

DATABASE_URL_ENV = "WHATSAPP_OPERATOR_DATABASE_URL"
KEYS_ENV = "WHATSAPP_TOKEN_KEYS"
TokenState = Literal["ok", "empty", "unreadable"]
Outcome = Literal["ok", "not_found", "inactive", "empty", "unreadable"]
UNDEFINED_TABLE = "42P01"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credentials:
    tenant_id: str
    waba_id: str
    phone_number_id: str
    access_token: str | None = field(repr=False)  # None: empty or unreadable (token_state)
    is_active: bool
    token_state: TokenState

    @property
    def usable(self) -> bool:
        return self.is_active and self.access_token is not None

    def __str__(self) -> str:
        return f"<credentials of {self.tenant_id}: token {self.token_state}>"


@dataclass(frozen=True)
class CredentialRead:
    """What an audit hook learns about one read (no token)."""

    tenant_id: str
    outcome: Outcome
    at: datetime
    caller: str


AuditHook = Callable[[CredentialRead], None]
AUDIT_HOOKS: list[AuditHook] = []


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid {os.getuid()}"


def _program() -> str:
    return f"{os.path.basename(sys.argv[0] or 'python')}, pid {os.getpid()}"


def _whoami() -> str:
    return f"{_os_user()} ({_program()})"


def _outcome(creds: Credentials | None) -> Outcome:
    if creds is None:
        return "not_found"
    if creds.token_state != "ok":
        return creds.token_state
    return "ok" if creds.is_active else "inactive"


async def read_credentials(
    source: str | Database,
    tenant_id: str,
    cipher: TokenCipher,
    *,
    audit: AuditHook | None = None,
    caller: str | None = None,
    audit_key: AuditKey | None = None,
) -> Credentials | None:
    """The tenant's credentials (token decrypted), or None if it has no row. Raises
    DatabaseError (or its subclasses) when the database cannot answer, ValueError without
    `audit_key` when the database has the audit trail (the read could not be recorded)."""
    db = source if isinstance(source, Database) else None
    if db is None:
        db = await Database.connect(str(source), min_size=0, max_size=1)
    try:
        row = await db.fetch_seed_columns(tenant_id)
        creds = _credentials(row, tenant_id, cipher)
        read = CredentialRead(tenant_id, _outcome(creds), datetime.now(UTC), caller or _whoami())
        await _record(db, read, creds, caller, audit_key)
    finally:
        if not isinstance(source, Database):
            await db.close()
    for hook in (*AUDIT_HOOKS, *((audit,) if audit else ())):
        hook(read)
    return creds


def _credentials(
    row: dict[str, Any] | None, tenant_id: str, cipher: TokenCipher
) -> Credentials | None:
    creds: Credentials | None = None
    if row is not None:
        stored = str(row["access_token"] or "")
        token = cipher.open(stored, tenant_id)
        state: TokenState = "ok" if token is not None else "empty" if not stored else "unreadable"
        creds = Credentials(
            tenant_id=tenant_id,
            waba_id=str(row["waba_id"]),
            phone_number_id=str(row["phone_number_id"]),
            access_token=token,
            is_active=row["is_active"] is not False,  # NULL counts as the column default: true
            token_state=state,
        )
    return creds


async def _record(
    db: Database,
    read: CredentialRead,
    creds: Credentials | None,
    caller: str | None,
    key: AuditKey | None,
) -> None:
    """The read's `credentials_read` entry in the audit trail (see the module docstring)."""
    token = creds.access_token if creds is not None else None
    if key is None:
        async with db.transaction() as run:
            found = await run("SELECT to_regclass(%s) IS NOT NULL AS present", (AUDIT_TABLE,))
        if found[0]["present"]:
            raise ValueError(
                "reads are recorded in the audit trail, which is keyed: give the audit key "
                f"(--audit-key-file or ${KEY_FILE_ENV})"
            )
        log.warning("credentials read not audited: %s has no audit table yet", db.target)
        return
    try:
        await AuditLog(db, key).append(
            read.tenant_id[: LIMITS["tenant_id"]],  # longer ids match no row: still recorded
            AuditEvent.CREDENTIALS_READ,
            caller or f"legacy:{_os_user()}",
            secret_data.fingerprint(token) if token else None,
            f"outcome={read.outcome} ({_program()})",
        )
    except DatabaseError as err:
        if err.sqlstate != UNDEFINED_TABLE:
            raise
        log.warning("credentials read not audited: %s has no audit table yet", db.target)


def read_credentials_sync(
    dsn: str,
    tenant_id: str,
    cipher: TokenCipher,
    *,
    audit: AuditHook | None = None,
    caller: str | None = None,
    audit_key: AuditKey | None = None,
) -> Credentials | None:
    """`read_credentials` for code without an event loop."""
    return asyncio.run(
        read_credentials(dsn, tenant_id, cipher, audit=audit, caller=caller, audit_key=audit_key)
    )


_MESSAGES: dict[Outcome, str] = {
    "not_found": "Credentials not found: no row for tenant {t!r} in tenant_whatsapp_config",
    "inactive": "Credentials of tenant {t!r} are deactivated (is_active = false)",
    "empty": "Tenant {t!r} has no stored access token",
    "unreadable": "The access token of tenant {t!r} cannot be decrypted with the given keys "
    "(missing key, wrong keys, or the value was altered)",
    "ok": "",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="whatsapp-credentials",
        description="Read a tenant's Meta credentials from tenant_whatsapp_config.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    get = sub.add_parser("get", help="print the tenant's access token")
    get.add_argument("--tenant-id", required=True)
    get.add_argument(
        "--database-url", help=f"PostgreSQL URL (default: ${DATABASE_URL_ENV}; prefer the env)"
    )
    get.add_argument("--keys-dir", help=f"folder of token keys (else ${KEYS_ENV}: kid=b64,...)")
    get.add_argument(
        "--json", action="store_true", help='print {"accessToken": ...} like the tenant service'
    )
    get.add_argument("--actor", help="who reads, for the audit trail (default: legacy:<OS user>)")
    get.add_argument(
        "--audit-key-file", help=f"the audit trail's key (a mounted Secret; else ${KEY_FILE_ENV})"
    )
    return p


def _cipher(keys_dir: str | None) -> TokenCipher:
    if keys_dir:
        return TokenCipher("plaintext", Keyring.from_directory(keys_dir))
    if os.environ.get(KEYS_ENV):
        return TokenCipher("plaintext", Keyring.from_env(os.environ[KEYS_ENV]))
    return TokenCipher("plaintext", None)  # reads plaintext rows only


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    dsn = args.database_url or os.environ.get(DATABASE_URL_ENV)
    if not dsn:
        print(f"whatsapp-credentials: set --database-url or ${DATABASE_URL_ENV}", file=sys.stderr)
        return 2
    try:
        cipher = _cipher(args.keys_dir)
        key = AuditKey.from_env(args.audit_key_file)
        creds = read_credentials_sync(dsn, args.tenant_id, cipher, caller=args.actor, audit_key=key)
    except (DatabaseError, ValueError) as err:
        print(f"whatsapp-credentials: {err}", file=sys.stderr)
        return 1
    outcome = _outcome(creds)
    if creds is None or outcome != "ok" or creds.access_token is None:
        print(
            f"whatsapp-credentials: {_MESSAGES[outcome].format(t=args.tenant_id)}", file=sys.stderr
        )
        return 1
    print(json.dumps({"accessToken": creds.access_token}) if args.json else creds.access_token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
