"""One tenant's reconcile: gather facts, call the pure `decide`, apply the result.

`TenantLoop.run` is the body of the tenant's kopf daemon: it reconciles, then sleeps until the
next check is due or something wakes it (its spec changed, its Secret changed, a tenant it
waited for went away). One loop per tenant means one reconcile at a time per tenant, with no
locks and no polling timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .decide import CheckResult, Decision, Event, Inputs, SyncResult, decide
from .kube import Kube, KubeError, KubeForbidden, KubeUnavailable
from .logs import REDACTOR
from .ownership import Claim, find_conflict
from .patches import merge_patch
from .registry import Registry, TenantKey
from .rows import desired_row
from .schedule import backoff, next_check
from .spec import REVALIDATE_ANNOTATION, TenantSpec, parse_spec
from .sync import RowSync
from .tokens import SecretOutcome, resolve_token
from .validation import Validator

log = logging.getLogger(__name__)
# A safety net: even a tenant with nothing due is looked at again after this many seconds.
IDLE_RECHECK = 6 * 3600.0
# Seconds between timer-driven checks of one tenant, whatever the schedule says.
MIN_RECHECK = 30.0


@dataclass
class Runtime:
    kube: Kube
    validator: Validator
    registry: Registry
    clock: Callable[[], datetime]
    post_event: Callable[[Mapping[str, Any], Event], None]
    grace: timedelta
    rows: RowSync | None = None  # None: PostgreSQL sync not configured
    owner: str = "whatsapp-operator"

    @property
    def token_storage(self) -> str:
        return self.rows.cipher.mode if self.rows is not None else "none"


Claims = Mapping[Any, Iterable[Claim]]


def claim_of(body: Mapping[str, Any]) -> Claim:
    meta = body["metadata"]
    return Claim(
        meta.get("creationTimestamp", ""), meta["namespace"], meta["name"], meta.get("uid", "")
    )


def revalidation_requested(meta: Mapping[str, Any]) -> bool:
    """Someone asked for a Graph API check now (the revalidate annotation is set)."""
    return REVALIDATE_ANNOTATION in (meta.get("annotations") or {})


@dataclass(frozen=True)
class Outcome:
    decision: Decision | None
    next_in: float  # seconds until the next reconcile is due
    transient: bool = False


async def _read_secret(rt: Runtime, namespace: str, name: str, key: str) -> SecretOutcome:
    try:
        data = await rt.kube.secret_data(namespace, name)
    except KubeForbidden as exc:
        return SecretOutcome(None, "SecretForbidden", f"the operator may not read it: {exc}")
    outcome = resolve_token(data, name, key)
    if outcome.token is not None:
        REDACTOR.add(outcome.token.value)
    return outcome


async def reconcile_once(
    rt: Runtime,
    body: Mapping[str, Any],
    status: Mapping[str, Any],
    by_tenant_id: Claims,
    by_phone: Claims,
) -> Outcome:
    """Gather -> decide -> apply for one tenant. Raises KubeUnavailable when it cannot read."""
    meta = body["metadata"]
    namespace, _name, uid = meta["namespace"], meta["name"], meta.get("uid", "")
    generation = int(meta.get("generation") or 0)
    spec, spec_error = parse_spec(body.get("spec"))
    now = rt.clock()
    if spec is None:
        skipped = SyncResult.skipped("spec is invalid") if rt.rows is not None else None
        inputs = Inputs(generation, spec_error, None, None, None, status, now, rt.grace, skipped)
        return Outcome(decide(inputs), IDLE_RECHECK)
    me = claim_of(body)
    conflict = find_conflict(
        me,
        spec.tenant_id,
        by_tenant_id.get(spec.tenant_id, ()),
        spec.phone_number_id,
        by_phone.get(spec.phone_number_id, ()),
    )
    ref = spec.token_secret_ref
    secret = await _read_secret(rt, namespace, ref.name, ref.key)
    check: CheckResult | None = None
    if secret.token is not None and conflict is None:
        due = next_check(
            status,
            fingerprint=secret.token.fingerprint,
            generation=generation,
            interval=spec.validation.interval,
            uid=uid,
            now=now,
        )
        if due <= now or revalidation_requested(meta):
            check = await rt.validator.check(secret.token.value, spec)
    inputs = Inputs(
        generation,
        "",
        secret,
        conflict,
        check,
        status,
        rt.clock(),
        rt.grace,
        token_storage=rt.token_storage,
    )
    decision = decide(inputs)
    if rt.rows is not None:
        sync = await _sync_row(rt, body, spec, inputs, decision)
        decision = decide(dataclasses.replace(inputs, sync=sync))
        if sync.transient:
            return Outcome(decision, 0.0, transient=True)
        if sync.status == "True":
            rt.registry.owners[spec.tenant_id] = (namespace, _name)
    if check is not None and check.transient:
        return Outcome(decision, 0.0, transient=True)
    if secret.token is None or conflict is not None:
        return Outcome(decision, IDLE_RECHECK)
    due = next_check(
        decision.status,
        fingerprint=secret.token.fingerprint,
        generation=generation,
        interval=spec.validation.interval,
        uid=uid,
        now=rt.clock(),
    )
    floor = MIN_RECHECK if check is not None else 1.0  # a finished check never repeats at once
    return Outcome(decision, max(floor, min(IDLE_RECHECK, (due - rt.clock()).total_seconds())))


async def _sync_row(
    rt: Runtime, body: Mapping[str, Any], spec: TenantSpec, inputs: Inputs, pre: Decision
) -> SyncResult:
    """Bring the tenant's PostgreSQL row in line (the owner of the tenant id only)."""
    assert rt.rows is not None
    if inputs.conflict is not None:
        return SyncResult.skipped(f"not synced while {inputs.conflict.owner.ref} owns the ids")
    meta = body["metadata"]
    token = inputs.secret.token if inputs.secret is not None else None
    desired = desired_row(
        spec=spec,
        uid=meta.get("uid", ""),
        namespace=meta["namespace"],
        name=meta["name"],
        generation=inputs.generation,
        token=token.value if token is not None else None,
        token_fingerprint=token.fingerprint if token is not None else None,
        phone=pre.status.get("phone") or {},
        ready=pre.ready,
        was_configured=False,
        owner=rt.owner,
    )
    return await rt.rows.sync(desired, adopt=spec.adopt_existing_row)


