"""The token lifecycle's audit trail: append-only and hash-chained, in PostgreSQL.

Each entry of `whatsapp_operator_audit` (migration 3) carries `hash`, the sha256 of its
fields and of `prev_hash`, the hash of the entry before it (64 zeros for the first). Appends
read the last hash and insert under a transaction-level advisory lock, so the chain stays
one line with many writers and replicas (UNIQUE `prev_hash` forbids forks anyway). `at` is
the server's `clock_timestamp()` under that lock, hashed as stored: UTC ISO 8601 with
microseconds, PostgreSQL's precision. A trigger refuses UPDATE, DELETE and TRUNCATE; whoever
can disable it (a superuser, the owner) can edit rows, and `verify` names the first entry
that no longer fits. Dropping the newest entries leaves a shorter valid chain: keep
`VerifyResult.head` elsewhere to notice. Never a token: `append` refuses token-shaped text.

    whatsapp-audit verify          # exit 0 intact, 1 broken (names the entry), 2 cannot tell
    whatsapp-audit show --tenant-id t_a3eecb94bb822a92 --limit 50
"""

# ruff: noqa: S608  (SQL is built from module constants only; values are always bound)

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from whatsapp_operator.postgres.database import Database
from whatsapp_operator.postgres.errors import DatabaseError
from whatsapp_operator.postgres.migrations import AUDIT_TABLE

DATABASE_URL_ENV = "WHATSAPP_OPERATOR_DATABASE_URL"
GENESIS = "0" * 64  # prev_hash of the first entry
LOCK_ID = 0x5741_5F41_5544_4954  # "WA_AUDIT": pg_advisory_xact_lock key of appends
MAX_DETAIL = 300
LIMITS = {"tenant_id": 50, "actor": 253, "fingerprint": 40}
TOKEN_SHAPE = re.compile(r"EAA[A-Za-z0-9_-]{20}")  # a Meta user / system user token
COLUMNS = "id, at, tenant_id, event, actor, token_fingerprint, detail, prev_hash, hash"
HASHED = ("prev_hash", "at", "tenant_id", "event", "actor", "token_fingerprint", "detail")
Problem = Literal["hash_mismatch", "prev_hash_mismatch", "gap"]
# (tenant_id, event, actor, token fingerprint, detail): what `append_many` takes per entry
Entry = tuple[str, "AuditEvent | str", str, "str | None", str]


class AuditEvent(StrEnum):
    VALIDATED = "validated"
    REFRESH_FAILED = "refresh_failed"
    REFRESHED = "refreshed"
    REVOKED = "revoked"
    ROTATED = "rotated"
    SIGNUP = "signup"
    CREDENTIALS_READ = "credentials_read"


