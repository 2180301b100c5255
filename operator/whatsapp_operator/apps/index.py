"""The WhatsAppApps as the tenants' passes see them, in memory, and who uses which.

Each app's pass (loop.py) files what its tenants need (`ResolvedApp`: Ready or not, the
secret, the verify token, the selector); a tenant's pass reads it (tenant/gather.py). When an
app's entry changes, or a namespace's labels do, the tenants concerned are woken: their
`AppResolved`, `Ready`, proof, published config and row follow within a pass. Process-local
only: a restarted operator rebuilds it from the cluster (every app's first pass).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from whatsapp_operator.apps.tenant_ref import ResolvedApp
from whatsapp_operator.runtime.registry import Registry, TenantKey


class AppIndex:
    def __init__(self, registry: Registry | None = None, namespace: str | None = None) -> None:
        self.registry = registry
        self.namespace = namespace  # the operator's: where the apps' Secrets are
        self.apps: dict[str, ResolvedApp] = {}
        self._gone: set[str] = set()  # uids of deleted apps: a late pass must not re-add one
        self._uid: dict[str, str] = {}
        self.app_of: dict[TenantKey, str] = {}
        self.users: dict[str, set[TenantKey]] = {}  # app name -> tenants naming it
        self.loops: dict[str, asyncio.Event] = {}  # app name -> its loop's wake-up
        self.secrets: dict[str, tuple[str, ...]] = {}  # app name -> the Secrets it reads
        self.seen_generation: dict[str, int] = {}  # app name -> the spec its watch last saw
        # kopf's index of the apps that exist (handlers.whatsapp_apps): complete before any
        # tenant's pass runs, so an app listed there but not filed yet is one whose first pass
        # is still to come, not a missing one
        self.listed: Mapping[Any, Iterable[str]] = {}
        self.on_change: list[Callable[[str, ResolvedApp | None], None]] = []

    def get(self, name: str) -> ResolvedApp | None:
        return self.apps.get(name)

    def pending(self, name: str) -> bool:
        """The app exists but its first pass has not filed it yet (a restart): its tenants
        wait for it instead of reporting it missing (it wakes them when it is filed)."""
        return name not in self.apps and bool(list(self.listed.get(name, ())))

    def put(self, name: str, uid: str, app: ResolvedApp) -> bool:
        """File an app's entry from its pass; True (and its tenants woken) when it changed."""
        if uid in self._gone or self.apps.get(name) == app:
            return False
        self.apps[name], self._uid[name] = app, uid
        self._changed(name, app)
        return True

    def remove(self, name: str, uid: str) -> None:
        """The app is deleted (or being deleted): its tenants lose it now."""
        if uid:
            self._gone.add(uid)
        if self._uid.get(name) not in (None, uid) and uid:
            return  # a newer object of the same name took over
        self._uid.pop(name, None)
        self.secrets.pop(name, None)
        self.seen_generation.pop(name, None)
        if self.apps.pop(name, None) is not None:
            self._changed(name, None)

    def _changed(self, name: str, app: ResolvedApp | None) -> None:
        self.wake_users(name)
        for listener in self.on_change:
            listener(name, app)

    # -- the tenants that use an app --------------------------------------------------------
    def refer(self, key: TenantKey, app: str | None) -> None:
        """The tenant names WhatsAppApp `app` (None: none, or it is gone)."""
        before = self.app_of.get(key)
        if before == app:
            return
        if before is not None:
            del self.app_of[key]
            users = self.users.get(before, set())
            users.discard(key)
            if not users:
                self.users.pop(before, None)
        if app is not None:
            self.app_of[key] = app
            self.users.setdefault(app, set()).add(key)

    def wake_users(self, name: str) -> int:
        if self.registry is None:
            return 0
        return sum(self.registry.wake(k, "app") for k in sorted(self.users.get(name, ())))

    def wake_namespace(self, namespace: str) -> int:
        """A namespace's labels may have changed: its tenants with an appRef look again."""
        if self.registry is None:
            return 0
        keys = sorted(k for k in self.app_of if k[0] == namespace)
        return sum(self.registry.wake(k, "namespace") for k in keys)

    # -- the apps' own passes ---------------------------------------------------------------
    def wake_app(self, name: str) -> None:
        event = self.loops.get(name)
        if event is not None:
            event.set()

    def wake_secret(self, namespace: str, secret: str) -> int:
        """A Secret changed: the apps reading it (in the operator's namespace) look again."""
        if namespace != self.namespace:
            return 0
        names = [n for n, secrets in self.secrets.items() if secret in secrets]
        for name in names:
            self.wake_app(name)
        return len(names)
