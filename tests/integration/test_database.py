"""PostgreSQL sync against a real server (whatsapp_operator/postgres/database.py, legacy.py).

Each test gets its own database on the session's server (`db_dsn`); outage tests stop and
kill a server of their own, so they never disturb the shared one.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from whatsapp_operator.postgres import rows
from whatsapp_operator.postgres.audit_key import AuditKey
from whatsapp_operator.postgres.credentials_cli import AUDIT_HOOKS, CredentialRead, read_credentials
from whatsapp_operator.postgres.crypto import Keyring, TokenCipher, encode_key
from whatsapp_operator.postgres.database import Database
from whatsapp_operator.postgres.errors import (
    DatabaseConfigError,
    DatabaseError,
    DatabaseUnavailable,
)
from whatsapp_operator.postgres.maintenance import rekey_pass
from whatsapp_operator.postgres.migrations import MIGRATIONS, OPERATOR_COLUMNS, SEED_TABLE
from whatsapp_operator.postgres.sync import RowSync
from whatsapp_testkit.postgres import APP_PASSWORD, Postgres

pytestmark = pytest.mark.integration

TOKEN = "EAAGm0PX4ZCpsBAKZB7ZCZBdbTESTtoken0123456789"
OLD_KEY, NEW_KEY = b"\x01" * 32, b"\x02" * 32
AUDIT_KEY_TEXT = "database-tests-audit-key-0123456789abc"
AUDIT_KEY = AuditKey(AUDIT_KEY_TEXT.encode())
SEED_DDL = SEED_TABLE.replace("IF NOT EXISTS ", "")
VERSIONS = [m.version for m in MIGRATIONS]  # 1, 2, 3 (the audit table), ...


def desired(tenant_id: str = "t_a3eecb94bb822a92", **changes: Any) -> rows.DesiredRow:
    row = rows.DesiredRow(
        tenant_id=tenant_id,
        waba_id="102290129340398",
        phone_number_id="106540352242922",
        business_id=None,
        display_phone_number="+1 555-0100",
        quality_rating="GREEN",
        is_active=True,
        configured=True,
        token=TOKEN,
        token_fingerprint="sha256:0123456789abcdef",
        managed_by=rows.DEFAULT_OWNER,
        k8s_uid="uid-1",
        k8s_namespace="shop",
        k8s_name="demo-tenant",
        synced_generation=1,
    )
    return replace(row, **changes)


async def sql(dsn: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Behind the operator's back: a plain connection, like a person with psql."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(query, params)
        return await cur.fetchall() if cur.description else []


# -- migrations ---------------------------------------------------------------------------
async def test_migrations_create_the_seed_table_and_are_idempotent(db_dsn: str) -> None:
    db = await Database.connect(db_dsn)
    try:
        assert await db.migrate() == VERSIONS
        before = db.statement_count.copy()
        assert await db.migrate() == []
        assert db.writes == sum(before[k] for k in ("INSERT", "UPDATE", "DELETE"))
        assert set(db.statement_count - before) == {"SELECT"}  # the fast path only reads
    finally:
        await db.close()
    versions = await sql(db_dsn, "SELECT version FROM whatsapp_operator_schema_version")
    assert sorted(v for (v,) in versions) == VERSIONS
    columns = await sql(
        db_dsn,
        "SELECT column_name, data_type, character_maximum_length, is_nullable, column_default "
        "FROM information_schema.columns WHERE table_name = 'tenant_whatsapp_config' "
        "ORDER BY ordinal_position",
    )
    shape = {c[0]: c[1:] for c in columns}
    assert list(shape)[:14] == [
        "id", "tenant_id", "waba_id", "phone_number_id", "access_token", "business_id",
        "display_phone_number", "quality_rating", "is_active", "created_at", "updated_at",
        "business_account_id", "verify_token", "configured",
    ]  # fmt: skip
    assert shape["id"][0] == "integer"
    assert str(shape["id"][3]).startswith("nextval(")  # SERIAL
    assert shape["tenant_id"] == ("character varying", 50, "YES", None)
    assert shape["waba_id"] == ("character varying", 100, "NO", None)
    assert shape["access_token"] == ("text", None, "NO", None)
    assert shape["is_active"] == ("boolean", None, "YES", "true")
    assert shape["updated_at"] == ("timestamp without time zone", None, "YES", "CURRENT_TIMESTAMP")
    assert shape["verify_token"][:2] == ("character varying", 255)
    assert shape["configured"] == ("boolean", None, "YES", "true")
    for name, _type in OPERATOR_COLUMNS:
        assert shape[name][2] == "YES", name  # additive: nullable, no default
    assert shape["row_hash"][:2] == ("character varying", 32)
    assert shape["token_expires_at"][0] == "timestamp with time zone"
    unique = await sql(
        db_dsn,
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'tenant_whatsapp_config'",
    )
    defs = " ".join(d for (d,) in unique)
    assert "UNIQUE INDEX" in defs
    assert "(tenant_id)" in defs
    assert "(managed_by)" in defs


async def test_concurrent_migrations_apply_each_version_once(db_dsn: str) -> None:
    replicas = [await Database.connect(db_dsn) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(r.migrate() for r in replicas))
    finally:
        for r in replicas:
            await r.close()
    assert sorted(v for versions in applied for v in versions) == VERSIONS
    count = await sql(db_dsn, "SELECT count(*) FROM whatsapp_operator_schema_version")
    assert count == [(len(VERSIONS),)]


async def test_a_pre_existing_seed_table_and_its_rows_are_kept(db_dsn: str) -> None:
    await sql(db_dsn, SEED_DDL)
    await sql(
        db_dsn,
        "INSERT INTO tenant_whatsapp_config (tenant_id, waba_id, phone_number_id, access_token,"
        " display_phone_number, verify_token) VALUES (%s, %s, %s, %s, %s, %s)",
        ("t_legacy", "882555404932892", "882555404932892", TOKEN, "882555404932892", "vt"),
    )
    db = await Database.connect(db_dsn)
    try:
        legacy = await read_credentials(db, "t_legacy", TokenCipher("plaintext"))
        assert legacy is not None
        assert legacy.access_token == TOKEN  # readable before the operator migrates
        assert await db.migrate() == VERSIONS
        stored = await db.fetch("t_legacy")
        assert stored is not None
        assert (stored.waba_id, stored.access_token, stored.is_active) == (
            "882555404932892",
            TOKEN,
            True,
        )
        assert (stored.managed_by, stored.row_hash, stored.k8s_uid) == (None, None, None)
        assert not stored.drifted  # never written by the operator
        assert await db.drifted() == (set(), set())  # unmanaged rows are not the operator's
        assert await db.delete("t_legacy", "") is False
        assert await db.deactivate("t_legacy", "") is False
    finally:
        await db.close()
    assert await sql(db_dsn, "SELECT verify_token FROM tenant_whatsapp_config") == [("vt",)]


async def test_a_seed_table_without_unique_tenant_id_is_a_clear_config_error(
    db_dsn: str,
) -> None:
    await sql(db_dsn, SEED_DDL.replace("VARCHAR(50) UNIQUE", "VARCHAR(50)"))
    db = await Database.connect(db_dsn)
    try:
        with pytest.raises(DatabaseConfigError, match=r"ADD UNIQUE \(tenant_id\)"):
            await db.migrate()
    finally:
        await db.close()


# -- rows ---------------------------------------------------------------------------------
async def test_insert_fetch_round_trip(db: Database, db_dsn: str) -> None:
    row = desired()
    row_id = await db.insert(row, "stored-form")
    assert isinstance(row_id, int)
    stored = await db.fetch(row.tenant_id)
    assert stored is not None
    assert stored.id == row_id
    for column in rows.HASHED_COLUMNS:
        expected = "stored-form" if column == "access_token" else getattr(row, column)
        assert getattr(stored, column) == expected, column
    assert (stored.k8s_uid, stored.synced_generation) == ("uid-1", 1)
    assert stored.row_hash == rows.row_hash(stored.values())
    assert not stored.drifted
    assert stored.updated_at is not None
    (namespace, name, created), *_ = await sql(
        db_dsn, "SELECT k8s_namespace, k8s_name, created_at FROM tenant_whatsapp_config"
    )
    assert (namespace, name) == ("shop", "demo-tenant")
    assert created is not None
    # someone else inserted first: no exception, no second row
    assert await db.insert(replace(row, k8s_uid="uid-2"), "other") is None
    assert await db.fetch("t_unknown") is None
    # '' is a valid stored form (the column is NOT NULL): storage mode `none`
    assert await db.insert(desired("t_none", token=None, token_fingerprint=None), "") is not None
    none_row = await db.fetch("t_none")
    assert none_row is not None
    assert none_row.access_token == ""
    assert none_row.token_fingerprint is None
    assert not none_row.drifted


async def test_update_is_compare_and_set(db: Database, db_dsn: str) -> None:
    await db.insert(desired(), "v1")
    first = await db.fetch("t_a3eecb94bb822a92")
    assert first is not None
    assert await db.update(first, desired(synced_generation=2), "v2") is True
    assert await db.update(first, desired(synced_generation=3), "v3") is False  # stale read
    second = await db.fetch("t_a3eecb94bb822a92")
    assert second is not None
    assert (second.access_token, second.synced_generation) == ("v2", 2)
    assert second.updated_at >= first.updated_at
    assert not second.drifted
    # an edit behind the operator's back that leaves updated_at alone also defeats the CAS
    await sql(db_dsn, "UPDATE tenant_whatsapp_config SET business_id = 'manual'")
    assert await db.update(second, desired(synced_generation=4), "v4") is False
    third = await db.fetch("t_a3eecb94bb822a92")
    assert third is not None
    assert third.drifted
    assert await db.update(third, desired(synced_generation=4), "v4") is True
    fourth = await db.fetch("t_a3eecb94bb822a92")
    assert fourth is not None
    assert (fourth.business_id, fourth.drifted) == (None, False)


async def test_a_no_op_sync_writes_nothing(db: Database) -> None:
    cipher = TokenCipher("encrypted", Keyring({"k1": OLD_KEY}))
    row = desired()
    await db.insert(row, cipher.seal(TOKEN, row.tenant_id))
    writes = db.writes
    for _ in range(5):  # what RowSync does on every reconcile of an unchanged tenant
        stored = await db.fetch(row.tenant_id)
        assert stored is not None
        plan = rows.plan_write(
            stored,
            row,
            stored_token=cipher.open(stored.access_token, row.tenant_id),
            store_token=True,
            adopt=False,
        )
        assert plan.kind is rows.WriteKind.NOOP
    assert db.writes == writes
    assert db.statement_count["SELECT"] >= 5


async def test_delete_and_deactivate_only_touch_the_owners_row(db: Database, db_dsn: str) -> None:
    await db.insert(desired(), "sealed")
    await db.insert(desired("t_second", k8s_uid="uid-2"), "sealed-2")
    other = await Database.connect(db_dsn, owner="another-operator")
    try:
        assert await other.delete("t_a3eecb94bb822a92", "uid-1") is False
        assert await other.deactivate("t_a3eecb94bb822a92", "uid-1") is False
    finally:
        await other.close()
    assert await db.delete("t_a3eecb94bb822a92", "uid-stale") is False
    assert await db.deactivate("t_a3eecb94bb822a92", "uid-stale") is False
    assert await db.deactivate("t_a3eecb94bb822a92", "uid-1") is True
    stored = await db.fetch("t_a3eecb94bb822a92")
    assert stored is not None
    assert (stored.is_active, stored.access_token, stored.token_fingerprint) == (False, "", None)
    assert stored.row_hash == rows.row_hash(stored.values())
    assert await db.drifted() == (set(), {"t_a3eecb94bb822a92", "t_second"})
    assert await db.delete("t_a3eecb94bb822a92", "uid-1") is True
    assert await db.fetch("t_a3eecb94bb822a92") is None
    assert await db.fetch("t_second") is not None


async def test_drifted_reports_rows_edited_behind_the_back(db: Database, db_dsn: str) -> None:
    for n in range(4):
        await db.insert(desired(f"t_{n}", k8s_uid=f"uid-{n}"), f"sealed-{n}")
    await sql(
        db_dsn,
        "INSERT INTO tenant_whatsapp_config (tenant_id, waba_id, phone_number_id, access_token) "
        "VALUES ('t_legacy', '1', '2', 'plain')",
    )
    assert await db.drifted() == (set(), {"t_0", "t_1", "t_2", "t_3"})
    await sql(db_dsn, "UPDATE tenant_whatsapp_config SET display_phone_number = '+1' WHERE id = 1")
    await sql(db_dsn, "UPDATE tenant_whatsapp_config SET is_active = NULL WHERE tenant_id = 't_2'")
    await sql(db_dsn, "UPDATE tenant_whatsapp_config SET access_token = 'x' WHERE tenant_id='t_3'")
    await sql(db_dsn, "UPDATE tenant_whatsapp_config SET waba_id = '9' WHERE tenant_id='t_legacy'")
    drifted, present = await db.drifted()
    assert drifted == {"t_0", "t_2", "t_3"}
    assert present == {"t_0", "t_1", "t_2", "t_3"}
    await sql(db_dsn, "DELETE FROM tenant_whatsapp_config WHERE tenant_id = 't_1'")
    assert (await db.drifted())[1] == {"t_0", "t_2", "t_3"}  # a deleted row is missing


HASH_CASES: list[dict[str, Any]] = [
    {},
    {"business_id": None, "display_phone_number": None, "quality_rating": None},
    {"business_id": "", "display_phone_number": "", "quality_rating": ""},
    {"is_active": False, "configured": False},
    {"is_active": None, "configured": None},
    {"is_active": True, "configured": None, "token_fingerprint": None},
    {"access_token": ""},
    {"display_phone_number": "+49 (0) 30 \u2013 \u260e \u00fc", "business_id": "a'b\"c\\d"},
    {"quality_rating": "x" * 50, "waba_id": "9" * 100},
    {"managed_by": None, "token_fingerprint": "sha256:ffffffffffffffff"},
]


async def test_sql_row_hash_equals_the_python_hash(db: Database, db_dsn: str) -> None:
    base = {
        "waba_id": "1",
        "phone_number_id": "2",
        "access_token": "enc:v1:k:AAAA",
        "business_id": "b",
        "display_phone_number": "+1 555",
        "quality_rating": "GREEN",
        "is_active": True,
        "configured": True,
        "managed_by": rows.DEFAULT_OWNER,
        "token_fingerprint": "sha256:0123456789abcdef",
    }
    for n, case in enumerate(HASH_CASES):
        values = {**base, **case}
        columns = ", ".join(values)
        await sql(
            db_dsn,
            f"INSERT INTO tenant_whatsapp_config (tenant_id, {columns}) "  # noqa: S608
            f"VALUES (%s, {', '.join(['%s'] * len(values))})",
            (f"t_hash_{n}", *values.values()),
        )
        (got,), *_ = await sql(
            db_dsn,
            f"SELECT {rows.sql_row_hash('t')} FROM tenant_whatsapp_config t "  # noqa: S608
            "WHERE tenant_id = %s",
            (f"t_hash_{n}",),
        )
        assert got == rows.row_hash(values), case
    # and the operator's own writes: the stored row_hash is what SQL recomputes
    await db.insert(desired("t_own", business_id=None, is_active=False), "")
    (same,), *_ = await sql(
        db_dsn,
        f"SELECT row_hash = {rows.sql_row_hash()} FROM tenant_whatsapp_config "  # noqa: S608
        "WHERE tenant_id = 't_own'",
    )
    assert same is True


# -- errors and outages -------------------------------------------------------------------
SECRET_PASSWORD = "s3cret-Pa55word"


@pytest.mark.parametrize(
    ("make_dsn", "error", "words"),
    [
        pytest.param(
            lambda pg: f"postgres//u:{SECRET_PASSWORD}@host/db",
            DatabaseConfigError,
            "invalid database URL",
            id="unparsable",
        ),
        pytest.param(
            lambda pg: f"host=127.0.0.1 password={SECRET_PASSWORD} bogus=1",
            DatabaseConfigError,
            "invalid database URL",
            id="unknown option",
        ),
        pytest.param(
            lambda pg: pg.app_dsn.replace(APP_PASSWORD, SECRET_PASSWORD),
            DatabaseConfigError,
            "password authentication failed",
            id="wrong password",
        ),
        pytest.param(
            lambda pg: pg.app_dsn.rsplit("/", 1)[0] + "/no_such_db",
            DatabaseConfigError,
            "does not exist",
            id="unknown database",
        ),
        pytest.param(
            lambda pg: f"postgresql://u:{SECRET_PASSWORD}@127.0.0.1:1/db",
            DatabaseUnavailable,
            "refused",
            id="nothing listening",
        ),
        pytest.param(
            lambda pg: f"postgresql://u:{SECRET_PASSWORD}@no-such-host.invalid:5432/db",
            DatabaseUnavailable,
            "no-such-host.invalid",
            id="unknown host",
        ),
    ],
)
async def test_a_bad_dsn_is_one_clear_line_without_the_password(
    postgres: Postgres, make_dsn: Any, error: type[DatabaseError], words: str
) -> None:
    dsn = make_dsn(postgres)
    began = time.monotonic()
    with pytest.raises(DatabaseError) as info:
        await Database.connect(dsn, connect_timeout=2.0)
    elapsed = time.monotonic() - began
    message = str(info.value)
    assert type(info.value) is error, message
    assert words in message
    assert "\n" not in message
    assert SECRET_PASSWORD not in message
    assert SECRET_PASSWORD not in repr(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    assert elapsed < 2.0 + 1.5  # connect_timeout + a margin


async def test_the_app_role_connects_with_its_password(postgres: Postgres) -> None:
    db = await Database.connect(postgres.app_dsn)
    try:
        await db.ping()
        assert APP_PASSWORD not in db.target
        assert db.target.startswith("postgresql://whatsapp_app@127.0.0.1:")
    finally:
        await db.close()


async def test_an_exhausted_pool_queues_callers_and_is_not_down(db_dsn: str) -> None:
    db = await Database.connect(db_dsn, max_size=1, connect_timeout=2.0)
    try:
        await db.migrate()
        await db.insert(desired(), "sealed")
        stored = await db.fetch("t_a3eecb94bb822a92")
        assert stored is not None
        async with await psycopg.AsyncConnection.connect(db_dsn) as locker:
            await locker.execute("SELECT 1 FROM tenant_whatsapp_config FOR UPDATE")
            # the update waits for the row lock, holding the pool's only connection
            blocked = asyncio.create_task(db.update(stored, desired(synced_generation=2), "x"))
            await asyncio.sleep(0.3)
            # a caller queues for the busy connection instead of failing: load is no outage
            waiting = asyncio.create_task(db.fetch("t_a3eecb94bb822a92"))
            await asyncio.sleep(2.5)  # longer than connect_timeout
            assert not waiting.done()
            assert db.available  # no fail-fast mode either
            await locker.rollback()
        assert await blocked is True
        assert await waiting is not None
    finally:
        await db.close()


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[Postgres]:
    """A server of this module's own, to stop and kill."""
    with Postgres() as pg:
        yield pg


