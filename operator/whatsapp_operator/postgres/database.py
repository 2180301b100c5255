"""The row operations on `tenant_whatsapp_config`, over the pool of pool.py.

Writes are compare-and-set: `update` and `reseal` change a row only if it still holds what
was read (its managed columns, `row_hash`, `updated_at`, `k8s_uid`, `synced_generation`), so
two replicas, or the operator and someone editing by hand, never overwrite each other
blindly. Errors leave as errors.py's (`DatabaseConfigError`, `DatabaseUnavailable`,
`DatabaseError`).
"""

# ruff: noqa: S608  (SQL is built from module constants only; values are always bound)

from __future__ import annotations

from dataclasses import fields
from typing import Any

from whatsapp_operator.postgres import migrations, rows
from whatsapp_operator.postgres.crypto import TokenCipher
from whatsapp_operator.postgres.pool import DatabasePool

TABLE = migrations.TABLE
READ_COLUMNS = tuple(f.name for f in fields(rows.StoredRow))
WRITE_COLUMNS = (
    *(c for c in rows.HASHED_COLUMNS),
    "k8s_uid",
    "k8s_namespace",
    "k8s_name",
    "synced_generation",
    "row_hash",
)
SELECT_ROW = f"SELECT {', '.join(READ_COLUMNS)} FROM {TABLE}"
# the row is still what the caller read (see the module docstring)
UNCHANGED = (
    f"id = %(id)s AND tenant_id = %(tenant_id)s AND {rows.sql_row_hash()} = %(read_hash)s "
    "AND row_hash IS NOT DISTINCT FROM %(read_row_hash)s "
    "AND updated_at IS NOT DISTINCT FROM %(read_updated_at)s "
    "AND k8s_uid IS NOT DISTINCT FROM %(read_uid)s "
    "AND synced_generation IS NOT DISTINCT FROM %(read_generation)s"
)


