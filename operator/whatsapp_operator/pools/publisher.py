"""Publishing the resolved config of each sender pool as Secrets for the workers.

Tenant loops report what they want published (`update`); one background task turns each
changed pool into shards (whatsapp_contract.resolved) and writes only the shard Secrets whose
content hash changed. At start the publisher first reads back what is already published, so
a restarted operator neither rewrites unchanged shards nor drops a tenant before that
tenant's loop has reported again; tenants that no longer exist are dropped only after a
start-up grace period.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pydantic import ValidationError

from whatsapp_contract.resolved import (
    INITIAL_CONFIG_SHARDS,
    ConfigShard,
    Entry,
    TenantConfig,
    build_config_shards,
    combine_hashes,
    entry_hash,
    parse_config_shard_name,
    parse_document,
)
from whatsapp_operator.model.spec import GROUP
from whatsapp_operator.runtime.kube import Kube, KubeError

log = logging.getLogger(__name__)
POOL_LABEL = f"{GROUP}/pool"
HASH_ANNOTATION = f"{GROUP}/content-hash"
DEBOUNCE = 0.2  # seconds: a burst of tenant changes becomes one write per shard
# Seconds between the starts of two passes while changes keep coming (a thousand tenants
# onboarding): each pass re-packs whole pools and rewrites their changed shards, and every
# write is a large Secret that the API server stores and every watcher receives again.
MIN_PASS_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)  # one per published tenant
class Location:
    """Where a tenant is published: the shard Secret, and the hash of the tenant's own entry
    (not the shard's: a status that changed with every neighbour would rewrite hundreds of
    tenants whenever one of them changes)."""

    pool: str
    secret: str
    content_hash: str


class Publisher:
    def __init__(
        self, kube: Kube, namespace: str, *, on_published: Callable[[set[str]], object],
        clock: Callable[[], float] = time.monotonic, startup_grace: float = 60.0,
        initial_shards: int = INITIAL_CONFIG_SHARDS,
    ) -> None:  # fmt: skip
        self.kube = kube
        self.initial_shards = initial_shards
        self.namespace = namespace
        self.on_published = on_published  # tenant ids whose location changed
        self.entries: dict[str, dict[str, Entry]] = {}  # pool -> tenant id -> its entry
        self.pool_of: dict[str, str] = {}
        self.reported: set[str] = set()  # tenant ids whose loop reported since the start
        self.published: dict[str, str] = {}  # secret name -> content hash
        self.counts: dict[str, int] = {}  # pool -> shard count in use
        self.keys: dict[str, str] = {}  # secret name -> its data key (the mounted file name)
        self.locations: dict[str, Location] = {}
        self._dirty: set[str] = set()
        self._event = asyncio.Event()
        self._passed = asyncio.Event()  # set (and replaced) at the end of every pass
        self.failing = False  # the last pass failed: waiters give up instead of waiting it out
        self._waiting: dict[str, int] = {}  # tenant id -> loops awaiting its publication
        self._clock = clock
        self._started = clock()
        self._grace = startup_grace
        self.writes = 0

    async def load(self) -> None:
        """Adopt what is already published (after a restart, and again before this replica's
        first write: a standby's view is as old as its start). What a tenant loop reported
        wins over what is published."""
        self.published.clear()
        for secret in await self.kube.list_secrets(self.namespace, POOL_LABEL):
            pool = secret.labels.get(POOL_LABEL, "")
            self.published[secret.name] = secret.annotations.get(HASH_ANNOTATION, "")
            for key, raw in secret.data.items():
                self.keys[secret.name] = key
                try:
                    document = parse_document(base64.b64decode(raw))
                except (ValueError, ValidationError):
                    log.warning("published Secret %s holds an unreadable shard", secret.name)
                    continue
                self.counts[pool] = max(self.counts.get(pool, 1), document.shards)
                for tenant in document.tenants:
                    if tenant.tenant_id in self.reported:
                        continue
                    entry = Entry(tenant)
                    self.entries.setdefault(pool, {})[tenant.tenant_id] = entry
                    self.pool_of[tenant.tenant_id] = pool
                    self.locations[tenant.tenant_id] = Location(
                        pool, secret.name, entry_hash(entry)
                    )
        log.info("resolved config: adopted %d published Secrets", len(self.published))

    def update(self, tenant_id: str, pool: str, config: TenantConfig | None) -> Entry | None:
        """What this tenant's loop wants published now (None: nothing); the entry it is kept
        as (encoded once: what the pass then waits for)."""
        self.reported.add(tenant_id)
        old_pool = self.pool_of.get(tenant_id)
        if old_pool is not None and (old_pool != pool or config is None):
            if self.entries.get(old_pool, {}).pop(tenant_id, None) is not None:
                self._mark(old_pool)
            del self.pool_of[tenant_id]
        if config is None:
            return None
        entry = Entry(config)
        if self.entries.get(pool, {}).get(tenant_id) != entry:
            self.entries.setdefault(pool, {})[tenant_id] = entry
            self.pool_of[tenant_id] = pool
            self._mark(pool)
        return entry

    def forget(self, tenant_id: str) -> None:
        pool = self.pool_of.pop(tenant_id, None)
        self.reported.discard(tenant_id)
        self.locations.pop(tenant_id, None)
        if pool is not None and self.entries.get(pool, {}).pop(tenant_id, None) is not None:
            self._mark(pool)

    def drop_unknown(self, known: Iterable[str]) -> None:
        """After the start-up grace: tenants adopted from Secrets that no loop reported.

        Only in a replica whose loops run: a standby (kopf peering) runs no tenant loop, and
        would otherwise drop every tenant and publish empty shards over the active replica's.
        """
        if self._clock() - self._started < self._grace or not self.reported:
            return
        keep = set(known) | self.reported
        for tenant_id in [t for t in self.pool_of if t not in keep]:
            self.forget(tenant_id)

    def location(self, tenant_id: str) -> Location | None:
        return self.locations.get(tenant_id)

    async def wait_published(
        self, tenant_id: str, config: TenantConfig | Entry, seconds: float
    ) -> bool:
        """Wait (at most `seconds`) until `config` is what is published for the tenant.

        The tenant's loop waits here instead of being woken for a second pass: a tenant
        awaiting its publication is left out of `on_published`. False at once when a pass
        fails (the API server refuses the writes): the tenant's other conditions are then
        written without waiting for a publication that is not coming soon."""
        want = entry_hash(config)
        self._waiting[tenant_id] = self._waiting.get(tenant_id, 0) + 1
        try:
            async with asyncio.timeout(seconds):
                while (where := self.locations.get(tenant_id)) is None or (
                    where.content_hash != want
                ):
                    if self.failing:
                        return False
                    await self._passed.wait()
        except TimeoutError:
            return False
        finally:
            self._waiting[tenant_id] -= 1
            if not self._waiting[tenant_id]:
                del self._waiting[tenant_id]
        return True

    def tenants_in(self, pool: str) -> set[str]:
        return set(self.entries.get(pool, {}))

    def pool_hashes(self) -> dict[str, str]:
        """Per pool, the hash a worker that loaded every current shard reports."""
        shards: dict[str, list[tuple[str, str]]] = {}
        for name, value in self.published.items():
            pool, count = parse_config_shard_name(name)
            if pool is not None and count == self.counts.get(pool, 1) and name in self.keys:
                shards.setdefault(pool, []).append((self.keys[name], value))
        return {pool: combine_hashes(pairs) for pool, pairs in shards.items()}

    def _mark(self, pool: str) -> None:
        self._dirty.add(pool)
        self._event.set()

    async def run(self) -> None:
        first = True
        last_pass = -MIN_PASS_INTERVAL
        while True:
            await self._event.wait()
            await asyncio.sleep(max(DEBOUNCE, last_pass + MIN_PASS_INTERVAL - self._clock()))
            last_pass = self._clock()
            self._event.clear()
            dirty, self._dirty = self._dirty, set()
            if first:  # this replica's first write: compare against what is published now
                try:
                    await self.load()
                except KubeError as exc:
                    log.error("resolved config: cannot read what is published: %s", exc)
                    self._pass_done(failed=True)
                    self._dirty |= dirty
                    await asyncio.sleep(2.0)
                    self._event.set()
                    continue
                first = False
                dirty |= set(self.entries) | {
                    p for n in self.published if (p := parse_config_shard_name(n)[0])
                }
            for pool in sorted(dirty):
                try:
                    await self.publish(pool)
                except KubeError as exc:
                    log.error("resolved config of pool %s not published: %s", pool, exc)
                    await self._retry_later(pool)
                except Exception:
                    # A bug must not end this loop: nothing would be published again until
                    # a restart (its task is never awaited, so even the error would be lost).
                    log.exception("resolved config of pool %s not published", pool)
                    await self._retry_later(pool)

    def _pass_done(self, *, failed: bool) -> None:
        """Let the waiters look again (a failed pass lets them go)."""
        self.failing = failed
        passed, self._passed = self._passed, asyncio.Event()
        passed.set()

    async def _retry_later(self, pool: str) -> None:
        self._pass_done(failed=True)
        self._dirty.add(pool)
        await asyncio.sleep(2.0)
        self._event.set()

    async def publish(self, pool: str) -> int:
        """Write the pool's changed shards; returns how many Secrets were written."""
        # What this pass writes: tenant loops may change the entries while a write is awaited
        # (their changes mark the pool for the next pass), so locations come from this copy.
        snapshot = dict(self.entries.get(pool, {}))
        shards = build_config_shards(
            pool, list(snapshot.values()), min_shards=self.counts.get(pool, self.initial_shards)
        )
        self.counts[pool] = len(shards)
        written = 0
        moved: set[str] = set()
        for shard in shards:
            if self.published.get(shard.name) != shard.content_hash:
                await self._write(shard)
                self.published[shard.name] = shard.content_hash
                written += 1
            self.keys[shard.name] = shard.key
            for tenant_id in shard.tenant_ids:
                if tenant_id not in self.entries.get(pool, {}):
                    continue  # forgotten while a write was awaited: the next pass drops it
                where = Location(pool, shard.name, entry_hash(snapshot[tenant_id]))
                if self.locations.get(tenant_id) != where:
                    self.locations[tenant_id] = where
                    moved.add(tenant_id)
        self.writes += written
        # A pool that grew (or shrank) to a new shard count: the old layout's Secrets go, but
        # only now that the new one is complete, so a worker never lacks a tenant. Left in
        # place, they would bring deleted tenants back in the workers' mounts.
        current = {s.name for s in shards}
        for name in sorted(self.published):
            if parse_config_shard_name(name)[0] == pool and name not in current:
                await self.kube.delete_secret(self.namespace, name)
                del self.published[name]
                self.keys.pop(name, None)
                log.info("deleted %s: pool %s now has %d shards", name, pool, len(shards))
        self._pass_done(failed=False)
        if woken := moved - set(self._waiting):
            self.on_published(woken)
        return written

    async def _write(self, shard: ConfigShard) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": shard.name,
                "namespace": self.namespace,
                "labels": {
                    POOL_LABEL: shard.pool,
                    "app.kubernetes.io/managed-by": "whatsapp-operator",
                },
                "annotations": {HASH_ANNOTATION: shard.content_hash},
            },
            "type": "Opaque",
            "data": {shard.key: base64.b64encode(shard.data).decode()},
        }
        if not await self.kube.create_secret(self.namespace, body):
            await self.kube.patch_secret(
                self.namespace, shard.name,
                {"metadata": body["metadata"], "data": body["data"]}, None,
            )  # fmt: skip
        log.info("published %s (%d tenants, %s)", shard.name, len(shard.tenant_ids),
                 shard.content_hash)  # fmt: skip