@pytest.mark.parametrize("crash", [False, True], ids=["stopped", "killed"])
async def test_outage_fails_fast_and_recovers_without_a_new_database(
    own_postgres: Postgres, crash: bool
) -> None:
    timeout = 2.0
    db = await Database.connect(own_postgres.dsn, connect_timeout=timeout, max_size=4)
    try:
        await db.migrate()
        await db.insert(desired(), "sealed")
        with own_postgres.outage(crash=crash):
            began = time.monotonic()
            with pytest.raises(DatabaseUnavailable) as info:
                await db.fetch("t_a3eecb94bb822a92")
            assert time.monotonic() - began < timeout + 1
            assert "\n" not in str(info.value)
            assert not db.available
            began = time.monotonic()
            for _ in range(20):  # later calls fail fast while it stays down
                with pytest.raises(DatabaseUnavailable):
                    await db.ping()
            assert time.monotonic() - began < 1.0
            results = await asyncio.gather(
                *(db.fetch("t_a3eecb94bb822a92") for _ in range(10)), return_exceptions=True
            )
            assert all(isinstance(r, DatabaseUnavailable) for r in results)
        began = time.monotonic()
        while True:  # the same Database works again within a probe interval or so
            try:
                stored = await db.fetch("t_a3eecb94bb822a92")
                break
            except DatabaseUnavailable:
                assert time.monotonic() - began < 3.0
                await asyncio.sleep(0.1)
        assert stored is not None
        assert db.available
        results = await asyncio.gather(*(db.fetch("t_a3eecb94bb822a92") for _ in range(10)))
        assert all(r == stored for r in results)
        assert await db.update(stored, desired(synced_generation=2), "sealed-2")
    finally:
        await db.close()
    own_postgres.execute("DROP TABLE tenant_whatsapp_config", own_postgres.database)
    own_postgres.execute("DROP TABLE whatsapp_operator_schema_version", own_postgres.database)


