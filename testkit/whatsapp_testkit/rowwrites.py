"""Every write of `tenant_whatsapp_config` rows, counted by PostgreSQL itself.

The table has UNIQUE(tenant_id): counting rows per tenant can only ever find one, so it cannot
tell whether the operator wrote a row once or ten times. A reliability scenario counts writes
instead: for the time of the test, a trigger of the test's own appends (tenant_id, INSERT or
UPDATE) to a side table for every row the operator's committed transactions insert or update
(a transaction rolled back, e.g. by PostgreSQL stopping under it, leaves nothing). The operator
is not changed and does not know; the trigger and the side table are dropped at the end.

    with RowWrites(postgres.dsn, "kill%_ns") as writes:
        ...
        writes.per_tenant()  # {"kill0_ns": 1, ...}
"""

from __future__ import annotations

import secrets
from collections import Counter
from types import TracebackType

import psycopg
from psycopg import sql

TABLE = "tenant_whatsapp_config"


class RowWrites:
    """Counts the inserts and updates of rows whose tenant_id is LIKE `pattern`."""

    def __init__(self, dsn: str, pattern: str, table: str = TABLE) -> None:
        self.dsn, self.pattern, self.table = dsn, pattern, sql.Identifier(table)
        suffix = secrets.token_hex(4)
        self.log = sql.Identifier(f"test_row_writes_{suffix}")
        self.function = sql.Identifier(f"test_count_row_write_{suffix}")
        self.trigger = sql.Identifier(f"test_count_row_writes_{suffix}")

    def _run(self, *statements: sql.Composed) -> list[tuple[object, ...]]:
        rows: list[tuple[object, ...]] = []
        with psycopg.connect(self.dsn, autocommit=True) as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
                rows = list(cur.fetchall()) if cur.description else []
        return rows

    def __enter__(self) -> RowWrites:
        self._run(
            sql.SQL(
                "CREATE TABLE {log} (tenant_id text NOT NULL, op text NOT NULL, "
                "changed text NOT NULL DEFAULT '', "
                "at timestamptz NOT NULL DEFAULT clock_timestamp())"
            ).format(log=self.log),
            # SECURITY DEFINER: the operator's role needs no right on the side table
            sql.SQL(
                "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql "
                "SECURITY DEFINER SET search_path = public AS $$ BEGIN "
                "IF NEW.tenant_id LIKE {pattern} THEN "
                "INSERT INTO {log} (tenant_id, op, changed) VALUES (NEW.tenant_id, TG_OP, "
                "CASE WHEN TG_OP = 'UPDATE' THEN (SELECT coalesce(string_agg(n.key, ',' "
                "ORDER BY n.key), '') FROM jsonb_each(to_jsonb(NEW)) n "
                "JOIN jsonb_each(to_jsonb(OLD)) o USING (key) "
                "WHERE n.value IS DISTINCT FROM o.value) ELSE '' END); END IF; "
                "RETURN NULL; END $$"
            ).format(function=self.function, log=self.log, pattern=sql.Literal(self.pattern)),
            sql.SQL(
                "CREATE TRIGGER {trigger} AFTER INSERT OR UPDATE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION {function}()"
            ).format(trigger=self.trigger, table=self.table, function=self.function),
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._run(
            sql.SQL("DROP TRIGGER IF EXISTS {trigger} ON {table}").format(
                trigger=self.trigger, table=self.table
            ),
            sql.SQL("DROP FUNCTION IF EXISTS {function}()").format(function=self.function),
            sql.SQL("DROP TABLE IF EXISTS {log}").format(log=self.log),
        )

    def per_tenant(self, op: str | None = None) -> Counter[str]:
        """Writes so far by tenant_id (only INSERTs or UPDATEs with `op`)."""
        query = sql.SQL("SELECT tenant_id, op FROM {log}").format(log=self.log)
        return Counter(str(t) for t, o in self._run(query) if op is None or o == op)

    def updates(self) -> Counter[str]:
        """The UPDATEs by the columns they changed (e.g. "row_hash,updated_at"): what a
        duplicate write was about, for a failure's message."""
        query = sql.SQL("SELECT changed FROM {log} WHERE op = 'UPDATE'").format(log=self.log)
        return Counter(str(changed) for (changed,) in self._run(query))

    def beyond_one(self) -> int:
        """Writes beyond the first of each tenant's row: what a reconcile that converges in
        one pass, and never rewrites a row that is already right, does not make."""
        return sum(n - 1 for n in self.per_tenant().values())
