"""Versioned, idempotent schema migrations for `tenant_whatsapp_config`.

Each migration runs in one transaction under a transaction-level advisory lock, and records
itself in `whatsapp_operator_schema_version`, so operator replicas starting together apply
each migration exactly once. Migration 1 is the seed's table exactly as the seed document
defines it, created only if absent: an existing table (and its rows) is kept as it is.
Migration 2 only adds nullable columns and an index, so the legacy service keeps working.
Migration 3 adds the append-only audit table `whatsapp_operator_audit` (see audit.py): a
trigger refuses UPDATE, DELETE and TRUNCATE for every role, superusers included. A superuser
or the table's owner can still disable the trigger (ALTER TABLE ... DISABLE TRIGGER) or set
session_replication_role = replica: that is what the chain is for (`whatsapp-audit verify`
finds the edit). Migration 4 adds `chain_version`: the chain is keyed (HMAC) from then on, so
the owner cannot recompute it either (audit.py). Run the operator and legacy readers as roles
that do not own the table (GRANT SELECT, INSERT on it and USAGE on its id sequence).
"""

# ruff: noqa: S608  (SQL is built from module constants only; values are always bound)

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

TABLE = "tenant_whatsapp_config"
AUDIT_TABLE = "whatsapp_operator_audit"
# Frozen with migration 3 (its CHECK constraint); a new event needs a new migration.
AUDIT_EVENTS_V3 = (
    "validated",
    "refresh_failed",
    "refreshed",
    "revoked",
    "rotated",
    "signup",
    "credentials_read",
)
VERSION_TABLE = "whatsapp_operator_schema_version"
LOCK_ID = 0x5741_5F4F_5045_5241  # "WA_OPERA": pg_advisory_xact_lock key of the migrations

Run = Callable[[str, Sequence[Any] | None], Awaitable[list[tuple[Any, ...]]]]


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


SEED_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id                   SERIAL PRIMARY KEY,
    tenant_id            VARCHAR(50) UNIQUE,
    waba_id              VARCHAR(100) NOT NULL,
    phone_number_id      VARCHAR(100) NOT NULL,
    access_token         TEXT NOT NULL,
    business_id          VARCHAR(100),
    display_phone_number VARCHAR(50),
    quality_rating       VARCHAR(50),
    is_active            BOOLEAN DEFAULT true,
    created_at           TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at           TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    business_account_id  VARCHAR(100),
    verify_token         VARCHAR(255),
    configured           BOOLEAN DEFAULT true
)"""

OPERATOR_COLUMNS = (
    ("managed_by", "VARCHAR(100)"),
    ("k8s_uid", "VARCHAR(64)"),
    ("k8s_namespace", "VARCHAR(253)"),
    ("k8s_name", "VARCHAR(253)"),
    ("synced_generation", "BIGINT"),
    ("token_fingerprint", "VARCHAR(40)"),
    ("token_expires_at", "TIMESTAMPTZ"),
    ("row_hash", "VARCHAR(32)"),
)

_EVENTS_SQL = ", ".join(f"'{e}'" for e in AUDIT_EVENTS_V3)
AUDIT_DDL = f"""
CREATE TABLE IF NOT EXISTS {AUDIT_TABLE} (
    id                BIGSERIAL PRIMARY KEY,
    at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    tenant_id         VARCHAR(50) NOT NULL,
    event             VARCHAR(32) NOT NULL CHECK (event IN ({_EVENTS_SQL})),
    actor             VARCHAR(253) NOT NULL,
    token_fingerprint VARCHAR(40),
    detail            TEXT NOT NULL DEFAULT '' CHECK (length(detail) <= 300),
    prev_hash         CHAR(64) NOT NULL UNIQUE,
    hash              CHAR(64) NOT NULL UNIQUE
)"""
# One trigger function for all three: row-level UPDATE/DELETE, statement-level TRUNCATE.
AUDIT_GUARD = f"""
CREATE OR REPLACE FUNCTION {AUDIT_TABLE}_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{AUDIT_TABLE} is append-only: % refused', TG_OP
        USING ERRCODE = 'P0001', HINT = 'audit entries are never changed or removed';
