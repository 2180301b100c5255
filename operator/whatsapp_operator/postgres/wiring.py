"""Wiring of the PostgreSQL sync into the operator's life cycle (start, stop, deletion).

Keeps handlers.py free of database details: connect and migrate at start (an unreachable
database is reported on the tenants, never a crash), background drift and rekey
(re-encryption) passes, and the deletion policy under the finalizer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import kopf

from whatsapp_operator.postgres.audit import AuditLog
from whatsapp_operator.postgres.audit_key import AuditKey
from whatsapp_operator.postgres.audit_writer import AuditWriter
from whatsapp_operator.postgres.crypto import Keyring, TokenCipher
from whatsapp_operator.postgres.database import Database
from whatsapp_operator.postgres.errors import (
    DatabaseConfigError,
    DatabaseError,
    DatabaseUnavailable,
)
from whatsapp_operator.postgres.maintenance import drift_pass, every, rekey_pass
from whatsapp_operator.postgres.sync import RowSync
from whatsapp_operator.runtime.registry import Registry
from whatsapp_operator.runtime.services import Runtime
from whatsapp_operator.settings import OperatorConfig

log = logging.getLogger(__name__)


def keyring_loader(cfg: OperatorConfig) -> Callable[[], Keyring] | None:
    """Where the token encryption keys come from: a mounted Secret folder, or the env."""
    if cfg.encryption_keys_dir:
        folder = Path(cfg.encryption_keys_dir)
        return lambda: Keyring.from_directory(folder)
    if cfg.encryption_keys:
        text = cfg.encryption_keys
        return lambda: Keyring.from_env(text)
    return None


async def connect(
    cfg: OperatorConfig, registry: Registry, clock: Callable[[], datetime]
) -> RowSync | None:
    if not cfg.database_url:
        log.info("no database URL: tenant_whatsapp_config sync is off")
        return None
    loader = keyring_loader(cfg)
    if cfg.token_storage == "encrypted" and loader is None:
        raise kopf.PermanentError(
            "token storage 'encrypted' needs keys: set --encryption-keys-dir (a mounted Secret) "
            "or WHATSAPP_OPERATOR_ENCRYPTION_KEYS, or choose --token-storage plaintext|none"
        )
    try:
        cipher = TokenCipher(cfg.token_storage, loader() if loader is not None else None)
        audit_key(cfg)
    except ValueError as exc:  # keys missing, unreadable, or several and no primary named
        raise kopf.PermanentError(str(exc)) from None
    try:
        db = await Database.connect(cfg.database_url, owner=cfg.database_owner, lazy=True)
    except DatabaseConfigError as exc:  # a wrong URL or password: retrying cannot help
        raise kopf.PermanentError(f"database: {exc}") from None
    rows = RowSync(db, cipher, clock)
    rows.health.on_recovery.append(
        lambda: log.info("PostgreSQL is back: woke %d tenants", registry.wake_db_waiters())
    )
    try:
        await db.migrate()
    except (DatabaseUnavailable, DatabaseError) as exc:
        rows.health.lost(str(exc))  # the prober migrates once it is back
    log.info("tenant_whatsapp_config sync on; token storage: %s", cfg.token_storage)
    return rows


def audit_key(cfg: OperatorConfig) -> AuditKey:
    """The audit trail's key (settings require it with a database). ValueError: unreadable."""
    if not cfg.audit_key_file:
        raise ValueError("the audit trail needs a key: set --audit-key-file (a mounted Secret)")
    return AuditKey.from_file(cfg.audit_key_file)


def audit_writer(cfg: OperatorConfig, rows: RowSync) -> AuditWriter:
    """The audit trail's writer on the rows' database (its key was read by `connect`)."""
    return AuditWriter(AuditLog(rows.db, audit_key(cfg)))


def start_background(cfg: OperatorConfig, rt: Runtime) -> list[asyncio.Task[None]]:
    rows = rt.rows
    if rows is None:
        return []
    loader = keyring_loader(cfg)
    return [
        asyncio.create_task(
            every(
                cfg.drift_interval.total_seconds(),
                lambda: drift_pass(rows, rt.registry),
                "drift check",
            ),
            name="drift-check",
        ),
        asyncio.create_task(
            every(
                cfg.rekey_interval.total_seconds(),
                lambda: rekey_pass(rows, loader),
                "token rekey",
            ),
            name="token-rekey",
        ),
    ]


async def stop(rt: Runtime, tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if rt.rows is not None:
        await rt.rows.health.close()
        await rt.rows.db.close()


async def release(rt: Runtime, spec: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    """The deletion policy, under the finalizer: retried while PostgreSQL is down."""
    tenant_id = str(spec.get("tenantId", ""))
    if rt.rows is None or not tenant_id:
        return
    policy = str(spec.get("deletionPolicy") or "Deactivate")
    try:
        changed = await rt.rows.release(tenant_id, str(meta.get("uid", "")), policy)
    except DatabaseUnavailable as exc:  # kopf posts these as Events: no user, no host
        raise kopf.TemporaryError(
            f"PostgreSQL unavailable; the {policy} of row {tenant_id!r} will be retried: "
            + rt.rows.db.public(str(exc)),
            delay=5,
        ) from None
    except DatabaseError as exc:
        raise kopf.TemporaryError(
            f"{policy} of row {tenant_id!r} failed: {rt.rows.db.public(str(exc))}", delay=30
        ) from None
    log.info(
        "tenant %s deleted: row %s (%s)", tenant_id, "updated" if changed else "untouched", policy
    )