def canonical_at(at: datetime) -> str:
    """The text an entry's time is hashed as: UTC, microseconds, e.g. ...T10:00:00.000000+00:00."""
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(
    prev_hash: str,
    at_iso: str,
    tenant_id: str,
    event: str,
    actor: str,
    fingerprint: str | None,
    detail: str,
) -> str:
    """sha256 (hex) of the entry as JSON with sorted keys: one unambiguous encoding."""
    fields = (prev_hash, at_iso, tenant_id, str(event), actor, fingerprint, detail)
    payload = dict(zip(HASHED, fields, strict=True), v=1)
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def checked_fields(
    tenant_id: str, event: str, actor: str, fingerprint: str | None, detail: str
) -> tuple[str, AuditEvent, str, str | None, str]:
    """The fields as they will be stored. ValueError (naming the field, never its value) for
    an unknown event, an empty or over-long tenant id, or anything shaped like a token."""
    try:
        kind = AuditEvent(event)
    except ValueError:
        raise ValueError(f"unknown audit event {str(event)[:40]!r}") from None
    actor, detail = " ".join(actor.split()), " ".join(detail.split())  # one line each
    texts = {"tenant_id": tenant_id, "actor": actor, "fingerprint": fingerprint, "detail": detail}
    for name, text in texts.items():
        if text is not None and TOKEN_SHAPE.search(text):
            raise ValueError(f"audit {name} looks like it holds a Meta access token: refused")
        if text is not None and "\x00" in text:
            raise ValueError(f"audit {name} holds a NUL character")
    if not tenant_id or len(tenant_id) > LIMITS["tenant_id"]:
        raise ValueError(f"audit tenant_id must be 1..{LIMITS['tenant_id']} characters")
    if not actor:
        raise ValueError("audit actor must not be empty")
    if fingerprint is not None and not 0 < len(fingerprint) <= LIMITS["fingerprint"]:
        raise ValueError(f"audit fingerprint must be 1..{LIMITS['fingerprint']} characters")
    return tenant_id, kind, actor[: LIMITS["actor"]], fingerprint, detail[:MAX_DETAIL]


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    tenant_id: str
    event: str
    actor: str
    token_fingerprint: str | None
    detail: str
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        """The hash this entry's contents call for (equal to `hash` unless it was edited)."""
        return entry_hash(
            *[canonical_at(self.at) if f == "at" else getattr(self, f) for f in HASHED]
        )

    def __str__(self) -> str:
        shown = (self.tenant_id, self.event, self.actor, self.token_fingerprint or "-", self.detail)
        text = "  ".join((str(self.id), canonical_at(self.at), *shown)).rstrip()
        return TOKEN_SHAPE.sub("[REDACTED]", text)  # for rows written around AuditLog


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int  # entries found intact (before the first bad one)
    head: str  # hash of the last intact entry (GENESIS for an empty chain)
    first_bad_id: int | None = None
    problem: Problem | None = None
    reason: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.checked} entries (head {self.head})"
        return (
            f"audit chain broken at entry {self.first_bad_id}: {self.problem}: {self.reason} "
            f"({self.checked} entries before it are intact)"
        )


def _record(row: dict[str, Any]) -> AuditRecord:
    return AuditRecord(**row)