END
$$"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "tenant_whatsapp_config as defined by the seed", (SEED_TABLE,)),
    Migration(
        2,
        "operator columns (managed_by, k8s_*, synced_generation, token_*, row_hash)",
        (
            f"ALTER TABLE {TABLE} "
            + ", ".join(f"ADD COLUMN IF NOT EXISTS {c} {t}" for c, t in OPERATOR_COLUMNS),
            f"CREATE INDEX IF NOT EXISTS {TABLE}_managed_by_idx ON {TABLE} (managed_by)",
        ),
    ),
    Migration(
        3,
        "append-only, hash-chained audit table whatsapp_operator_audit",
        (
            AUDIT_DDL,
            f"CREATE INDEX IF NOT EXISTS {AUDIT_TABLE}_tenant_idx ON {AUDIT_TABLE} (tenant_id, id)",
            AUDIT_GUARD,
            f"DROP TRIGGER IF EXISTS {AUDIT_TABLE}_no_change ON {AUDIT_TABLE}",
            f"CREATE TRIGGER {AUDIT_TABLE}_no_change BEFORE UPDATE OR DELETE ON {AUDIT_TABLE} "
            f"FOR EACH ROW EXECUTE FUNCTION {AUDIT_TABLE}_append_only()",
            f"DROP TRIGGER IF EXISTS {AUDIT_TABLE}_no_truncate ON {AUDIT_TABLE}",
            f"CREATE TRIGGER {AUDIT_TABLE}_no_truncate BEFORE TRUNCATE ON {AUDIT_TABLE} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {AUDIT_TABLE}_append_only()",
            f"REVOKE UPDATE, DELETE, TRUNCATE ON {AUDIT_TABLE} FROM PUBLIC",
        ),
    ),
    Migration(
        4,
        "audit chain_version: entries before it are unkeyed sha256 (1), new ones HMAC-keyed (2)",
        (
            f"ALTER TABLE {AUDIT_TABLE} ADD COLUMN IF NOT EXISTS chain_version SMALLINT NOT NULL "
            "DEFAULT 1 CHECK (chain_version IN (1, 2))",
            # no default from now on: a writer that does not know the key (an older
            # whatsapp-credentials) is refused instead of appending an unkeyed entry
            f"ALTER TABLE {AUDIT_TABLE} ALTER COLUMN chain_version DROP DEFAULT",
        ),
    ),
)

CREATE_VERSION_TABLE = f"""
CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (
    version     INT PRIMARY KEY,
    description TEXT,
    applied_at  TIMESTAMPTZ DEFAULT now()
)"""

# A single-column, non-partial unique index on tenant_id: what INSERT ... ON CONFLICT needs.
UNIQUE_TENANT_ID = f"""
SELECT 1 FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = '{TABLE}'::regclass AND i.indisunique AND i.indnkeyatts = 1
  AND i.indpred IS NULL AND a.attname = 'tenant_id'"""


async def applied(run: Run) -> set[int]:
    """The versions already applied (no lock, no writes: the fast path of a restart)."""
    present = await run("SELECT to_regclass(%s) IS NOT NULL", (VERSION_TABLE,))
    if not present[0][0]:
        return set()
    return {int(r[0]) for r in await run(f"SELECT version FROM {VERSION_TABLE}", None)}


async def apply_one(run: Run, migration: Migration) -> bool:
    """Apply `migration` unless already applied. `run` must be inside one transaction."""
    await run("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
    await run(CREATE_VERSION_TABLE, None)
    done = await run(f"SELECT 1 FROM {VERSION_TABLE} WHERE version = %s", (migration.version,))
    if done:
        return False  # another replica applied it while we waited for the lock
    for statement in migration.statements:
        await run(statement, None)
    await run(
        f"INSERT INTO {VERSION_TABLE} (version, description) VALUES (%s, %s)",
        (migration.version, migration.description),
    )
    return True