class Database(DatabasePool):
    """The pool (pool.py) with the row operations of one owner (`managed_by`)."""

    # -- rows --------------------------------------------------------------------------------
    async def fetch(self, tenant_id: str) -> rows.StoredRow | None:
        found = await self._query(f"{SELECT_ROW} WHERE tenant_id = %s", (tenant_id,))
        return rows.StoredRow(**found[0]) if found else None

    async def insert(
        self, row: rows.DesiredRow, access_token: str, verify_token: str | None = None
    ) -> int | None:
        """Insert if no row has this tenant_id; the new id, or None if one already exists.
        `verify_token`: the column's stored form, written when the row manages it."""
        values = _written(row, access_token, verify_token)
        columns = ("tenant_id", *WRITE_COLUMNS, *_verify(row))
        found = await self._query(
            f"INSERT INTO {TABLE} ({', '.join(columns)}) "
            f"VALUES ({', '.join(f'%({c})s' for c in columns)}) "
            "ON CONFLICT (tenant_id) DO NOTHING RETURNING id",
            {"tenant_id": row.tenant_id, **values},
            (access_token, row.token, verify_token, row.verify_token),
        )
        return int(found[0]["id"]) if found else None

    async def update(
        self,
        stored: rows.StoredRow,
        row: rows.DesiredRow,
        access_token: str,
        verify_token: str | None = None,
    ) -> bool:
        """Write every managed column; False if the row changed since `stored` was read."""
        values = _written(row, access_token, verify_token)
        columns = (*WRITE_COLUMNS, *_verify(row))
        found = await self._query(
            f"UPDATE {TABLE} SET {', '.join(f'{c} = %({c})s' for c in columns)}, "
            f"updated_at = now() WHERE {UNCHANGED} RETURNING id",
            {**_read(stored), **values, "tenant_id": row.tenant_id},
            (access_token, row.token, verify_token, row.verify_token),
        )
        return bool(found)

    async def delete(self, tenant_id: str, k8s_uid: str) -> bool:
        """Delete the row if this owner wrote it for the tenant object with this uid."""
        found = await self._query(
            f"DELETE FROM {TABLE} WHERE tenant_id = %s AND managed_by = %s AND k8s_uid = %s "
            "RETURNING id",
            (tenant_id, self.owner, k8s_uid),
        )
        return bool(found)

    async def deactivate(self, tenant_id: str, k8s_uid: str) -> bool:
        """is_active = false and the token wiped, for the row this owner wrote for `k8s_uid`."""
        async with self._connection() as conn, conn.transaction():
            found = await self._run(
                conn,
                f"UPDATE {TABLE} SET is_active = false, access_token = '', "
                "verify_token = NULL, token_fingerprint = NULL, updated_at = now() "
                "WHERE tenant_id = %s AND managed_by = %s AND k8s_uid = %s RETURNING id",
                (tenant_id, self.owner, k8s_uid),
            )
            if not found:
                return False
            await self._run(
                conn,
                f"UPDATE {TABLE} SET row_hash = {rows.sql_row_hash()} WHERE id = %s",
                (found[0]["id"],),
            )
        return True

    async def drifted(self, owner: str | None = None) -> tuple[set[str], set[str]]:
        """(tenant_ids of rows edited behind the operator's back, all its tenant_ids): one
        query recomputing `row_hash` in SQL for every row `owner` manages."""
        found = await self._query(
            f"SELECT tenant_id, row_hash IS DISTINCT FROM {rows.sql_row_hash()} AS drifted "
            f"FROM {TABLE} WHERE managed_by = %s AND tenant_id IS NOT NULL",
            (owner or self.owner,),
        )
        return {r["tenant_id"] for r in found if r["drifted"]}, {r["tenant_id"] for r in found}

    async def rows_to_rekey(
        self, cipher: TokenCipher, limit: int, after_id: int = 0
    ) -> list[rows.StoredRow]:
        """Up to `limit` managed, undrifted rows (id > after_id, by id) whose token the cipher
        can read but would store differently now (`TokenCipher.needs_rekey`): in `encrypted`
        mode, rows under a key other than the primary (never plaintext: unreadable there)."""
        kids = list(cipher.keyring.key_ids) if cipher.keyring is not None else []
        kid, plain = "split_part(access_token, ':', 3)", "left(access_token, 4) <> 'enc:'"
        # plaintext is unreadable while encrypting (crypto.py): its tenant's reconcile replaces it
        sealed = f"(NOT {plain} AND {kid} = ANY(%(kids)s))"
        readable = sealed if cipher.mode == "encrypted" else f"({plain} OR {sealed})"
        stale = {
            "encrypted": f"{kid} <> %(primary)s",
            "plaintext": f"NOT {plain}",
            "none": "true",
        }[cipher.mode]
        sql = (
            f"{SELECT_ROW} WHERE managed_by = %(owner)s AND id > %(after)s "
            f"AND access_token <> '' AND row_hash = {rows.sql_row_hash()} "
            f"AND {readable} AND {stale} ORDER BY id LIMIT %(limit)s"
        )
        out: list[rows.StoredRow] = []
        after = after_id
        while len(out) < limit:
            params = {
                "owner": self.owner,
                "after": after,
                "limit": limit,
                "kids": kids,
                "primary": cipher.keyring_primary or "",
            }
            page = [rows.StoredRow(**r) for r in await self._query(sql, params)]
            out += [
                r
                for r in page
                if cipher.needs_rekey(r.access_token)
                and cipher.open(r.access_token, r.tenant_id) is not None
            ]
            if len(page) < limit:
                break
            after = page[-1].id
        return out[:limit]

    async def reseal(self, stored: rows.StoredRow, new_access_token: str) -> bool:
        """Replace the stored form of the token (same token, new key or mode); compare-and-set,
        and never on a drifted row (its repair belongs to the tenant's reconcile)."""
        if stored.row_hash is None or stored.drifted:
            return False
        values = {**stored.values(), "access_token": new_access_token}
        found = await self._query(
            f"UPDATE {TABLE} SET access_token = %(access_token)s, row_hash = %(row_hash)s, "
            f"updated_at = now() WHERE {UNCHANGED} RETURNING id",
            {**_read(stored), "access_token": new_access_token, "row_hash": rows.row_hash(values)},
            (new_access_token,),
        )
        return bool(found)

    async def fetch_seed_columns(self, tenant_id: str) -> dict[str, Any] | None:
        """The seed's columns of a row (works on an unmigrated seed table too)."""
        found = await self._query(
            f"SELECT tenant_id, waba_id, phone_number_id, access_token, is_active FROM {TABLE} "
            "WHERE tenant_id = %s",
            (tenant_id,),
        )
        return found[0] if found else None


def _verify(row: rows.DesiredRow) -> tuple[str, ...]:
    """The verify_token column, when the row manages it (its tenant's app gives one)."""
    return ("verify_token",) if row.verify_token is not None else ()


def _written(
    row: rows.DesiredRow, access_token: str, verify_token: str | None = None
) -> dict[str, Any]:
    values: dict[str, Any] = {c: getattr(row, c) for c in WRITE_COLUMNS[:-1] if c != "access_token"}
    values["access_token"] = access_token
    values["row_hash"] = rows.row_hash(values)
    if row.verify_token is not None:
        values["verify_token"] = verify_token or None  # not part of row_hash (rows.py)
    return values


def _read(stored: rows.StoredRow) -> dict[str, Any]:
    return {
        "id": stored.id,
        "tenant_id": stored.tenant_id,
        "read_hash": rows.row_hash(stored.values()),
        "read_row_hash": stored.row_hash,
        "read_updated_at": stored.updated_at,
        "read_uid": stored.k8s_uid,
        "read_generation": stored.synced_generation,
    }
