"""In-memory coordination between kopf's handlers and the tenants' reconcile passes.

Each tenant known to the scheduler registers a wake target; watch handlers (the tenant
itself changed, its Secret changed, a tenant it was waiting for went away) set it. Only
process-local state lives here: everything the operator knows for sure is in the cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from whatsapp_contract.signals import TenantSignal
from whatsapp_operator.model.blocking import Pending
from whatsapp_operator.model.notices import Notice
from whatsapp_operator.runtime import metrics

TenantKey = tuple[str, str]  # (namespace, name)
# Why a tenant's pass ran before its timer (whatsapp_operator_wakes_total{reason}): its spec
# or a request annotation, ids released by another tenant, its Secret, its config published
# or moved to another shard, its pool's workers, PostgreSQL back, its row edited outside, a
# worker's signal (tenant_signals.py), one of Meta's notices (pools/notices.py), its
# WhatsAppApp changed (apps/index.py), its namespace's labels changed, a WhatsAppTenantPolicy
# changed (runtime/policies.py).
WakeReason = Literal[
    "spec", "claim", "secret", "published", "workers", "database", "drift", "signal", "notice",
    "app", "namespace", "policy",
]  # fmt: skip
# Meta's notices waiting for a tenant's pass: at most this many per tenant (the oldest go),
# and for at most this many tenants not (yet) known here (a tenant listed late still gets them)
MAX_NOTICES = 500
MAX_NOTICE_TENANTS = 10_000


class Wakeable(Protocol):
    """What the registry wakes: the tenant's `scheduler.Slot` in the operator."""

    def set(self) -> None: ...

    def is_set(self) -> bool: ...


