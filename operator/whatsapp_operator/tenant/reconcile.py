"""One tenant's reconcile: gather facts, call the pure `decide`, apply the result.

`TenantLoop.step` is one pass of one tenant; `scheduler.Scheduler` runs the passes (one at a
time per tenant, the next when it is due or when something wakes the tenant: its spec changed,
its Secret changed, a tenant it waited for went away). The watch hands each new body of the
tenant to `TenantLoop.observe`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from whatsapp_contract.resolved import Entry
from whatsapp_graph.client import DEFAULT_VERSION
from whatsapp_operator.meta.app_proof import attach_proof
from whatsapp_operator.meta.validation import Validator
from whatsapp_operator.model import blocking
from whatsapp_operator.model.claims import Claim, find_conflict
from whatsapp_operator.model.patches import merge_patch
from whatsapp_operator.model.recheck import backoff, next_check
from whatsapp_operator.model.secret_data import ResolvedToken, SecretOutcome, resolve_token
from whatsapp_operator.model.spec import (
    GROUP,
    REFRESH_ANNOTATION,
    REVALIDATE_ANNOTATION,
    TenantSpec,
    parse_spec,
)
from whatsapp_operator.pools.convergence import HeartbeatListener
from whatsapp_operator.pools.publisher import Publisher, resolved_config
from whatsapp_operator.postgres.audit_writer import AuditWriter
from whatsapp_operator.postgres.rows import desired_row
from whatsapp_operator.postgres.sync import RowSync
from whatsapp_operator.runtime import metrics
from whatsapp_operator.runtime.body_dictionary import TENANT_DICTIONARY
from whatsapp_operator.runtime.kube import (
    Kube,
    KubeError,
    KubeForbidden,
    KubeUnavailable,
    SecretSnapshot,
)
from whatsapp_operator.runtime.logs import REDACTOR
from whatsapp_operator.runtime.memory import PackedBody
from whatsapp_operator.runtime.registry import Registry, TenantKey
from whatsapp_operator.tenant.compose import (
    CheckResult,
    Decision,
    Event,
    Inputs,
    SyncResult,
    decide,
)
from whatsapp_operator.tokens.refresh import Refresher
from whatsapp_operator.tokens.rotation import next_rotation_moment
from whatsapp_operator.tokens.stage import api_version_condition, rotate

log = logging.getLogger(__name__)
# A safety net: even a tenant with nothing due is looked at again after this many seconds.
IDLE_RECHECK = 6 * 3600.0
# Seconds between timer-driven checks of one tenant, whatever the schedule says.
MIN_RECHECK = 30.0
# kopf's own annotations on a tenant (handlers.configure_settings): nothing in a pass reads them
KOPF_ANNOTATIONS = (f"{GROUP}/last-handled-configuration", f"{GROUP}/kopf-managed")
# Seconds a pass waits for the publisher to write the tenant's config, so that the status it
# writes says where (otherwise the publisher wakes the tenant for a second pass). A burst of a
# thousand new tenants keeps the publisher busy for 10-20 s; 5 s made most of them run twice
# (0.8-1.1 second passes per tenant). A failing publisher releases its waiters at once.
PUBLISH_WAIT = 30.0


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
    refresher: Refresher | None = None
    default_version: str = DEFAULT_VERSION
    audit: AuditWriter | None = None  # with PostgreSQL: the append-only audit trail
    publisher: Publisher | None = None  # with --workers-namespace: resolved config per pool
    convergence: HeartbeatListener | None = None  # with --amqp-url: workers on that config
    # kopf's live indexes of the ids the tenants claim (tenantId, phoneNumberId -> claims)
    by_tenant_id: Mapping[Any, Iterable[Claim]] = field(default_factory=dict)
    by_phone: Mapping[Any, Iterable[Claim]] = field(default_factory=dict)

    actor: str = "whatsapp-operator"

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
class Requests:
    """What users asked for through annotations, each to be acted on once."""

    revalidate: bool = False
    refresh: bool = False
    signals: blocking.Pending | None = None  # what workers reported since the last pass


@dataclass(frozen=True)
class Outcome:
    decision: Decision | None
    next_in: float  # seconds until the next reconcile is due
    transient: bool = False


async def _read_secret(
    rt: Runtime, namespace: str, name: str, key: str
) -> tuple[SecretOutcome, SecretSnapshot | None]:
    try:
        snapshot = await rt.kube.read_secret(namespace, name)
    except KubeForbidden as exc:
        return SecretOutcome(None, "SecretForbidden", f"the operator may not read it: {exc}"), None
    outcome = resolve_token(snapshot.data if snapshot is not None else None, name, key)
    if outcome.token is not None:
        REDACTOR.add(outcome.token.value)
    return outcome, snapshot


async def reconcile_once(
    rt: Runtime,
    body: Mapping[str, Any],
    status: Mapping[str, Any],
    by_tenant_id: Claims,
    by_phone: Claims,
    requests: Requests = Requests(),
) -> Outcome:
    """Gather -> decide -> apply for one tenant. Raises KubeUnavailable when it cannot read."""
    meta = body["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta.get("uid", "")
    generation = int(meta.get("generation") or 0)
    spec, spec_error = parse_spec(body.get("spec"))
    now = rt.clock()
    if spec is None:
        skipped = SyncResult.skipped("spec is invalid") if rt.rows is not None else None
        inputs = Inputs(generation, spec_error, None, None, None, status, now, rt.grace, skipped)
        return Outcome(decide(inputs), IDLE_RECHECK)
    conflict = find_conflict(
        claim_of(body),
        spec.tenant_id,
        by_tenant_id.get(spec.tenant_id, ()),
        spec.phone_number_id,
        by_phone.get(spec.phone_number_id, ()),
    )
    ref = spec.token_secret_ref
    secret, snapshot = await _read_secret(rt, namespace, ref.name, ref.key)
    app = spec.rotation.app_credentials_secret_ref
    secret = await attach_proof(rt.kube, namespace, app, secret)  # the token's appsecret_proof
    token = secret.token
    check: CheckResult | None = None
    rotation = None
    if token is not None and conflict is None:
        due = next_check(
            status, fingerprint=token.fingerprint, generation=generation,
            interval=spec.validation.interval, uid=uid, now=now,
        )  # fmt: skip
        recheck = blocking.wants_recheck(requests.signals, token.fingerprint, status)
        if due <= now or requests.revalidate or recheck:
            check = await rt.validator.check(token.value, spec, token.proof)
        rotation = await rotate(
            rt.refresher, meta=meta, spec=spec, snapshot=snapshot, token=token, check=check,
            status=status, now=rt.clock(), forced=requests.refresh,
        )  # fmt: skip
    version = api_version_condition(spec.graph_api_version or rt.default_version, rt.clock())
    inputs = Inputs(
        generation, "", secret, conflict, check, status, rt.clock(), rt.grace,
        token_storage=rt.token_storage, rotation=rotation, api_version=version,
        sending=blocking.SendingFacts(
            spec.phone_number_id,
            blocking.reported_block(requests.signals, spec.phone_number_id, now),
        ),
    )  # fmt: skip
    decision = decide(inputs)
    entry: Entry | None = None
    waiting: asyncio.Task[bool] | None = None
    if rt.publisher is not None and conflict is None:
        rt.registry.keys_by_tenant_id[spec.tenant_id] = (namespace, name)
        throughput = str((decision.status.get("phone") or {}).get("throughputLevel") or "")
        entry = _publish(rt, spec, token, decision, throughput)
        if entry is not None:  # overlaps with the row's sync; saves a second pass
            waiting = asyncio.create_task(
                rt.publisher.wait_published(spec.tenant_id, entry, PUBLISH_WAIT)
            )
    try:
        if rt.rows is not None:
            sync = await _sync_row(rt, body, spec, inputs, decision)
            if sync.transient:
                # Registered before the next await (the publication wait can last seconds): a
                # recovery from here on wakes this tenant instead of leaving it to its backoff.
                rt.registry.db_waiters.add((namespace, name))
            inputs = dataclasses.replace(inputs, sync=sync)
        if waiting is not None:
            await waiting
    finally:
        if waiting is not None and not waiting.done():
            waiting.cancel()
    if rt.publisher is not None and conflict is None:
        inputs = dataclasses.replace(inputs, published=_where(rt, spec.tenant_id, entry))
    decision = decide(inputs)
    if inputs.sync is not None and rt.rows is not None:
        sync = inputs.sync
        if sync.transient:
            return Outcome(decision, 0.0, transient=True)
        if sync.reason == "DatabaseError":
            return Outcome(decision, 0.0, transient=True)  # retried with backoff, not in 6 h
        if sync.status == "True":
            rt.registry.owners[spec.tenant_id] = (namespace, name)
    if check is not None and check.transient:
        return Outcome(decision, 0.0, transient=True)
    if token is None or conflict is not None:
        return Outcome(decision, IDLE_RECHECK)
    later = rt.clock()
    due = next_check(
        decision.status, fingerprint=token.fingerprint, generation=generation,
        interval=spec.validation.interval, uid=uid, now=later,
    )  # fmt: skip
    floor = MIN_RECHECK if check is not None else 1.0  # a finished check never repeats at once
    wait = max(floor, (due - later).total_seconds())
    if rotation is not None:
        moment = next_rotation_moment(
            strategy=rotation.strategy, times=rotation.times, renew_before=rotation.renew_before,
            state=rotation.state, now=later,
        )  # fmt: skip
        if moment is not None:  # always in the future: no loop
            wait = min(wait, max(1.0, (moment - later).total_seconds()))
    return Outcome(decision, min(IDLE_RECHECK, wait))


def _publish(
    rt: Runtime, spec: TenantSpec, token: ResolvedToken | None, decision: Decision, throughput: str
) -> Entry | None:
    """Hand the tenant's resolved config to the publisher (and return its entry): only a tenant
    whose token and number check out, active and not suspended (the kill switch) is
    published. Readiness here leaves PostgreSQL out: an unreachable database must not stop
    the sending. A number Meta blocks stays published, with its `blocked_code`: its workers
    hold its messages instead of taking the tenant for unknown."""
    assert rt.publisher is not None
    config = None
    wanted = blocking.publishable(decision.status) and spec.active and not spec.suspend
    if wanted and token is not None:
        config = resolved_config(spec, token, rt.default_version, throughput)
        if (code := blocking.blocked_code(decision.status)) is not None:
            config = config.model_copy(update={"blocked_code": code})
    return rt.publisher.update(spec.tenant_id, spec.sender_pool, config)


def _where(rt: Runtime, tenant_id: str, entry: Entry | None) -> dict[str, str] | None:
    """Where the tenant's config is published, for its status (None when it is not)."""
    assert rt.publisher is not None
    where = rt.publisher.location(tenant_id) if entry is not None else None
    if where is None:
        return None
    published = {"pool": where.pool, "secret": where.secret, "contentHash": where.content_hash}
    if rt.convergence is not None:
        published["workers"] = rt.convergence.of(where.pool).describe()
    return published


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
    """One tenant's reconcile state between passes (run by `scheduler.Scheduler`): its latest
    body from the watch, packed (memory.PackedBody), and what its passes must remember."""

    __slots__ = ("_handled", "_packed", "_written", "failures", "key", "rt")

    def __init__(self, rt: Runtime, body: Mapping[str, Any], key: TenantKey) -> None:
        self.rt = rt
        self.key = key
        self.failures = 0
        self._packed = PackedBody(body, KOPF_ANNOTATIONS, TENANT_DICTIONARY)
        self._written: tuple[int, dict[str, Any]] | None = None
        self._handled: dict[str, str] | None = None  # request annotation -> value acted on

    @property
    def body(self) -> dict[str, Any]:
        """The latest body the watch has seen (unpacked: a copy of its own)."""
        return self._packed.unpack()

    def observe(self, body: Mapping[str, Any]) -> None:
        """The watch brought a newer body of this tenant."""
        self._packed = PackedBody(body, KOPF_ANNOTATIONS, TENANT_DICTIONARY)
        self._forget_seen_write()

    def _status(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """The stored status; ours if the watch has not caught up with our last write yet."""
        self._forget_seen_write()
        if self._written is not None:
            return self._written[1]
        return body.get("status") or {}

    def _forget_seen_write(self) -> None:
        """Drop the copy of our last status write once the watch has brought it back."""
        if self._written is not None and self._packed.resource_version >= self._written[0]:
            self._written = None

    async def _apply(
        self,
        body: Mapping[str, Any],
        status: Mapping[str, Any],
        decision: Decision,
        asked: Mapping[str, str],
    ) -> None:
        patch = merge_patch(status, decision.status)
        if patch:
            namespace, name = self.key
            rv = await self.rt.kube.patch_tenant_status(namespace, name, patch)
            if rv is not None:
                self._written = (_rv(rv), decision.status)
        for event in decision.events:
            self.rt.post_event(body, event)
        spec = body.get("spec") or {}
        tenant_id = str(spec.get("tenantId", ""))
        metrics.observe(*self.key, tenant_id, decision.status)
        self._audit(tenant_id, decision)
        for annotation, value in asked.items():
            if self._handled is None:
                self._handled = {}
            self._handled[annotation] = value  # acted on once, even if the removal lags
            await self.rt.kube.remove_tenant_annotation(*self.key, annotation)

    def _audit(self, tenant_id: str, decision: Decision) -> None:
        """Queued, written in the background: the tenant's pass never waits for it."""
        if self.rt.audit is None:
            return
        for note in decision.audit:
            try:
                self.rt.audit.submit(
                    tenant_id, note.event, self.rt.actor, note.fingerprint, note.detail
                )
            except ValueError as exc:
                log.warning("tenant %s: audit entry %s refused: %s", tenant_id, note.event, exc)

    def _asked(self, body: Mapping[str, Any]) -> dict[str, str]:
        """The request annotations present and not yet acted on (by their value)."""
        annotations = body.get("metadata", {}).get("annotations") or {}
        handled = self._handled or {}
        return {
            a: str(annotations[a])
            for a in (REVALIDATE_ANNOTATION, REFRESH_ANNOTATION)
            if a in annotations and handled.get(a) != str(annotations[a])
        }

    async def step(self) -> float:
        """One pass; seconds until the next is due."""
        body = self.body  # the pass works on this one; a newer one is for the next pass
        status = self._status(body)
        asked = self._asked(body)  # taken now: a request arriving mid-pass waits for the next
        signals = self.rt.registry.take_signals(self.key)
        requests = Requests(REVALIDATE_ANNOTATION in asked, REFRESH_ANNOTATION in asked, signals)
        try:
            outcome = await reconcile_once(
                self.rt, body, status, self.rt.by_tenant_id, self.rt.by_phone, requests
            )
            if outcome.decision is not None:
                await self._apply(body, status, outcome.decision, asked)
        except KubeError as exc:
            if not isinstance(exc, KubeUnavailable):
                log.error("tenant %s/%s: %s", *self.key, exc)
            self.rt.registry.return_signals(self.key, signals)  # for the retry
            self.failures += 1
            return backoff(self.failures)
        metrics.RECONCILES.labels("transient" if outcome.transient else "ok").inc()
        if outcome.transient:
            self.failures += 1
            return backoff(self.failures)
        self.failures = 0
        return outcome.next_in
