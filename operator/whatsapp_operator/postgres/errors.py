"""Errors of the PostgreSQL layer and the helpers that keep their messages to one line
without secrets (passwords from the DSN, tokens in parameters)."""

from __future__ import annotations

import contextlib
import re
import urllib.parse
from collections.abc import Iterable

import psycopg
from psycopg.conninfo import conninfo_to_dict


class DatabaseError(Exception):
    """PostgreSQL refused an operation. The message is one line, free of secrets."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class DatabaseUnavailable(DatabaseError):
    """The server cannot be reached (or no connection came free in time): retry later."""


class DatabaseConfigError(DatabaseError):
    """The database URL or credentials are wrong: retrying will not help."""


def redact_dsn(dsn: str) -> str:
    """`postgresql://user@host:port/dbname` (no password, no options), for messages."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "<unparsable database URL>"
    user = f"{info['user']}@" if info.get("user") else ""
    host = str(info.get("host") or info.get("hostaddr") or "localhost")
    host = f"[{host}]" if ":" in host and "," not in host else host
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{user}{host}{port}/{info.get('dbname') or ''}"


def location_of(dsn: str) -> list[str]:
    """What a message must not show in a tenant's status: the redacted DSN, the user, the
    host names and addresses (longest first, so a host is not half-replaced by another)."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.Error:
        return []
    found = [redact_dsn(dsn), str(info.get("user") or "")]
    for name in ("host", "hostaddr"):
        found += str(info.get(name) or "").split(",")
    return sorted({f for f in found if f}, key=len, reverse=True)


def without_location(text: str, location: Iterable[str]) -> str:
    """`text` with the database's URL, user and hosts left out (for a tenant's status, its
    Events): `cannot connect to the database: ... connection to server at <host> ...`."""
    for part in location:
        if part.startswith("postgresql://"):
            text = text.replace(f"to {part}", "to the database").replace(part, "the database")
        elif part:
            text = re.sub(rf"(?<![\w.-]){re.escape(part)}(?![\w-])", "<hidden>", text)
    return text


def secrets_of(dsn: str) -> list[str]:
    found = [str(conninfo_to_dict(dsn).get("password") or "")]
    with contextlib.suppress(ValueError):
        found.append(urllib.parse.unquote(urllib.parse.urlsplit(dsn).password or ""))
    found += re.findall(r"password\s*=\s*'?([^\s']+)", dsn)
    return [s for s in found if s]


def one_line(err: BaseException, secrets: Iterable[str | None]) -> str:
    """The error's primary message on one line, with every secret masked."""
    text = ""
    if isinstance(err, psycopg.Error) and err.diag.message_primary:
        text = err.diag.message_primary
    text = " ".join((text or str(err) or type(err).__name__).split())
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text[:400]


_CONFIG_STATES = {"28P01", "28000", "3D000", "42501"}
_CONFIG_WORDS = ("password", "does not exist", "pg_hba.conf", "invalid integer value")


def is_config_error(err: psycopg.Error, text: str) -> bool:
    return err.sqlstate in _CONFIG_STATES or any(w in text for w in _CONFIG_WORDS)


def conn_broken(err: psycopg.Error) -> bool:
    """Whether an OperationalError means the connection (not just the statement) failed."""
    return err.sqlstate is None or err.sqlstate.startswith(("08", "57P"))
