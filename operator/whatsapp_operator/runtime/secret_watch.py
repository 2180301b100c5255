"""Which Secrets changed: a watch of their metadata only.

The operator reads a tenant's Secret when the tenant's pass runs (kube.read_secret). Between
passes it only needs to know *that* a referenced Secret changed, so that its tenants look
again now instead of at their next timer. kopf watches whole objects: every Secret of the
watched namespaces would arrive with its data (other applications' credentials included),
be parsed, and keep a per-object record in kopf (about 1 KB each, 10,000 Secrets beside
10,000 tenants). This watch asks the API server for metadata only (PartialObjectMetadata, as
controller-runtime's metadata-only watches and cert-manager's Secret watches do): names and
versions, never `data`.

It starts from the collection's version at start-up (a one-item listing): the first passes
read every Secret anyway, so only later changes matter. Bookmarks keep that version fresh; a
version the API server no longer has (410 Gone) starts again from now, as kopf's watch does
after a relisting, whose events this operator ignored. A broken stream or an unreachable API
server is retried with backoff, forever: tenants then still look at their timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from whatsapp_operator.runtime.kube import Kube, KubeError

log = logging.getLogger(__name__)

WATCH_SECONDS = 600  # the API server ends each watch after this; it is then resumed
BACKOFF = (1.0, 30.0)  # seconds: first and longest wait after a failure
QUICK_END = 1.0  # seconds: a watch that ended sooner is resumed only after BACKOFF[0]


class Kind(enum.Enum):
    CHANGED = "changed"  # a Secret was added, modified or deleted: wake its tenants
    PROGRESS = "progress"  # a bookmark: only the version moves on
    EXPIRED = "expired"  # the version is too old (410): start again from now
    FAILED = "failed"  # an error event: retry after a backoff
    IGNORED = "ignored"  # not an event of a Secret (unknown type, no name): skip it


@dataclass(frozen=True, slots=True)
class Seen:
    kind: Kind
    namespace: str = ""
    name: str = ""
    version: str = ""
    detail: str = ""


def interpret(event: Mapping[str, Any]) -> Seen:
    """What one watch event means for this watch (pure)."""
    kind = event.get("type")
    obj = event.get("object")
    if not isinstance(obj, Mapping):
        return Seen(Kind.IGNORED, detail="no object")
    if kind == "ERROR":
        code = obj.get("code")
        detail = f"{code} {obj.get('reason') or ''}: {obj.get('message') or ''}".strip()
        return Seen(Kind.EXPIRED if code == 410 else Kind.FAILED, detail=detail[:300])
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return Seen(Kind.IGNORED, detail="no metadata")
    version = str(meta.get("resourceVersion") or "")
    if kind == "BOOKMARK":
        return Seen(Kind.PROGRESS, version=version)
    name, namespace = meta.get("name"), meta.get("namespace")
    if kind not in ("ADDED", "MODIFIED", "DELETED") or not name or not namespace:
        return Seen(Kind.IGNORED, version=version, detail=f"event {kind!r}")
    return Seen(Kind.CHANGED, str(namespace), str(name), version)


class SecretWatch:
    """Calls `on_change(namespace, name)` for every change of a Secret in `namespaces` (all
    namespaces when empty) that matches `label_selector`, from its start on."""

    def __init__(
        self,
        kube: Kube,
        namespaces: Sequence[str],
        label_selector: str,
        on_change: Callable[[str, str], object],
        *,
        seconds: int = WATCH_SECONDS,
        backoff: tuple[float, float] = BACKOFF,
    ) -> None:
        self.kube = kube
        self.namespaces = list(namespaces)
        self.label_selector = label_selector
        self.on_change = on_change
        self.seconds = seconds
        self.backoff = backoff
        self.changes = 0  # events that named a Secret (for tests and diagnostics)

    async def run(self) -> None:
        targets: list[str | None] = [*self.namespaces] or [None]
        await asyncio.gather(*(self.follow(ns) for ns in targets))

    async def follow(self, namespace: str | None) -> None:
        """One namespace's watch (or the cluster's, for None), resumed for ever."""
        where = namespace or "all namespaces"
        version: str | None = None
        delay = self.backoff[0]
        while True:
            try:
                if version is None:
                    version = await self.kube.secrets_version(namespace, self.label_selector)
                started = time.monotonic()
                version = await self._stream(namespace, version)
                delay = self.backoff[0]
                if time.monotonic() - started >= QUICK_END:
                    continue
                # a stream the API server ends at once, again and again, must not spin
                await asyncio.sleep(delay)
                continue
            except KubeError as exc:
                log.warning("Secret watch in %s: %s; again in %g s", where, exc, delay)
            except _Restart as restart:
                version = restart.version
                if version is None:
                    log.info("Secret watch in %s: %s; watching from now", where, restart)
                    continue
                log.warning("Secret watch in %s: %s; again in %g s", where, restart, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff[1])

    async def _stream(self, namespace: str | None, version: str) -> str:
        """Follow one watch request to its end; returns the version to resume from."""
        events = self.kube.watch_secrets_metadata(
            namespace, self.label_selector, version, self.seconds
        )
        async with contextlib.aclosing(events):
            async for event in events:
                seen = interpret(event)
                if seen.kind is Kind.CHANGED:
                    self.changes += 1
                    self.on_change(seen.namespace, seen.name)
                elif seen.kind is Kind.EXPIRED:
                    raise _Restart(f"version {version} expired ({seen.detail})", None)
                elif seen.kind is Kind.FAILED:
                    raise _Restart(f"error event ({seen.detail})", version)
                if seen.version:
                    version = seen.version
        return version


class _Restart(Exception):
    """The stream ended by an error event: resume from `version` (None: from now)."""

    def __init__(self, message: str, version: str | None) -> None:
        super().__init__(message)
        self.version = version
