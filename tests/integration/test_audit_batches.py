"""Audit entries in batches (append_many) and off the tenant loops' path (AuditWriter),
against a real PostgreSQL: the chain stays one verified line."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from whatsapp_operator.postgres.audit import GENESIS, AuditLog
from whatsapp_operator.postgres.audit_key import AuditKey
from whatsapp_operator.postgres.audit_writer import AuditWriter
from whatsapp_operator.postgres.database import Database

pytestmark = pytest.mark.integration
KEY = AuditKey(b"batches-audit-key-" * 2)


async def test_a_batch_is_one_insert_chained_in_order(db: Database) -> None:
    log = AuditLog(db, KEY)
    first = await log.append("t_first", "validated", "operator")
    inserts = db.statement_count["INSERT"]
    batch = [(f"t_{i}", "validated", "operator", f"sha256:{i:016x}", f"n={i}") for i in range(50)]
    records = await log.append_many(batch)
    assert db.statement_count["INSERT"] == inserts + 1  # one statement for the lot
    assert [r.tenant_id for r in records] == [f"t_{i}" for i in range(50)]
    assert records[0].prev_hash == first.hash
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
    assert [r.id for r in records] == sorted(r.id for r in records)
    assert first.prev_hash == GENESIS
    result = await log.verify()
    assert result.ok
    assert result.checked == 51
    assert result.head == records[-1].hash
    assert await log.append_many([]) == []


async def test_a_refused_entry_writes_nothing_of_its_batch(db: Database) -> None:
    log = AuditLog(db, KEY)
    batch = [
        ("t_ok", "validated", "operator", None, ""),
        ("t_bad", "validated", "operator", None, "EAAGm0PX4ZCpsBAKZB7ZCZBdbAUDITtoken01234"),
    ]
    with pytest.raises(ValueError, match="looks like it holds a Meta access token"):
        await log.append_many(batch)
    assert (await log.verify()).checked == 0


async def test_a_thousand_tenants_submitting_at_once_land_in_a_few_batches(db: Database) -> None:
    writer = AuditWriter(AuditLog(db, KEY), max_batch=200)
    task = asyncio.create_task(writer.run())
    try:
        inserts = db.statement_count["INSERT"]

        async def tenant(i: int) -> None:
            await asyncio.sleep(0)
            writer.submit(f"t_{i:04d}", "validated", "operator", f"sha256:{i:016x}")

        await asyncio.gather(*(tenant(i) for i in range(1000)))
        assert await writer.flush(seconds=30)
        assert writer.written == 1000
        assert db.statement_count["INSERT"] - inserts <= 10  # batched, not one per tenant
        result = await AuditLog(db, KEY).verify()
        assert result.ok
        assert result.checked == 1000
        with pytest.raises(ValueError, match="unknown audit event"):
            writer.submit("t_x", "no-such-event", "operator")
    finally:
        task.cancel()
