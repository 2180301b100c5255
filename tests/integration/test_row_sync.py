"""RowSync against a real PostgreSQL: the three token storage modes, the statements a
reconcile costs, and two writers racing. (The operator-level tests are in
test_postgres_sync.py; these pin the component down without Kubernetes.)"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from whatsapp_operator.postgres import rows
from whatsapp_operator.postgres.crypto import Keyring, TokenCipher
from whatsapp_operator.postgres.database import Database
from whatsapp_operator.postgres.sync import RowSync

pytestmark = pytest.mark.integration
TOKEN = "EAArowsync0123456789abcdefTOKEN"
KEYRING = Keyring({"2026-01": b"k" * 32})


def desired(**changes: Any) -> rows.DesiredRow:
    row = rows.DesiredRow(
        tenant_id="t_sync", waba_id="111", phone_number_id="222", business_id=None,
        display_phone_number="+1 555", quality_rating="GREEN", is_active=True, configured=True,
        token=TOKEN, token_fingerprint="sha256:abc", managed_by=rows.DEFAULT_OWNER,
        k8s_uid="uid-1", k8s_namespace="ns", k8s_name="acme", synced_generation=1,
    )  # fmt: skip
    return replace(row, **changes)


def now() -> datetime:
    return datetime.now(UTC)


def stored_token(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT access_token FROM tenant_whatsapp_config WHERE tenant_id = 't_sync'"
        ).fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize(
    ("mode", "check"),
    [
        pytest.param("encrypted", lambda v: v.startswith("enc:v1:2026-01:") and TOKEN not in v,
                     id="encrypted: ciphertext with the key id"),
        pytest.param("plaintext", lambda v: v == TOKEN, id="plaintext: for legacy readers"),
        pytest.param("none", lambda v: v == "", id="none: never stored"),
    ],
)  # fmt: skip
async def test_token_storage_modes(db: Database, db_dsn: str, mode: Any, check: Any) -> None:
    sync = RowSync(db, TokenCipher(mode, KEYRING if mode == "encrypted" else None), now)
    result = await sync.sync(desired(), adopt=False)
    assert result.status == "True"
    assert check(stored_token(db_dsn))
    again = await sync.sync(desired(), adopt=False)
    assert again.wrote is False  # and the no-op is stable in every mode


async def test_a_no_op_reconcile_costs_one_select_and_no_write(db: Database) -> None:
    sync = RowSync(db, TokenCipher("encrypted", KEYRING), now)
    await sync.sync(desired(), adopt=False)
    db.statement_count.clear()
    result = await sync.sync(desired(), adopt=False)
    assert result.wrote is False
    print(f"\n[figure] statements per no-op sync: {dict(db.statement_count)}")
    assert dict(db.statement_count) == {"SELECT": 1}
    db.statement_count.clear()
    await sync.sync(desired(quality_rating="YELLOW"), adopt=False)
    assert dict(db.statement_count) == {"SELECT": 1, "UPDATE": 1}


async def test_switching_to_encrypted_rewrites_a_plaintext_row(db: Database, db_dsn: str) -> None:
    await RowSync(db, TokenCipher("plaintext"), now).sync(desired(), adopt=False)
    assert stored_token(db_dsn) == TOKEN
    # encrypting, a plaintext value is not a token (issue 19): the rekey pass leaves it, the
    # reconcile writes the tenant's own token sealed, and says so (a Warning Event)
    cipher = TokenCipher("encrypted", KEYRING)
    assert await db.rows_to_rekey(cipher, 10) == []
    result = await RowSync(db, cipher, now).sync(desired(), adopt=False)
    assert (result.wrote, result.plaintext_columns) == (True, ("access_token",))
    assert stored_token(db_dsn).startswith("enc:v1:")


async def test_a_plaintext_token_written_into_an_encrypted_row_is_never_used(
    db: Database, db_dsn: str
) -> None:
    """Issue 19: in encrypted mode a value without `enc:` was read as the tenant's token, so
    whoever could write the row could swap in a token of their own, and the operator kept
    it (it matched nothing to rewrite, the rekey pass even sealed it)."""
    sync = RowSync(db, TokenCipher("encrypted", KEYRING), now)
    await sync.sync(desired(), adopt=False)
    planted = "EAAplantedByHand0123456789abcdef"
    stored_row = await db.fetch("t_sync")
    assert stored_row is not None
    planted_hash = rows.row_hash({**stored_row.values(), "access_token": planted})
    with psycopg.connect(db_dsn, autocommit=True) as conn:  # row_hash updated too: no drift
        conn.execute(
            "UPDATE tenant_whatsapp_config SET access_token = %s, row_hash = %s "
            "WHERE tenant_id = 't_sync'",
            (planted, planted_hash),
        )
    assert await db.rows_to_rekey(sync.cipher, 10) == []  # never sealed as if it were ours
    result = await sync.sync(desired(), adopt=False)
    assert result.wrote is True
    assert result.plaintext_columns == ("access_token",)
    stored = stored_token(db_dsn)
    assert stored.startswith("enc:v1:")
    assert sync.cipher.open(stored, "t_sync") == TOKEN


async def test_two_writers_racing_never_duplicate_or_lose_an_update(db_dsn: str) -> None:
    first, second = await Database.connect(db_dsn), await Database.connect(db_dsn)
    try:
        await first.migrate()
        a = RowSync(first, TokenCipher("encrypted", KEYRING), now)
        b = RowSync(second, TokenCipher("encrypted", KEYRING), now)
        for generation in range(2, 12):
            row = desired(synced_generation=generation, quality_rating=f"Q{generation}")
            results = await asyncio.gather(a.sync(row, adopt=False), b.sync(row, adopt=False))
            assert all(r.status == "True" for r in results)
        with psycopg.connect(db_dsn) as conn:
            found = conn.execute(
                "SELECT count(*), min(quality_rating) FROM tenant_whatsapp_config"
            ).fetchone()
        assert found == (1, "Q11")  # one row, holding the last generation's value
    finally:
        await first.close()
        await second.close()