class Flag:
    """A wake target that only remembers it was woken (for a tenant known without a
    scheduler, and in tests)."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def clear(self) -> None:
        self._set = False


def settle_notices(notices: Iterable[Notice]) -> None:
    """Acknowledge notices whose effect is at the API server (or that were given up on)."""
    for notice in notices:
        if notice.receipt is not None:
            notice.receipt.settle()


@dataclass
class Registry:
    wakers: dict[TenantKey, Wakeable] = field(default_factory=dict)
    seen_generation: dict[TenantKey, int] = field(default_factory=dict)
    claims: dict[TenantKey, tuple[str, str]] = field(default_factory=dict)
    # whether Meta confirmed each tenant's number for its current spec (claims.number_verified)
    verified: dict[TenantKey, bool] = field(default_factory=dict)
    # tenant id -> the tenant whose row is in PostgreSQL (for the drift check)
    owners: dict[str, TenantKey] = field(default_factory=dict)
    # tenant id -> the tenant object claiming it (any tenant that reconciled)
    keys_by_tenant_id: dict[str, TenantKey] = field(default_factory=dict)
    # tenants whose last sync found PostgreSQL down: woken together when it is back
    db_waiters: set[TenantKey] = field(default_factory=set)
    # the Secret each tenant reads its token from, and (namespace, Secret) -> its tenants
    secret_of: dict[TenantKey, str] = field(default_factory=dict)
    by_secret: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    # what workers reported about a tenant (tenant_signals.py), for its next pass to take
    signals: dict[TenantKey, Pending] = field(default_factory=dict)
    # Meta's notices about a tenant (pools/notices.py), in arrival order, for its next pass.
    # Kept when the tenant is unregistered (a pause by peering): its next pass, here or after
    # a resume, takes them; only MAX_NOTICE_TENANTS tenants' worth are kept for unknown ones.
    notices: dict[TenantKey, tuple[Notice, ...]] = field(default_factory=dict)

    def register(self, key: TenantKey, target: Wakeable | None = None) -> Wakeable:
        """The tenant's wake target from now on (`target`, or a new Flag); the one it has if
        no `target` is given."""
        if target is not None:
            self.wakers[key] = target
        elif key not in self.wakers:
            self.wakers[key] = Flag()
        return self.wakers[key]

    def unregister(self, key: TenantKey) -> None:
        self.wakers.pop(key, None)
        self.seen_generation.pop(key, None)
        self.signals.pop(key, None)

    def key_of(self, tenant_id: str) -> TenantKey | None:
        """The tenant holding `tenant_id` whose passes run here (None: unknown, or paused)."""
        key = self.keys_by_tenant_id.get(tenant_id)
        return key if key is not None and key in self.wakers else None

    def post_signal(self, key: TenantKey, signal: TenantSignal) -> None:
        """File a worker's signal for the tenant's next pass (the caller wakes it)."""
        self.signals[key] = self.signals.get(key, Pending()).add(signal)

    def take_signals(self, key: TenantKey) -> Pending | None:
        """What was reported since the tenant's last pass (its pass acts on it once)."""
        return self.signals.pop(key, None)

    def return_signals(self, key: TenantKey, pending: Pending | None) -> None:
        """A pass that failed hands back what it took (newer reports win)."""
        if pending is not None and key in self.wakers:
            newer = self.signals.get(key)
            self.signals[key] = pending.merge(newer) if newer is not None else pending

    def post_notice(self, key: TenantKey, notice: Notice) -> int:
        """File a notice for the tenant's next pass (the caller wakes it); how many were
        dropped to make room (the oldest of the tenant's, or the notices of tenants unknown
        here)."""
        gone: list[Notice] = []
        if key not in self.notices and len(self.notices) >= MAX_NOTICE_TENANTS:
            for stray in [k for k in self.notices if k not in self.wakers]:
                gone += self.notices.pop(stray)
        queued = (*self.notices.get(key, ()), notice)
        gone += queued[:-MAX_NOTICES]
        self.notices[key] = queued[-MAX_NOTICES:]
        settle_notices(gone)  # given up on: the broker need not keep them either
        return len(gone)

    def take_notices(self, key: TenantKey) -> tuple[Notice, ...]:
        """The notices since the tenant's last pass (its pass applies them once, then settles
        them: `settle_notices`). Those the broker hands out again are left out."""
        return tuple(
            n for n in self.notices.pop(key, ()) if n.receipt is None or not n.receipt.void
        )

    def drop_notices(self, key: TenantKey) -> int:
        """The tenant is deleted: its pending notices will never be written; they are settled
        (acknowledged), so that they hold no delivery. How many there were."""
        gone = self.notices.pop(key, ())
        settle_notices(gone)
        return len(gone)

    def return_notices(self, key: TenantKey, notices: tuple[Notice, ...]) -> None:
        """A pass that failed hands back what it took, before any newer ones."""
        if notices:
            self.notices[key] = (*notices, *self.notices.get(key, ()))[-MAX_NOTICES:]

    def wake(self, key: TenantKey, reason: WakeReason) -> bool:
        event = self.wakers.get(key)
        if event is None:
            return False
        event.set()
        metrics.WAKES.labels(reason).inc()
        return True

    def release(self, tenant_id: str, key: TenantKey) -> bool:
        """Forget that `key` holds `tenant_id` (it is being deleted); True if it held it."""
        if self.owners.get(tenant_id) == key:
            del self.owners[tenant_id]
        held = self.keys_by_tenant_id.get(tenant_id) == key
        if held:
            del self.keys_by_tenant_id[tenant_id]
        return held

    def wake_tenants(self, tenant_ids: set[str], reason: WakeReason) -> int:
        keys = (k for t in tenant_ids if (k := self.keys_by_tenant_id.get(t)))
        return sum(self.wake(k, reason) for k in keys)

    def wake_db_waiters(self) -> int:
        waiting, self.db_waiters = self.db_waiters, set()
        return sum(self.wake(key, "database") for key in waiting)

    def spec_changed(self, key: TenantKey, generation: int) -> bool:
        """True when `generation` is new for this tenant (and remembers it)."""
        changed = self.seen_generation.get(key) != generation
        self.seen_generation[key] = generation
        return changed

    def refer(self, key: TenantKey, secret: str | None) -> None:
        """The tenant reads its token from Secret `secret` (in its namespace) from now on;
        None when it names none or is gone."""
        before = self.secret_of.get(key)
        if before == secret:
            return
        namespace, name = key
        if before is not None:
            del self.secret_of[key]
            rest = tuple(n for n in self.by_secret.get((namespace, before), ()) if n != name)
            if rest:
                self.by_secret[(namespace, before)] = rest
            else:
                self.by_secret.pop((namespace, before), None)
        if secret is not None:
            self.secret_of[key] = secret
            self.by_secret[(namespace, secret)] = (
                *self.by_secret.get((namespace, secret), ()),
                name,
            )

    def wake_secret(self, namespace: str, secret: str) -> int:
        """A Secret changed: the tenants reading their token from it look again now."""
        tenants = self.by_secret.get((namespace, secret), ())
        return sum(self.wake((namespace, name), "secret") for name in tenants)

    def swap_verified(self, key: TenantKey, verified: bool | None) -> bool:
        """Record whether the tenant's number is verified now (None: it is gone); True when
        that changed from what was recorded (its rivals for the number must look again)."""
        before = self.verified.pop(key, None)
        if verified is not None:
            self.verified[key] = verified
        return before is not None and verified is not None and before != verified

    def wake_with_rivals(self, in_scope: Callable[[TenantKey], bool], reason: WakeReason) -> int:
        """Wake the tenants `in_scope`, and every tenant claiming one of their ids (whose
        owner may change with them)."""
        keys = {key for key in self.wakers if in_scope(key)}
        ids = {value for key in keys for value in self.claims.get(key, ())}
        keys |= {key for key, claimed in self.claims.items() if ids.intersection(claimed)}
        return sum(self.wake(key, reason) for key in sorted(keys))

    def swap_claims(self, key: TenantKey, claims: tuple[str, str] | None) -> tuple[str, str] | None:
        """Record the (tenantId, phoneNumberId) a tenant claims now; return what it claimed."""
        before = self.claims.pop(key, None)
        if claims is not None:
            self.claims[key] = claims
        return before