class AuditLog:
    """The audit table of one database, through `Database` (its pool and its errors)."""

    def __init__(self, db: Database, *, batch: int = 1000) -> None:
        self.db, self.batch = db, batch

    async def append(
        self,
        tenant_id: str,
        event: AuditEvent | str,
        actor: str,
        fingerprint: str | None = None,
        detail: str = "",
    ) -> AuditRecord:
        """Add one entry at the end of the chain. ValueError for fields refused by
        `checked_fields`; DatabaseError (and subclasses) if PostgreSQL refuses."""
        (record,) = await self.append_many([(tenant_id, event, actor, fingerprint, detail)])
        return record

    async def append_many(self, entries: Sequence[Entry]) -> list[AuditRecord]:
        """Add entries at the end of the chain, in order, in one transaction: one lock, one
        read of the head and one INSERT for the lot (the entries share the time read under
        the lock). ValueError if any entry is refused, before anything is written."""
        checked = [checked_fields(*entry) for entry in entries]
        if not checked:
            return []
        async with self.db.transaction() as run:
            await run("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
            head = await run(
                f"SELECT clock_timestamp() AS now, "
                f"(SELECT hash FROM {AUDIT_TABLE} ORDER BY id DESC LIMIT 1) AS last",
                None,
            )
            prev = str(head[0]["last"] or GENESIS)
            at: datetime = head[0]["now"].astimezone(UTC)
            rows: list[tuple[Any, ...]] = []
            for tenant_id, kind, actor, fingerprint, detail in checked:
                digest = entry_hash(
                    prev, canonical_at(at), tenant_id, kind, actor, fingerprint, detail
                )
                rows.append((at, tenant_id, kind.value, actor, fingerprint, detail, prev, digest))
                prev = digest
            placeholders = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
            found = await run(
                f"INSERT INTO {AUDIT_TABLE} ({COLUMNS.removeprefix('id, ')}) "
                f"VALUES {placeholders} RETURNING id",
                [value for row in rows for value in row],
            )
        ids = sorted(int(r["id"]) for r in found)  # assigned in VALUES order: the chain's
        return [AuditRecord(i, *row) for i, row in zip(ids, rows, strict=True)]

    async def verify(self) -> VerifyResult:
        """Walk the chain in id order, `batch` entries per query; stop at the first entry
        whose hash does not match its contents, or whose prev_hash does not match the entry
        before it (a `gap` when ids are missing there too: entries were deleted)."""
        expected, last_id, checked = GENESIS, 0, 0
        while True:
            async with self.db.transaction() as run:
                page = await run(
                    f"SELECT {COLUMNS} FROM {AUDIT_TABLE} WHERE id > %s ORDER BY id LIMIT %s",
                    (last_id, self.batch),
                )
            for rec in map(_record, page):
                bad = _check(rec, expected, last_id, checked)
                if bad is not None:
                    return VerifyResult(False, checked, expected, rec.id, *bad)
                expected, last_id, checked = rec.hash, rec.id, checked + 1
            if len(page) < self.batch:
                return VerifyResult(True, checked, expected)

    async def entries(self, tenant_id: str | None = None, limit: int = 50) -> list[AuditRecord]:
        """The newest `limit` entries (of one tenant, or all), oldest first."""
        where = "WHERE tenant_id = %s" if tenant_id is not None else ""
        params = (tenant_id, limit) if tenant_id is not None else (limit,)
        async with self.db.transaction() as run:
            found = await run(
                f"SELECT * FROM (SELECT {COLUMNS} FROM {AUDIT_TABLE} {where} "
                "ORDER BY id DESC LIMIT %s) newest ORDER BY id",
                params,
            )
        return [_record(r) for r in found]


def _check(
    rec: AuditRecord, expected: str, last_id: int, checked: int
) -> tuple[Problem, str] | None:
    if rec.expected_hash() != rec.hash:
        return "hash_mismatch", "its hash does not match its contents (the entry was edited)"
    if rec.prev_hash == expected:
        return None
    if checked == 0:
        return "gap", "the first entry does not start the chain: entries before it were removed"
    if rec.id != last_id + 1:
        return "gap", (
            f"its prev_hash is not the hash of entry {last_id}, and ids {last_id + 1}.."
            f"{rec.id - 1} are missing: entries were deleted"
        )
    return "prev_hash_mismatch", (
        f"its prev_hash is not the hash of entry {last_id} (one of the two was rewritten)"
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="whatsapp-audit", description="Check and read the token lifecycle audit trail."
    )
    sub = p.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="check the hash chain (exit 1 if broken)")
    show = sub.add_parser("show", help="print a tenant's newest entries (never tokens)")
    show.add_argument("--tenant-id", required=True)
    show.add_argument("--limit", type=int, default=50)
    for command in (verify, show):
        command.add_argument(
            "--database-url", help=f"PostgreSQL URL (default: ${DATABASE_URL_ENV}; prefer the env)"
        )
    return p


async def _run(args: argparse.Namespace, dsn: str) -> int:
    db = await Database.connect(dsn, min_size=0, max_size=1)
    try:
        log = AuditLog(db)
        if args.command == "verify":
            result = await log.verify()
            print(result, file=sys.stdout if result.ok else sys.stderr)
            return 0 if result.ok else 1
        for rec in await log.entries(args.tenant_id, max(1, args.limit)):
            print(rec)
        return 0
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> int:
    """whatsapp-audit verify|show: exit 0 done, 1 chain broken, 2 usage or database error."""
    args = _parser().parse_args(argv)
    dsn = args.database_url or os.environ.get(DATABASE_URL_ENV)
    if not dsn:
        print(f"whatsapp-audit: set --database-url or ${DATABASE_URL_ENV}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(args, dsn))
    except DatabaseError as err:
        print(f"whatsapp-audit: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
