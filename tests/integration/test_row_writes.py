"""The reliability scenarios count row writes, not rows (testkit/whatsapp_testkit/rowwrites.py):
on a table with UNIQUE(tenant_id), as `tenant_whatsapp_config`, a tenant's rows can only ever
count one, however often it was written; the writes PostgreSQL committed tell."""

# ruff: noqa: S608  (the table name is the test's own, made of hex digits)

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from whatsapp_testkit.rowwrites import RowWrites

pytestmark = pytest.mark.integration


def test_row_writes_count_what_unique_rows_cannot(postgres: Any, sql: Any) -> None:
    table = f"unique_rows_{uuid.uuid4().hex[:8]}"
    sql(f"CREATE TABLE {table} (tenant_id text UNIQUE NOT NULL, value text)")
    try:
        with RowWrites(postgres.dsn, "t_%", table=table) as writes:
            sql(f"INSERT INTO {table} VALUES ('t_a', 'x'), ('t_b', 'x'), ('other', 'x')")
            sql(f"UPDATE {table} SET value = 'x' WHERE tenant_id = 't_a'")  # the same again
            with pytest.raises(psycopg.errors.UniqueViolation):  # a second INSERT cannot be
                sql(f"INSERT INTO {table} VALUES ('t_b', 'y')")
            with psycopg.connect(postgres.dsn) as conn:  # never committed: not a write
                conn.execute(f"UPDATE {table} SET value = 'z' WHERE tenant_id = 't_b'")
                conn.rollback()
            rows = sql(f"SELECT tenant_id, count(*) AS n FROM {table} GROUP BY tenant_id")
            assert {r["n"] for r in rows} == {1}  # what the scenarios counted before
            assert writes.per_tenant() == {"t_a": 2, "t_b": 1}
            assert writes.beyond_one() == 1
            assert writes.updates() == {"": 1}  # an UPDATE that changed nothing
        remaining = sql(
            "SELECT count(*) AS n FROM pg_trigger WHERE tgrelid = %s::regclass "
            "AND NOT tgisinternal",
            table,
        )
        assert remaining[0]["n"] == 0  # the counting trigger is gone with the block
    finally:
        sql(f"DROP TABLE IF EXISTS {table}")
