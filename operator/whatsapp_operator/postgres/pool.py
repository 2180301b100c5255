"""The door to PostgreSQL: a connection pool, its outages, transactions and migrations.

Every error leaves as one of three exceptions, with a one-line message that never holds a
password or a token: `DatabaseConfigError` (fix the URL or the credentials), then
`DatabaseUnavailable` (try again later: server down, network, pool exhausted), then
`DatabaseError` (anything else PostgreSQL refused). While the server is unreachable,
operations fail fast (one probe connection at most every half second); once a probe gets
through, a fresh pool replaces the one stuck in reconnect back-off, so the same pool works
again as soon as the server does.

`statement_count` counts executed statements by kind, so tests can assert that a no-op
reconcile wrote nothing. The row queries built on this door are in database.py.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Self

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from whatsapp_operator.postgres import migrations, rows
from whatsapp_operator.postgres.errors import (
    DatabaseConfigError,
    DatabaseError,
    DatabaseUnavailable,
    conn_broken,
    is_config_error,
    location_of,
    one_line,
    redact_dsn,
    secrets_of,
    without_location,
)

log = logging.getLogger(__name__)

TABLE = migrations.TABLE
PROBE_GAP = 0.5  # seconds between connection probes while the server is unreachable
# run(sql, params) -> the rows as dicts ([] for statements that return none)
Run = Callable[[str, Any], Awaitable[list[dict[str, Any]]]]


class DatabasePool:
    """A pool of connections to one database, for one owner (`managed_by`) of rows; the row
    operations are `Database`'s (database.py)."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 5.0,
        owner: str = rows.DEFAULT_OWNER,
        statement_timeout: float = 30.0,
    ) -> None:
        """Parses the DSN and prepares the pool; `connect` is the way to get one open."""
        try:
            info = conninfo_to_dict(dsn)
        except psycopg.Error as err:
            # libpq quotes pieces of the string, which may hold the password: mask them all
            pieces: list[str] = [p for t in dsn.split() for p in (t, t.partition("=")[2])]
            pieces.sort(key=len, reverse=True)
            reason = one_line(err, pieces)
            raise DatabaseConfigError(
                f"invalid database URL ({reason}); expected "
                "postgresql://user:password@host:port/dbname or key=value pairs"
            ) from None
        self._dsn = dsn
        self._secrets = secrets_of(dsn)
        self._location = location_of(dsn)
        self.target = redact_dsn(dsn)  # for logs; never in a tenant's status (`public`)
        self.owner = owner
        self.min_size, self.max_size = min_size, max_size
        self.connect_timeout = connect_timeout
        self._kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(2, math.ceil(connect_timeout)),
        }
        defaults = {
            "application_name": owner[:63],
            "keepalives": "1",
            "keepalives_idle": "30",
            "keepalives_interval": "10",
            "keepalives_count": "3",
            "options": f"-c statement_timeout={int(statement_timeout * 1000)}",
        }
        self._kwargs.update({k: v for k, v in defaults.items() if k not in info})
        self.statement_count: collections.Counter[str] = collections.Counter()
        self._pool = self._new_pool()
        self._down: str | None = None  # why the server is unreachable, None while it answers
        self._last_probe = 0.0
        self._probe_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(max_size)
        self._closed = False

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 5.0,
        owner: str = rows.DEFAULT_OWNER,
        lazy: bool = False,
    ) -> Self:
        """An open Database. Raises DatabaseConfigError (bad URL, credentials, database name),
        or DatabaseUnavailable (unreachable within `connect_timeout`) unless `lazy`: then the
        Database is returned anyway and its operations raise DatabaseUnavailable until the
        server answers."""
        db = cls(
            dsn,
            min_size=min_size,
            max_size=max_size,
            connect_timeout=connect_timeout,
            owner=owner,
        )
        try:
            await db._probe()
        except DatabaseUnavailable as err:
            if not lazy:
                raise
            db._down, db._last_probe = str(err), time.monotonic()
            log.warning("%s; operations fail until it answers", err)
        else:
            await db._pool.open(wait=False)
        return db

    def _new_pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        return AsyncConnectionPool(
            self._dsn,
            min_size=self.min_size,
            max_size=self.max_size,
            kwargs=self._kwargs,
            open=False,
            timeout=self.connect_timeout,
            reconnect_timeout=max(30.0, self.connect_timeout),
            check=AsyncConnectionPool.check_connection,
            name=f"whatsapp-db-{id(self):x}",
        )

    async def _probe(self) -> None:
        """One direct connection attempt, to tell a config error from an outage precisely."""
        try:
            async with asyncio.timeout(self.connect_timeout + 1):
                conn = await psycopg.AsyncConnection.connect(self._dsn, **self._kwargs)
        except TimeoutError:
            raise DatabaseUnavailable(
                f"cannot connect to {self.target}: no answer within {self.connect_timeout:g}s"
            ) from None
        except psycopg.Error as err:
            text = one_line(err, self._secrets)
            kind = DatabaseConfigError if is_config_error(err, text) else DatabaseUnavailable
            raise kind(f"cannot connect to {self.target}: {text}", err.sqlstate) from None
        await conn.close()

    def public(self, message: str) -> str:
        """A message of this pool's errors without the database's user, host and URL: what a
        tenant's status and Events may show (the logs keep the whole message)."""
        return without_location(message, self._location)

    @property
    def available(self) -> bool:
        """False after a connection failure, until a probe gets through."""
        return self._down is None

    @property
    def writes(self) -> int:
        return sum(self.statement_count[k] for k in ("INSERT", "UPDATE", "DELETE"))

    async def close(self) -> None:
        self._closed = True
        await self._pool.close()

    async def _usable_pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        if self._closed:
            raise DatabaseError(f"the connection pool to {self.target} is closed")
        if self._down is None:
            return self._pool
        async with self._probe_lock:
            if self._down is not None:
                if time.monotonic() - self._last_probe < PROBE_GAP:
                    raise DatabaseUnavailable(self._down)
                self._last_probe = time.monotonic()
                try:
                    await self._probe()
                except DatabaseError as err:
                    self._down = str(err)
                    raise
                self._down = None
                log.info("PostgreSQL at %s answers again", self.target)
                await self._replace_pool()
        return self._pool

    async def _replace_pool(self) -> None:
        """A fresh pool: the old one may sit in reconnect back-off for minutes."""
        old, self._pool = self._pool, self._new_pool()
        await self._pool.open(wait=False)
        await old.close(timeout=1.0)  # connections still in use close when returned

    async def _after_pool_timeout(self, pool: AsyncConnectionPool[Any]) -> str:
        """Why no connection came: the server is down (fail fast from now on), or it answers
        and the pool is busy, or still backing off from an outage (then it is replaced)."""
        waited = f"no connection to {self.target} within {self.connect_timeout:g}s"
        async with self._probe_lock:  # one probe at a time, whatever the number of waiters
            if self._down is not None:
                return self._down
            try:
                await self._probe()
            except DatabaseError as err:
                self._down, self._last_probe = str(err), time.monotonic()
                return self._down
        if pool is self._pool and pool.get_stats().get("connections_errors", 0):
            await self._replace_pool()
            return f"{waited} (reconnecting after failed attempts)"
        return f"{waited}: all {self.max_size} connections busy"

    @asynccontextmanager
    async def _connection(
        self, secrets: Sequence[str | None] = ()
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection; psycopg errors leave as Database* errors (secrets masked)."""
        masked = (*self._secrets, *secrets)
        # Queue here, not in the pool: under load (a thousand tenants at start-up) a wait for
        # a busy connection is normal and must not read as an outage. The pool is picked
        # only once a slot is ours, so a pool replaced meanwhile (after an outage) is not used.
        async with self._slots:
            pool = await self._usable_pool()
            try:
                async with pool.connection() as conn:
                    yield conn
            except PoolClosed:
                if self._closed:
                    raise DatabaseError(f"the connection pool to {self.target} is closed") from None
                # replaced under us by a recovery: an outage's tail, worth a retry
                raise DatabaseUnavailable(f"{self.target}: reconnecting") from None
            except PoolTimeout:
                raise DatabaseUnavailable(await self._after_pool_timeout(pool)) from None
            except psycopg.OperationalError as err:
                message = f"{self.target}: {one_line(err, masked)}"
                if conn_broken(err):
                    self._down, self._last_probe = message, time.monotonic()
                raise DatabaseUnavailable(message, err.sqlstate) from None
            except psycopg.Error as err:
                raise DatabaseError(
                    f"{self.target}: {one_line(err, masked)}", err.sqlstate
                ) from None

    async def _run(
        self, conn: psycopg.AsyncConnection[Any], sql: str, params: Any = None
    ) -> list[dict[str, Any]]:
        self.statement_count[sql.lstrip().split(None, 1)[0].upper()] += 1
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, params)
            return await cur.fetchall() if cur.description else []

    async def _query(
        self, sql: str, params: Any = None, secrets: Sequence[str | None] = ()
    ) -> list[dict[str, Any]]:
        async with self._connection(secrets) as conn:
            return await self._run(conn, sql, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Run]:
        """One transaction on one pooled connection, for modules that build on this one (the
        audit log): yields `run(sql, params)`; commits when the block ends, rolls back if it
        raises. psycopg errors leave as Database* errors, like everywhere else here."""
        async with self._connection() as conn, conn.transaction():

            async def run(sql: str, params: Any) -> list[dict[str, Any]]:
                return await self._run(conn, sql, params)

            yield run

    # -- schema ------------------------------------------------------------------------------
    async def ping(self) -> None:
        await self._query("SELECT 1")

    async def migrate(self) -> list[int]:
        """Apply the pending migrations; returns the versions this call applied."""
        async with self._connection() as conn:

            async def run(sql: str, params: Sequence[Any] | None) -> list[tuple[Any, ...]]:
                return [tuple(r.values()) for r in await self._run(conn, sql, params)]

            done = await migrations.applied(run)
            newly: list[int] = []
            for migration in migrations.MIGRATIONS:
                if migration.version in done:
                    continue
                async with conn.transaction():
                    if await migrations.apply_one(run, migration):
                        newly.append(migration.version)
                        log.info(
                            "schema migration %d applied: %s",
                            migration.version,
                            migration.description,
                        )
            if not await run(migrations.UNIQUE_TENANT_ID, None):
                raise DatabaseConfigError(
                    f"{TABLE}.tenant_id has no UNIQUE constraint, which the operator needs "
                    f"(the seed's schema has one): ALTER TABLE {TABLE} ADD UNIQUE (tenant_id)"
                )
        return newly