async def test_lazy_connect_while_down_then_up(own_postgres: Postgres) -> None:
    with own_postgres.outage():
        with pytest.raises(DatabaseUnavailable):
            await Database.connect(own_postgres.dsn, connect_timeout=2.0)
        db = await Database.connect(own_postgres.dsn, connect_timeout=2.0, lazy=True)
    try:
        began = time.monotonic()
        while True:
            try:
                await db.ping()
                break
            except DatabaseUnavailable:
                assert time.monotonic() - began < 3.0
                await asyncio.sleep(0.1)
    finally:
        await db.close()


# -- rekey: re-encryption under a new key -------------------------------------------------
async def test_rekey_reseals_old_key_rows_only(db: Database, db_dsn: str) -> None:
    old = TokenCipher("encrypted", Keyring({"2026-05": OLD_KEY}))
    for n in range(5):
        tid = f"t_{n}"
        await db.insert(desired(tid, k8s_uid=f"uid-{n}"), old.seal(f"{TOKEN}-{n}", tid))
    await db.insert(desired("t_plain", k8s_uid="uid-p"), f"{TOKEN}-plain")
    stranger = TokenCipher("encrypted", Keyring({"lost": b"\x09" * 32}))
    await db.insert(desired("t_lost", k8s_uid="uid-l"), stranger.seal(TOKEN, "t_lost"))
    await db.insert(desired("t_drift", k8s_uid="uid-d"), old.seal(TOKEN, "t_drift"))
    await sql(db_dsn, "UPDATE tenant_whatsapp_config SET waba_id = '7' WHERE tenant_id='t_drift'")

    # a key added next to the primary is a decryption key: nothing to re-seal (issue 19: adding
    # a key re-encrypted every row, so legacy readers without it lost every token)
    added = TokenCipher("encrypted", Keyring({"2026-05": OLD_KEY, "2026-11": NEW_KEY}, "2026-05"))
    assert await db.rows_to_rekey(added, 100) == []
    # nor under the old primary: a plaintext row is not a token while encrypting (crypto.py):
    # its tenant's reconcile replaces it, the rekey pass never seals it
    assert await db.rows_to_rekey(old, 100) == []
    # naming the new key primary is the switch
    both = TokenCipher("encrypted", Keyring({"2026-05": OLD_KEY, "2026-11": NEW_KEY}, "2026-11"))
    todo = await db.rows_to_rekey(both, 100)
    assert [r.tenant_id for r in todo] == ["t_0", "t_1", "t_2", "t_3", "t_4"]
    assert [r.tenant_id for r in await db.rows_to_rekey(both, 2)] == ["t_0", "t_1"]
    assert [r.tenant_id for r in await db.rows_to_rekey(both, 2, after_id=todo[1].id)] == [
        "t_2",
        "t_3",
    ]
    stale = todo[0]
    writes = db.writes
    for stored in todo:
        token = both.open(stored.access_token, stored.tenant_id)
        assert token is not None
        assert await db.reseal(stored, both.seal(token, stored.tenant_id))
    assert db.writes == writes + len(todo)
    assert await db.reseal(stale, both.seal(TOKEN, stale.tenant_id)) is False  # CAS
    assert await db.rows_to_rekey(both, 100) == []
    new_only = TokenCipher("encrypted", Keyring({"2026-11": NEW_KEY}))
    for n in range(5):
        stored_row = await db.fetch(f"t_{n}")
        assert stored_row is not None
        assert new_only.open(stored_row.access_token, f"t_{n}") == f"{TOKEN}-{n}"
        assert not stored_row.drifted
    assert await db.drifted() == (
        {"t_drift"},
        {r.tenant_id for r in todo} | {"t_lost", "t_drift", "t_plain"},
    )
    # switching to plaintext mode re-writes ciphertexts as plaintext
    plain = TokenCipher("plaintext", both.keyring)
    assert len(await db.rows_to_rekey(plain, 100)) == 5  # t_0..t_4