def _rv(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


class TenantLoop:
    """The reconcile loop of one tenant (the body of its kopf daemon)."""

    def __init__(self, rt: Runtime, body: Mapping[str, Any], key: TenantKey) -> None:
        self.rt = rt
        self.body = body  # kopf's live view: always the latest the watch has seen
        self.key = key
        self.failures = 0
        self._written: tuple[int, dict[str, Any]] | None = None

    def _status(self) -> Mapping[str, Any]:
        """The stored status; ours if the watch has not caught up with our last write yet."""
        current_rv = _rv(self.body.get("metadata", {}).get("resourceVersion"))
        if self._written is not None and self._written[0] > current_rv:
            return self._written[1]
        return self.body.get("status") or {}

    async def _apply(self, status: Mapping[str, Any], decision: Decision) -> None:
        patch = merge_patch(status, decision.status)
        if patch:
            namespace, name = self.key
            rv = await self.rt.kube.patch_tenant_status(namespace, name, patch)
            if rv is not None:
                self._written = (_rv(rv), decision.status)
        for event in decision.events:
            self.rt.post_event(self.body, event)
        if revalidation_requested(self.body.get("metadata", {})):
            await self.rt.kube.remove_tenant_annotation(*self.key, REVALIDATE_ANNOTATION)

    async def step(self, by_tenant_id: Claims, by_phone: Claims) -> float:
        status = self._status()
        try:
            outcome = await reconcile_once(self.rt, self.body, status, by_tenant_id, by_phone)
            if outcome.decision is not None:
                await self._apply(status, outcome.decision)
        except KubeError as exc:
            if not isinstance(exc, KubeUnavailable):
                log.error("tenant %s/%s: %s", *self.key, exc)
            self.failures += 1
            return backoff(self.failures)
        if outcome.transient:
            self.failures += 1
            return backoff(self.failures)
        self.failures = 0
        return outcome.next_in

    async def run(self, by_tenant_id: Claims, by_phone: Claims) -> None:
        wake = self.rt.registry.register(self.key)
        try:
            while True:
                wake.clear()
                delay = await self.step(by_tenant_id, by_phone)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=delay)
        finally:
            self.rt.registry.unregister(self.key)
