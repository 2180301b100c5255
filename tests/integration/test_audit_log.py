"""The audit trail against a real PostgreSQL (audit.py, migration 3, legacy.py's reads)."""

# ruff: noqa: S608  (SQL is built from the table name constant; values are always bound)

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from whatsapp_operator.model import secret_data
from whatsapp_operator.postgres import rows
from whatsapp_operator.postgres.audit import (
    GENESIS,
    UNKEYED,
    AuditEvent,
    AuditLog,
    canonical_at,
    entry_hash,
)
from whatsapp_operator.postgres.audit_key import AuditKey
from whatsapp_operator.postgres.credentials_cli import read_credentials
from whatsapp_operator.postgres.crypto import Keyring, TokenCipher
from whatsapp_operator.postgres.database import Database
from whatsapp_operator.postgres.errors import DatabaseError
from whatsapp_operator.postgres.migrations import AUDIT_TABLE
from whatsapp_testkit.postgres import APP_PASSWORD, APP_ROLE

pytestmark = pytest.mark.integration

TOKEN = "EAAGm0PX4ZCpsBAKZB7ZCZBdbAUDITtoken0123456789"
KEY = b"\x07" * 32
TENANT = "t_a3eecb94bb822a92"
AUDIT_KEY_TEXT = "integration-audit-key-0123456789abcdef"
AKEY = AuditKey(AUDIT_KEY_TEXT.encode())


@pytest.fixture
def akey_file(tmp_path: Path) -> Path:
    path = tmp_path / "audit-key"
    path.write_text(AUDIT_KEY_TEXT + "\n")
    return path


