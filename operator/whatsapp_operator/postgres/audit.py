"""The token lifecycle's audit trail: append-only and chained by a keyed hash, in PostgreSQL.

Each entry of `whatsapp_operator_audit` (migration 3) carries `hash`, the HMAC-SHA256 under
the audit key (audit_key.py, a Secret) of its fields and of `prev_hash`, the hash of the entry
before it (64 zeros for the first), and `chain_version` (migration 4): 2 for those keyed
entries, 1 for the unkeyed sha256 entries written before the key existed. Those older entries
are verified as sha256 and are protected by the first keyed entry after them (its MAC covers
their last hash); an unkeyed entry after a keyed one breaks the chain. So a database owner
without the key can neither edit an entry nor recompute the chain behind it. Appends
read the last hash and insert under a transaction-level advisory lock, so the chain stays
one line with many writers and replicas (UNIQUE `prev_hash` forbids forks anyway). `at` is
the server's `clock_timestamp()` under that lock, hashed as stored: UTC ISO 8601 with
microseconds, PostgreSQL's precision. A trigger refuses UPDATE, DELETE and TRUNCATE; whoever
can disable it (a superuser, the owner) can edit rows, and `verify` names the first entry
that no longer fits. Dropping the newest entries leaves a shorter valid chain: keep
`VerifyResult.head` elsewhere to notice. Never a token: `append` refuses token-shaped text.

    whatsapp-audit verify --audit-key-file /etc/whatsapp-operator/audit-key/key
                                   # exit 0 intact, 1 broken (names the entry), 2 cannot tell
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
from typing import Any, Literal, NamedTuple

from whatsapp_operator.postgres.audit_key import KEY_FILE_ENV, AuditKey
from whatsapp_operator.postgres.database import Database
from whatsapp_operator.postgres.errors import DatabaseError
from whatsapp_operator.postgres.migrations import AUDIT_TABLE

DATABASE_URL_ENV = "WHATSAPP_OPERATOR_DATABASE_URL"
GENESIS = "0" * 64  # prev_hash of the first entry
LOCK_ID = 0x5741_5F41_5544_4954  # "WA_AUDIT": pg_advisory_xact_lock key of appends
MAX_DETAIL = 300
LIMITS = {"tenant_id": 50, "actor": 253, "fingerprint": 40}
TOKEN_SHAPE = re.compile(r"EAA[A-Za-z0-9_-]{20}")  # a Meta user / system user token
COLUMNS = (
    "id, at, tenant_id, event, actor, token_fingerprint, detail, prev_hash, hash, chain_version"
)
UNKEYED, KEYED = 1, 2  # chain_version: sha256 (before the audit key), HMAC-SHA256
Problem = Literal["hash_mismatch", "prev_hash_mismatch", "gap", "unkeyed_after_keyed"]
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


class Hashed(NamedTuple):
    """What an entry's hash (or MAC) covers, in this order; the names are its JSON keys."""

    prev_hash: str
    at: str  # as `canonical_at` writes it
    tenant_id: str
    event: str
    actor: str
    token_fingerprint: str | None
    detail: str

    def payload(self, version: int) -> bytes:
        """The entry as JSON with sorted keys and its chain version: one unambiguous encoding."""
        payload = {**self._asdict(), "event": str(self.event), "v": version}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return text.encode("ascii")


HASHED = Hashed._fields


def entry_hash(*fields: *Hashed) -> str:
    """sha256 (hex) of an unkeyed entry (chain_version 1, before the audit key)."""
    return hashlib.sha256(Hashed(*fields).payload(UNKEYED)).hexdigest()


def entry_mac(key: AuditKey, *fields: *Hashed) -> str:
    """HMAC-SHA256 (hex) under the audit key of a keyed entry (chain_version 2)."""
    return key.mac(Hashed(*fields).payload(KEYED))


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
    chain_version: int = KEYED

    def expected_hash(self, key: AuditKey | None) -> str:
        """The hash this entry's contents call for (equal to `hash` unless it was edited, or
        `key` is not the one it was written with). ValueError for a keyed entry without key."""
        fields = [canonical_at(self.at) if f == "at" else getattr(self, f) for f in HASHED]
        if self.chain_version == UNKEYED:
            return entry_hash(*fields)
        if key is None:
            raise ValueError("a keyed audit entry needs the audit key to be checked")
        return entry_mac(key, *fields)

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
    unkeyed: int = 0  # intact entries from before the audit key (chain_version 1)

    def __str__(self) -> str:
        if self.ok and self.unkeyed == self.checked and self.checked:
            return (
                f"audit chain intact: {self.checked} entries, none keyed yet: the first entry "
                f"the operator writes with its audit key protects them (head {self.head})"
            )
        if self.ok:
            older = (
                f"; the first {self.unkeyed}, written before the audit key, are protected by "
                "the keyed entry after them"
                if self.unkeyed
                else ""
            )
            return (
                f"audit chain intact: {self.checked} entries, HMAC-SHA256 keyed{older} "
                f"(head {self.head})"
            )
        return (
            f"audit chain broken at entry {self.first_bad_id}: {self.problem}: {self.reason} "
            f"({self.checked} entries before it are intact)"
        )


