"""kopf registration of the WhatsAppApps and the Namespaces' labels. No decisions here.

- a daemon per WhatsAppApp runs its passes (loop.py); kopf stops it on deletion and on a
  replica paused by peering; an index of the apps that exist, complete before any tenant's
  pass runs (a tenant waits for its app's first pass after a restart, AppIndex.pending);
- an app's watch events wake its pass on a spec change, and take a deleted app out of the
  index at once (its tenants then lose it, and the receiver's config with them);
- an index of every Namespace's labels (complete before any tenant's pass runs: kopf holds
  the handlers until its indexes are filled) that the tenants' passes match against the apps'
  `namespaceSelector`; a Namespace's watch event wakes its tenants that name an app.

Import this module (run.py does) to enable them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from whatsapp_operator.apps.loop import AppLoop, AppServices
from whatsapp_operator.apps.model import APP_PLURAL
from whatsapp_operator.model.spec import GROUP, VERSION

log = logging.getLogger(__name__)
APPS = (GROUP, VERSION, APP_PLURAL)
NAMESPACES = ("", "v1", "namespaces")


@kopf.daemon(*APPS, cancellation_timeout=5.0)
async def app_daemon(
    body: kopf.Body, name: str | None, memo: Any, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    services: AppServices | None = memo.get("apps")
    if services is None or not name:
        raise kopf.TemporaryError("waiting for the operator to start", delay=1.0)
    passes = asyncio.create_task(AppLoop(services, body, name).run(), name=f"app {name}")
    stop = asyncio.create_task(_until(stopped))
    try:  # returns when kopf stops the daemon (deletion, pause): no cancellation to escalate
        await asyncio.wait({passes, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (passes, stop):
            task.cancel()
        await asyncio.gather(passes, stop, return_exceptions=True)
    error = None if passes.cancelled() else passes.exception()
    if error is not None:
        raise error


async def _until(stopped: kopf.DaemonStopped) -> None:
    await stopped.wait()


@kopf.on.event(*APPS)
async def app_changed(type: str, name: str | None, meta: kopf.Meta, memo: Any, **_: Any) -> None:
    services: AppServices | None = memo.get("apps")
    if services is None or not name:
        return
    index = services.index
    uid = str(meta.get("uid") or "")
    if type == "DELETED" or meta.get("deletionTimestamp"):
        index.remove(name, uid)
        return
    generation = int(meta.get("generation") or 0)
    if index.seen_generation.get(name) != generation:
        index.seen_generation[name] = generation
        if type is not None:  # a listing (start-up): the daemon's first pass runs anyway
            index.wake_app(name)


@kopf.index(*APPS)
async def whatsapp_apps(name: str | None, meta: kopf.Meta, **_: Any) -> dict[str, str]:
    """App name -> its uid, for the apps that exist (AppIndex.pending)."""
    if not name or meta.get("deletionTimestamp"):
        return {}
    return {name: str(meta.get("uid") or "")}


@kopf.index(*NAMESPACES)
async def namespace_labels(name: str | None, labels: kopf.Labels, **_: Any) -> dict[str, Any]:
    """Namespace name -> its labels (a copy: kopf's view is live)."""
    return {name: dict(labels)} if name else {}


@kopf.on.event(*NAMESPACES)
async def namespace_changed(type: str, name: str | None, memo: Any, **_: Any) -> None:
    """Labels may have changed: the namespace's tenants that name an app look again."""
    if type is None or not name or "runtime" not in memo:
        return  # a listing: every tenant's first pass reads the index anyway
    memo.runtime.apps.wake_namespace(name)