async def sql(dsn: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    """As the superuser, behind the operator's back (like a person with psql)."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(query, params)
        return await cur.fetchall() if cur.description else []


async def tamper(dsn: str, statement: str, params: Any = None) -> None:
    """What only a superuser or the owner can do: switch the guard off, edit, switch it on."""
    await sql(dsn, f"ALTER TABLE {AUDIT_TABLE} DISABLE TRIGGER USER")
    try:
        await sql(dsn, statement, params)
    finally:
        await sql(dsn, f"ALTER TABLE {AUDIT_TABLE} ENABLE TRIGGER USER")


async def fill(log: AuditLog, count: int) -> list[int]:
    events = list(AuditEvent)
    ids = []
    for i in range(count):
        rec = await log.append(
            f"t_{i % 3}", events[i % len(events)], "operator", f"sha256:{i:016x}", f"n={i}"
        )
        ids.append(rec.id)
    return ids


def audit_cli(*args: str, dsn: str, key: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WHATSAPP_OPERATOR_DATABASE_URL": dsn}
    if key is not None:
        env["WHATSAPP_OPERATOR_AUDIT_KEY_FILE"] = str(key)
    return subprocess.run(
        [sys.executable, "-m", "whatsapp_operator.postgres.audit", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


# -- appending and verifying ----------------------------------------------------------------
async def test_append_then_verify(db: Database, db_dsn: str) -> None:
    log = AuditLog(db, AKEY)
    assert (await log.verify()).ok  # empty chain
    first = await log.append(TENANT, AuditEvent.VALIDATED, "operator", "sha256:0123456789abcdef")
    second = await log.append(TENANT, "revoked", "kubectl:alice", None, "by annotation")
    assert first.prev_hash == GENESIS
    assert second.prev_hash == first.hash
    assert second.at >= first.at
    assert first.hash == first.expected_hash(AKEY)
    # what was hashed is exactly what is stored (time to the microsecond)
    assert await log.entries(TENANT) == [first, second]
    result = await log.verify()
    assert (result.ok, result.checked, result.head, result.first_bad_id) == (
        True,
        2,
        second.hash,
        None,
    )
    # in another session time zone the stored times read back as the same instants
    other = await Database.connect(
        db_dsn + "?options=" + urllib.parse.quote("-c TimeZone=America/St_Johns")
    )
    try:
        assert (await AuditLog(other, AKEY).verify()).ok
        assert (await sql(db_dsn, "SELECT count(*) FROM " + AUDIT_TABLE))[0][0] == 2
    finally:
        await other.close()


async def test_verify_streams_in_batches(db: Database) -> None:
    await fill(AuditLog(db, AKEY), 23)
    for batch in (1, 5, 23, 1000):
        result = await AuditLog(db, AKEY, batch=batch).verify()
        assert (result.ok, result.checked) == (True, 23), batch


async def test_concurrent_appends_from_two_replicas_make_one_chain(
    db: Database, db_dsn: str
) -> None:
    other = await Database.connect(db_dsn)
    try:
        logs = [AuditLog(db, AKEY), AuditLog(other, AKEY)]
        records = await asyncio.gather(
            *(logs[i % 2].append(f"t_{i}", "validated", f"replica-{i % 2}") for i in range(50))
        )
    finally:
        await other.close()
    assert len({r.hash for r in records}) == 50
    chain = sorted(records, key=lambda r: r.id)
    assert [r.prev_hash for r in chain] == [GENESIS] + [r.hash for r in chain[:-1]]
    assert [r.at for r in chain] == sorted(r.at for r in chain)  # one clock, under the lock
    result = await AuditLog(db, AKEY).verify()
    assert (result.ok, result.checked, result.head) == (True, 50, chain[-1].hash)


async def test_no_token_is_ever_stored(db: Database) -> None:
    log = AuditLog(db, AKEY)
    await log.append(
        TENANT, "rotated", "operator", secret_data.fingerprint(TOKEN), "new key 2026-05"
    )
    for bad in (
        {"detail": f"token was {TOKEN}"},
        {"detail": "x" * 290 + TOKEN},  # past the 300 characters kept: still refused
        {"actor": TOKEN},
        {"fingerprint": TOKEN[:40]},
    ):
        args: dict[str, Any] = {"actor": "operator", "fingerprint": None, "detail": ""} | bad
        with pytest.raises(ValueError, match="Meta access token") as err:
            await log.append(TENANT, "refreshed", **args)
        assert TOKEN[:23] not in str(err.value)
    assert len(await log.entries()) == 1
    assert (await log.verify()).ok


# -- the database refuses changes; the chain catches what gets past it --------------------
@pytest.mark.parametrize(
    "statement",
    [
        f"UPDATE {AUDIT_TABLE} SET actor = 'mallory'",
        f"DELETE FROM {AUDIT_TABLE} WHERE id = 1",
        f"TRUNCATE {AUDIT_TABLE}",
    ],
    ids=["update", "delete", "truncate"],
)
async def test_changes_are_refused_even_for_the_superuser(
    db: Database, db_dsn: str, statement: str
) -> None:
    await fill(AuditLog(db, AKEY), 3)
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        await sql(db_dsn, statement)
    result = await AuditLog(db, AKEY).verify()
    assert (result.ok, result.checked) == (True, 3)


async def test_public_has_no_update_or_delete(db: Database, db_dsn: str) -> None:
    found = await sql(
        db_dsn,
        "SELECT has_table_privilege(%s, %s, 'UPDATE'), has_table_privilege(%s, %s, 'DELETE')",
        (APP_ROLE, AUDIT_TABLE, APP_ROLE, AUDIT_TABLE),
    )
    assert found == [(False, False)]
    assert await db.migrate() == []  # migration 3 applied once


async def test_an_edited_entry_is_named(db: Database, db_dsn: str, akey_file: Path) -> None:
    ids = await fill(AuditLog(db, AKEY), 6)
    await tamper(
        db_dsn, f"UPDATE {AUDIT_TABLE} SET actor = 'someone-else' WHERE id = %s", (ids[3],)
    )
    result = await AuditLog(db, AKEY).verify()
    assert (result.ok, result.first_bad_id, result.problem, result.checked) == (
        False,
        ids[3],
        "hash_mismatch",
        3,
    )
    proc = audit_cli("verify", dsn=db_dsn, key=akey_file)
    assert proc.returncode == 1, proc.stderr
    assert f"audit chain broken at entry {ids[3]}: hash_mismatch" in proc.stderr


async def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(
    db: Database, db_dsn: str
) -> None:
    log = AuditLog(db, AKEY)
    ids = await fill(log, 5)
    victim = (await log.entries())[2]
    forged = victim.__class__(**{**victim.__dict__, "actor": "someone-else"})
    await tamper(
        db_dsn,
        f"UPDATE {AUDIT_TABLE} SET actor = %s, hash = %s WHERE id = %s",
        (forged.actor, forged.expected_hash(AKEY), victim.id),
    )
    result = await log.verify()
    assert (result.first_bad_id, result.problem) == (ids[3], "prev_hash_mismatch")
    assert f"entry {ids[2]}" in result.reason


async def test_a_deleted_entry_leaves_a_gap(db: Database, db_dsn: str) -> None:
    log = AuditLog(db, AKEY)
    ids = await fill(log, 5)
    await tamper(db_dsn, f"DELETE FROM {AUDIT_TABLE} WHERE id = %s", (ids[2],))
    result = await log.verify()
    assert (result.ok, result.first_bad_id, result.problem) == (False, ids[3], "gap")
    assert f"ids {ids[2]}..{ids[2]} are missing" in result.reason
    await tamper(db_dsn, f"DELETE FROM {AUDIT_TABLE} WHERE id = %s", (ids[0],))
    result = await log.verify()
    assert (result.first_bad_id, result.problem, result.checked) == (ids[1], "gap", 0)


async def test_ids_skipped_by_a_rolled_back_append_are_harmless(db: Database) -> None:
    log = AuditLog(db, AKEY)
    await fill(log, 2)

    async def burn_an_id() -> None:
        async with db.transaction() as run:  # takes a sequence value, then rolls back
            await run(f"SELECT nextval('{AUDIT_TABLE}_id_seq')", None)
            await run("SELECT 1/0", None)

    with pytest.raises(DatabaseError, match="division by zero"):
        await burn_an_id()
    await fill(log, 2)
    ids = [r.id for r in await log.entries()]
    assert ids[2] > ids[1] + 1
    assert (await log.verify()).ok


# -- the commands ---------------------------------------------------------------------------
async def test_cli_verify_and_show(db: Database, db_dsn: str, akey_file: Path) -> None:
    log = AuditLog(db, AKEY)
    await log.append(TENANT, "signup", "embedded-signup", secret_data.fingerprint(TOKEN), "waba 1")
    await log.append("t_other", "validated", "operator")
    await log.append(TENANT, "revoked", "kubectl:alice", secret_data.fingerprint(TOKEN))
    ok = audit_cli("verify", dsn=db_dsn, key=akey_file)
    assert (ok.returncode, ok.stderr) == (0, "")
    assert ok.stdout.startswith("audit chain intact: 3 entries, HMAC-SHA256 keyed")
    keyless = audit_cli("verify", dsn=db_dsn)
    assert keyless.returncode == 2
    assert "the chain is keyed: set --audit-key-file" in keyless.stderr
    other_key = akey_file.parent / "other-key"
    other_key.write_text("not-the-audit-key-0123456789abcdefghij")
    wrong = audit_cli("verify", "--audit-key-file", str(other_key), dsn=db_dsn)
    assert wrong.returncode == 1
    assert "not the one it was written with" in wrong.stderr
    shown = audit_cli("show", "--tenant-id", TENANT, dsn=db_dsn)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert [line.split("  ")[3] for line in lines] == ["signup", "revoked"]
    assert secret_data.fingerprint(TOKEN) in lines[0]
    assert TOKEN not in shown.stdout
    last = audit_cli("show", "--tenant-id", TENANT, "--limit", "1", dsn=db_dsn)
    assert [line.split("  ")[3] for line in last.stdout.splitlines()] == ["revoked"]


async def test_cli_without_the_audit_table(db_dsn: str, akey_file: Path) -> None:
    proc = audit_cli("verify", dsn=db_dsn, key=akey_file)
    assert proc.returncode == 2
    assert AUDIT_TABLE in proc.stderr
    assert "Traceback" not in proc.stderr


# -- credentials read through the legacy helper -----------------------------------------------
async def seed_row(db: Database, cipher: TokenCipher) -> None:
    row = rows.DesiredRow(
        tenant_id=TENANT,
        waba_id="102290129340398",
        phone_number_id="106540352242922",
        business_id=None,
        display_phone_number=None,
        quality_rating=None,
        is_active=True,
        configured=True,
        token=TOKEN,
        token_fingerprint=secret_data.fingerprint(TOKEN),
        managed_by=rows.DEFAULT_OWNER,
        k8s_uid="uid-1",
        k8s_namespace="shop",
        k8s_name="demo-tenant",
        synced_generation=1,
    )
    await db.insert(row, cipher.seal(TOKEN, TENANT))


async def test_credentials_reads_are_audited(
    db: Database, db_dsn: str, tmp_path: Path, akey_file: Path
) -> None:
    cipher = TokenCipher("encrypted", Keyring({"2026-05": KEY}))
    await seed_row(db, cipher)
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "2026-05").write_bytes(KEY)

    def legacy(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "whatsapp_operator.postgres.credentials_cli", "get", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={
                **os.environ,
                "WHATSAPP_OPERATOR_DATABASE_URL": db_dsn,
                "WHATSAPP_OPERATOR_AUDIT_KEY_FILE": str(akey_file),
            },
        )

    got = legacy("--tenant-id", TENANT, "--keys-dir", str(keys), "--actor", "billing-service")
    assert (got.returncode, got.stdout) == (0, TOKEN + "\n"), got.stderr
    assert legacy("--tenant-id", "t_nobody", "--keys-dir", str(keys)).returncode == 1
    creds = await read_credentials(db, TENANT, cipher, caller="python:reports", audit_key=AKEY)
    assert creds is not None
    assert creds.access_token == TOKEN

    entries = await AuditLog(db, AKEY).entries()
    assert [(e.tenant_id, e.event, e.actor) for e in entries] == [
        (TENANT, "credentials_read", "billing-service"),
        ("t_nobody", "credentials_read", entries[1].actor),
        (TENANT, "credentials_read", "python:reports"),
    ]
    assert entries[1].actor.startswith("legacy:")  # the OS user by default
    fingerprint = secret_data.fingerprint(TOKEN)
    assert [e.token_fingerprint for e in entries] == [fingerprint, None, fingerprint]
    outcomes = [e.detail.split()[0] for e in entries]
    assert outcomes == ["outcome=ok", "outcome=not_found", "outcome=ok"]
    assert (await AuditLog(db, AKEY).verify()).ok
    # the whole table, as text: never the token, nor its stored (encrypted) form
    dump = "\n".join(r[0] for r in await sql(db_dsn, f"SELECT t::text FROM {AUDIT_TABLE} t"))
    stored = await db.fetch_seed_columns(TENANT)
    assert stored is not None
    assert TOKEN not in dump
    assert stored["access_token"] not in dump
    assert TOKEN[:23] not in dump


async def test_reads_before_migration_3_still_work(db_dsn: str) -> None:
    """A database the operator has not migrated yet: read, with a warning, no entry."""
    await sql(
        db_dsn,
        "CREATE TABLE tenant_whatsapp_config (tenant_id VARCHAR(50) UNIQUE, waba_id TEXT, "
        "phone_number_id TEXT, access_token TEXT, is_active BOOLEAN DEFAULT true)",
    )
    await sql(
        db_dsn, "INSERT INTO tenant_whatsapp_config VALUES (%s, '1', '2', %s)", (TENANT, TOKEN)
    )
    creds = await read_credentials(db_dsn, TENANT, TokenCipher("plaintext"))
    assert creds is not None
    assert creds.access_token == TOKEN


async def test_a_read_that_cannot_be_audited_fails(db: Database, db_dsn: str) -> None:
    """The reading role needs INSERT on the audit table: without it, no credentials."""
    cipher = TokenCipher("plaintext")
    await seed_row(db, cipher)
    await sql(db_dsn, f"GRANT SELECT ON tenant_whatsapp_config, {AUDIT_TABLE} TO {APP_ROLE}")
    app_dsn = db_dsn.replace("postgres@", f"{APP_ROLE}:{APP_PASSWORD}@")
    with pytest.raises(DatabaseError, match="permission denied") as err:
        await read_credentials(app_dsn, TENANT, cipher, audit_key=AKEY)
    assert TOKEN not in str(err.value)
    await sql(db_dsn, f"GRANT INSERT ON {AUDIT_TABLE} TO {APP_ROLE}")
    await sql(db_dsn, f"GRANT USAGE ON SEQUENCE {AUDIT_TABLE}_id_seq TO {APP_ROLE}")
    creds = await read_credentials(app_dsn, TENANT, cipher, caller="app", audit_key=AKEY)
    assert creds is not None
    assert creds.access_token == TOKEN
    # that role can append, but neither change the trail nor switch its guard off
    app = await Database.connect(app_dsn)
    try:
        for statement in (
            f"UPDATE {AUDIT_TABLE} SET actor = 'x'",
            f"DELETE FROM {AUDIT_TABLE}",
            f"ALTER TABLE {AUDIT_TABLE} DISABLE TRIGGER USER",
        ):
            with pytest.raises(DatabaseError, match=r"permission denied|must be owner"):
                async with app.transaction() as run:
                    await run(statement, None)
    finally:
        await app.close()
    assert [e.actor for e in await AuditLog(db, AKEY).entries()] == ["app"]


async def test_a_read_for_an_over_long_tenant_id_is_recorded_clipped(db: Database) -> None:
    plain = TokenCipher("plaintext")
    assert await read_credentials(db, "t" * 80, plain, caller="probe", audit_key=AKEY) is None
    (entry,) = await AuditLog(db, AKEY).entries()
    assert (entry.tenant_id, entry.detail.split()[0]) == ("t" * 50, "outcome=not_found")


# -- the keyed chain (issue 19) ----------------------------------------------------------------
async def test_the_owner_rewriting_the_chain_without_the_key_is_caught(
    db: Database, db_dsn: str
) -> None:
    """With an unkeyed sha256 chain, the owner could edit an entry and recompute every hash
    after it: verify passed. Keyed, whatever they recompute (sha256, or a key of their own)
    breaks at the edited entry."""
    log = AuditLog(db, AKEY)
    await fill(log, 4)
    entries = await log.entries()
    for version, key in ((UNKEYED, None), (2, AuditKey(b"mallory-has-a-key-too-0123456789ab"))):
        prev = entries[0].hash
        for rec in entries[1:]:  # rewrite entry 2 and recompute the rest of the chain
            edited = rec.__class__(
                **{**rec.__dict__, "actor": "mallory", "prev_hash": prev, "chain_version": version}
            )
            digest = edited.expected_hash(key)
            await tamper(
                db_dsn,
                f"UPDATE {AUDIT_TABLE} SET actor = 'mallory', prev_hash = %s, hash = %s, "
                "chain_version = %s WHERE id = %s",
                (prev, digest, version, rec.id),
            )
            prev = digest
        result = await log.verify()
        assert (result.ok, result.first_bad_id, result.checked) == (False, entries[1].id, 1)
        assert result.problem in ("hash_mismatch", "unkeyed_after_keyed")


async def test_an_unkeyed_chain_from_before_the_key_is_kept_and_continued(
    db: Database, db_dsn: str
) -> None:
    """A database whose trail was written before migration 4 (sha256, no chain_version):
    migrated, its entries stay as they are (version 1), the chain continues keyed, and a
    writer that does not know about the key can no longer append."""
    await sql(db_dsn, f"ALTER TABLE {AUDIT_TABLE} DROP COLUMN chain_version")
    await sql(db_dsn, "DELETE FROM whatsapp_operator_schema_version WHERE version = 4")
    prev, columns = (
        GENESIS,
        "at, tenant_id, event, actor, token_fingerprint, detail, prev_hash, hash",
    )
    for i in range(3):  # as the unkeyed code wrote them
        at = datetime(2026, 5, 1, 10, 0, i, tzinfo=UTC)
        digest = entry_hash(prev, canonical_at(at), "t_old", "validated", "op", None, f"n={i}")
        await sql(
            db_dsn,
            f"INSERT INTO {AUDIT_TABLE} ({columns}) VALUES (%s, 't_old', 'validated', 'op', "
            "NULL, %s, %s, %s)",
            (at, f"n={i}", prev, digest),
        )
        prev = digest
    assert await db.migrate() == [4]
    log = AuditLog(db, AKEY)
    await fill(log, 2)
    result = await log.verify()
    assert (result.ok, result.checked, result.unkeyed) == (True, 5, 3)
    assert "the first 3, written before the audit key" in str(result)
    with pytest.raises(psycopg.errors.NotNullViolation):  # an older, keyless writer
        await sql(
            db_dsn,
            f"INSERT INTO {AUDIT_TABLE} ({columns}) VALUES (now(), 't', 'validated', 'op', "
            "NULL, '', %s, %s)",
            (result.head, "f" * 64),
        )
    # the old entries rewritten and re-hashed (all sha256 needs): the keyed entry after them
    # no longer follows
    old = (await log.entries(limit=5))[:3]
    prev = GENESIS
    for rec in old:
        edited = rec.__class__(**{**rec.__dict__, "actor": "mallory", "prev_hash": prev})
        digest = edited.expected_hash(None)
        await tamper(
            db_dsn,
            f"UPDATE {AUDIT_TABLE} SET actor = 'mallory', prev_hash = %s, hash = %s WHERE id = %s",
            (prev, digest, rec.id),
        )
        prev = digest
    broken = await log.verify()
    assert (broken.ok, broken.problem, broken.checked) == (False, "prev_hash_mismatch", 3)


async def test_a_credentials_read_without_the_audit_key_gives_nothing(db: Database) -> None:
    cipher = TokenCipher("plaintext")
    await seed_row(db, cipher)
    with pytest.raises(ValueError, match="give the audit key") as err:
        await read_credentials(db, TENANT, cipher, caller="no-key")
    assert TOKEN not in str(err.value)
    assert await AuditLog(db, AKEY).entries() == []