async def test_a_new_key_rekeys_nothing_until_it_is_named_primary(
    db: Database, tmp_path: Path
) -> None:
    """Issue 19: a key added to the Secret became primary by its greater id and the rekey
    pass re-sealed every row under it within 30 s, while legacy readers lacked it."""
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "2026-05").write_bytes(OLD_KEY)

    def load() -> Keyring:
        return Keyring.from_directory(keys)

    sync = RowSync(db, TokenCipher("encrypted", load()), lambda: datetime.now(UTC))
    await db.insert(desired("t_0"), sync.cipher.seal(TOKEN, "t_0"))
    before = await db.fetch("t_0")
    assert before is not None
    (keys / "2026-11").write_bytes(NEW_KEY)  # added, not named: a decryption key only
    assert await rekey_pass(sync, load) == 0
    assert sync.cipher.keyring is not None
    assert "2026-11" in sync.cipher.keyring
    assert sync.cipher.keyring_primary == "2026-05"
    after = await db.fetch("t_0")
    assert after is not None
    assert after.access_token == before.access_token  # as it was: old readers still read it
    (keys / "primary").write_text("2026-11\n")  # the switch
    assert await rekey_pass(sync, load) == 1
    switched = await db.fetch("t_0")
    assert switched is not None
    assert switched.access_token.startswith("enc:v1:2026-11:")
    assert TokenCipher("plaintext", load()).open(switched.access_token, "t_0") == TOKEN


