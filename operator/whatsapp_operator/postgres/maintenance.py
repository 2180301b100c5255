"""Operator-wide background work: drift detection and rekey (re-encryption under a new key).

Both are cheap and idempotent (one query per drift pass; compare-and-set writes), so two
replicas running them at once do no harm.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from whatsapp_operator.postgres.crypto import Keyring, TokenCipher, no_primary
from whatsapp_operator.postgres.errors import DatabaseError, DatabaseUnavailable
from whatsapp_operator.postgres.sync import RowSync
from whatsapp_operator.runtime.registry import Registry

log = logging.getLogger(__name__)


async def drift_pass(rows: RowSync, registry: Registry) -> int:
    """Wake every tenant whose row was edited or deleted behind the operator's back.

    The owners are taken before the query: a tenant that writes its first row while the
    query runs is not in the query's answer, and must not read as a deleted row."""
    owners = dict(registry.owners)
    drifted, present = await rows.db.drifted(rows.db.owner)
    woken = 0
    for tenant_id, key in owners.items():
        if registry.owners.get(tenant_id) != key:
            continue  # released or moved meanwhile
        if tenant_id in drifted or tenant_id not in present:
            log.warning("row of tenant %s changed outside the operator; repairing", tenant_id)
            woken += registry.wake(key, "drift")
    return woken


def reloaded(current: TokenCipher, keyring: Keyring) -> tuple[TokenCipher, str | None]:
    """The cipher once the keys are read again, and what to log (None: nothing changed).

    Only a change of the explicit primary switches new writes (and so the rekey pass) to
    another key: a key added without naming a primary is a decryption key, and the primary
    in use stays (a restart refuses such a keyring until one is named)."""
    old = current.keyring
    note = ""
    if keyring.primary is None and old is not None and old.primary in keyring:
        assert old.primary is not None
        keyring = keyring.with_primary(old.primary)
        note = f" (none named `primary`: {old.primary} stays; name one, a restart needs it)"
    elif keyring.primary is None and current.mode == "encrypted":
        return current, no_primary(keyring) + "; the keys in use stay"
    if old is not None and (keyring.primary, keyring.key_ids) == (old.primary, old.key_ids):
        return current, None
    ids = ", ".join(keyring.key_ids)
    return TokenCipher(current.mode, keyring), (
        f"token encryption keys reloaded ({ids}); primary key {keyring.primary}{note}"
    )


async def rekey_pass(rows: RowSync, load_keyring: Callable[[], Keyring] | None) -> int:
    """Pick up new keys, then re-seal a batch of rows written under a key other than the
    primary (the explicit switch: `reloaded`)."""
    if load_keyring is not None:
        try:
            rows.cipher, message = reloaded(rows.cipher, load_keyring())
        except (OSError, ValueError) as exc:
            log.error("cannot reload the token encryption keys: %s", exc)
        else:
            if message is not None:
                log.log(logging.WARNING if "none named" in message else logging.INFO, message)
    done = 0
    for stored in await rows.db.rows_to_rekey(rows.cipher, 100):
        token = rows.cipher.open(stored.access_token, stored.tenant_id)
        if token is None:
            continue  # unreadable: the tenant's reconcile rewrites it from the Secret
        if await rows.db.reseal(stored, rows.cipher.seal(token, stored.tenant_id)):
            done += 1
    if done:
        log.info("rekey: %d tokens re-encrypted under key %s", done, rows.cipher.keyring_primary)
    return done


async def every(seconds: float, work: Callable[[], object], name: str) -> None:
    """Run `work` (a coroutine function) forever, jittered +-10%, surviving its failures."""
    while True:
        await asyncio.sleep(seconds * random.uniform(0.9, 1.1))
        try:
            result = work()
            if asyncio.iscoroutine(result):
                await result
        except (DatabaseUnavailable, DatabaseError) as exc:
            log.debug("%s skipped: %s", name, exc)
        except Exception:
            log.exception("%s failed", name)