def _record(row: dict[str, Any]) -> AuditRecord:
    return AuditRecord(**row)


class AuditLog:
    """The audit table of one database, through `Database` (its pool and its errors), with
    the audit key that every new entry is chained with (audit_key.py)."""

    def __init__(self, db: Database, key: AuditKey, *, batch: int = 1000) -> None:
        if not isinstance(key, AuditKey):
            raise TypeError("AuditLog needs the audit key (an AuditKey)")
        self.db, self.key, self.batch = db, key, batch

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
                digest = entry_mac(
                    self.key, prev, canonical_at(at), tenant_id, kind, actor, fingerprint, detail
                )
                rows.append(
                    (at, tenant_id, kind.value, actor, fingerprint, detail, prev, digest, KEYED)
                )
                prev = digest
            placeholders = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
            found = await run(
                f"INSERT INTO {AUDIT_TABLE} ({COLUMNS.removeprefix('id, ')}) "
                f"VALUES {placeholders} RETURNING id",
                [value for row in rows for value in row],
            )
        ids = sorted(int(r["id"]) for r in found)  # assigned in VALUES order: the chain's
        return [AuditRecord(i, *row) for i, row in zip(ids, rows, strict=True)]

    async def verify(self) -> VerifyResult:
        """Walk the chain in id order, `batch` entries per query; stop at the first entry
        whose hash (its MAC under the key) does not match its contents, whose prev_hash does
        not match the entry before it (a `gap` when ids are missing there too: entries were
        deleted), or that is unkeyed after a keyed one."""
        expected, last_id, checked, unkeyed = GENESIS, 0, 0, 0
        while True:
            async with self.db.transaction() as run:
                page = await run(
                    f"SELECT {COLUMNS} FROM {AUDIT_TABLE} WHERE id > %s ORDER BY id LIMIT %s",
                    (last_id, self.batch),
                )
            for rec in map(_record, page):
                bad = _check(rec, self.key, expected, last_id, (checked, unkeyed))
                if bad is not None:
                    return VerifyResult(False, checked, expected, rec.id, *bad, unkeyed=unkeyed)
                expected, last_id, checked = rec.hash, rec.id, checked + 1
                unkeyed += rec.chain_version == UNKEYED
            if len(page) < self.batch:
                return VerifyResult(True, checked, expected, unkeyed=unkeyed)

    async def entries(self, tenant_id: str | None = None, limit: int = 50) -> list[AuditRecord]:
        """The newest `limit` entries (of one tenant, or all), oldest first."""
        return await _entries(self.db, tenant_id, limit)


async def _entries(db: Database, tenant_id: str | None, limit: int) -> list[AuditRecord]:
    """Reading needs no key (`whatsapp-audit show`)."""
    where = "WHERE tenant_id = %s" if tenant_id is not None else ""
    params = (tenant_id, limit) if tenant_id is not None else (limit,)
    async with db.transaction() as run:
        found = await run(
            f"SELECT * FROM (SELECT {COLUMNS} FROM {AUDIT_TABLE} {where} "
            "ORDER BY id DESC LIMIT %s) newest ORDER BY id",
            params,
        )
    return [_record(r) for r in found]


def _check(
    rec: AuditRecord, key: AuditKey, expected: str, last_id: int, counts: tuple[int, int]
) -> tuple[Problem, str] | None:
    checked, unkeyed = counts
    if rec.chain_version == UNKEYED and unkeyed < checked:
        return "unkeyed_after_keyed", (
            "an unkeyed (sha256) entry after keyed ones: written without the audit key, or "
            "rewritten by someone who does not have it"
        )
    if rec.chain_version not in (UNKEYED, KEYED):
        return "hash_mismatch", f"unknown chain_version {rec.chain_version}"
    if rec.expected_hash(key) != rec.hash:
        if rec.chain_version == UNKEYED:
            return "hash_mismatch", "its hash does not match its contents (the entry was edited)"
        return "hash_mismatch", (
            "its HMAC does not match its contents: the entry was edited, or the audit key "
            "given is not the one it was written with"
        )
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
    verify.add_argument(
        "--audit-key-file", help=f"the audit key (a mounted Secret; default: ${KEY_FILE_ENV})"
    )
    return p


async def _run(args: argparse.Namespace, dsn: str, key: AuditKey | None) -> int:
    db = await Database.connect(dsn, min_size=0, max_size=1)
    try:
        if args.command == "verify":
            assert key is not None
            result = await AuditLog(db, key).verify()
            print(result, file=sys.stdout if result.ok else sys.stderr)
            return 0 if result.ok else 1
        for rec in await _entries(db, args.tenant_id, max(1, args.limit)):
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
        key = AuditKey.from_env(getattr(args, "audit_key_file", None))
    except ValueError as err:
        print(f"whatsapp-audit: {err}", file=sys.stderr)
        return 2
    if key is None and args.command == "verify":
        print(
            f"whatsapp-audit: the chain is keyed: set --audit-key-file or ${KEY_FILE_ENV}",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(_run(args, dsn, key))
    except DatabaseError as err:
        print(f"whatsapp-audit: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