# -- the legacy way in --------------------------------------------------------------------
async def test_read_credentials(db: Database, db_dsn: str) -> None:
    cipher = TokenCipher("encrypted", Keyring({"k1": OLD_KEY}))
    await db.insert(desired("t_ok"), cipher.seal(TOKEN, "t_ok"))
    await db.insert(desired("t_off", is_active=False), cipher.seal(TOKEN, "t_off"))
    await db.insert(desired("t_empty", token=None), "")
    await db.insert(desired("t_moved"), cipher.seal(TOKEN, "t_ok"))  # another tenant's value
    reads: list[CredentialRead] = []
    AUDIT_HOOKS.append(reads.append)
    try:
        ok = await read_credentials(db, "t_ok", cipher, audit_key=AUDIT_KEY)
        assert ok is not None
        assert (ok.access_token, ok.usable, ok.token_state) == (TOKEN, True, "ok")
        assert (ok.waba_id, ok.phone_number_id) == ("102290129340398", "106540352242922")
        assert TOKEN not in repr(ok)
        assert TOKEN not in str(ok)
        off = await read_credentials(db, "t_off", cipher, audit_key=AUDIT_KEY)
        assert off is not None
        assert (off.access_token, off.usable) == (TOKEN, False)
        empty = await read_credentials(db, "t_empty", cipher, audit_key=AUDIT_KEY)
        assert empty is not None
        assert (empty.access_token, empty.token_state) == (None, "empty")
        moved = await read_credentials(db, "t_moved", cipher, audit_key=AUDIT_KEY)
        assert moved is not None
        assert moved.token_state == "unreadable"
        nobody = await read_credentials(db_dsn, "t_nobody", cipher, audit_key=AUDIT_KEY)
        assert nobody is None  # by DSN
    finally:
        AUDIT_HOOKS.remove(reads.append)
    assert [r.outcome for r in reads] == ["ok", "inactive", "empty", "unreadable", "not_found"]
    assert all(TOKEN not in repr(r) for r in reads)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "whatsapp_operator.postgres.credentials_cli", "get", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


async def test_credentials_cli(
    db: Database, db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit_key = tmp_path / "audit-key"
    audit_key.write_text(AUDIT_KEY_TEXT)
    monkeypatch.setenv("WHATSAPP_OPERATOR_AUDIT_KEY_FILE", str(audit_key))  # for `cli`
    cipher = TokenCipher("encrypted", Keyring({"2026-05": OLD_KEY}))
    await db.insert(desired("t_ok"), cipher.seal(TOKEN, "t_ok"))
    await db.insert(desired("t_off", is_active=False), cipher.seal(TOKEN, "t_off"))
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "2026-05").write_bytes(OLD_KEY)

    found = cli("--tenant-id", "t_ok", "--database-url", db_dsn, "--keys-dir", str(keys), "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == {"accessToken": TOKEN}
    by_env = cli(
        "--tenant-id",
        "t_ok",
        env={
            "WHATSAPP_OPERATOR_DATABASE_URL": db_dsn,
            "WHATSAPP_TOKEN_KEYS": f"2026-05={encode_key(OLD_KEY)}",
        },
    )
    assert (by_env.returncode, by_env.stdout) == (0, TOKEN + "\n")

    failures = {
        "not found": cli("--tenant-id", "t_x", "--database-url", db_dsn, "--keys-dir", str(keys)),
        "deactivated": cli(
            "--tenant-id", "t_off", "--database-url", db_dsn, "--keys-dir", str(keys)
        ),
        "cannot be decrypted": cli("--tenant-id", "t_ok", "--database-url", db_dsn),
        "password authentication failed": cli(
            "--tenant-id",
            "t_ok",
            "--database-url",
            db_dsn.replace("postgres@", f"whatsapp_app:{SECRET_PASSWORD}@"),
        ),
    }
    for words, proc in failures.items():
        assert proc.returncode == 1, (words, proc.stderr)
        assert proc.stdout == ""
        assert words in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert TOKEN not in proc.stderr
        assert SECRET_PASSWORD not in proc.stderr


async def test_latency(db: Database) -> None:
    """Figures for the README: one insert and one fetch over a pooled loopback connection."""
    began = time.perf_counter()
    for n in range(100):
        await db.insert(desired(f"t_{n}", k8s_uid=f"u{n}"), "sealed")
    insert_ms = (time.perf_counter() - began) * 10
    began = time.perf_counter()
    for n in range(300):
        await db.fetch(f"t_{n % 100}")
    fetch_ms = (time.perf_counter() - began) / 300 * 1000
    began = time.perf_counter()
    drifted, present = await db.drifted()
    drift_ms = (time.perf_counter() - began) * 1000
    assert len(present) == 100
    assert not drifted
    print(
        f"\n[postgres] insert {insert_ms:.2f} ms, fetch {fetch_ms:.2f} ms, "
        f"drift query over 100 rows {drift_ms:.1f} ms",
        file=sys.stderr,
    )
    assert insert_ms < 50
    assert fetch_ms < 50
