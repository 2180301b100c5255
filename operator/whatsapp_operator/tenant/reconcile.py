"""One tenant's pass: gather the facts, run the stages, compose the one decision.

The stages plan from the typed view of the facts (`view.View`) and report fragments:
- the token stage renews the token when due (`tokens/stage.py`), before the view is taken;
- the publication stage hands the tenant's resolved config to its pool (`pools/stage.py`);
- the row stage keeps its `tenant_whatsapp_config` row (`postgres/stage.py`), overlapping
  with the publication's write.
`compose.compose` then builds status, Events and `Ready` once. `loop.TenantLoop` applies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from whatsapp_operator.apps.tenant_ref import number_entry
from whatsapp_operator.model.conditions import Reason
from whatsapp_operator.model.fragment import Decision, Fragment
from whatsapp_operator.model.health import health_fragment
from whatsapp_operator.model.recheck import next_check
from whatsapp_operator.pools.publication import plan_publication
from whatsapp_operator.pools.stage import Publication
from whatsapp_operator.postgres.rows import DesiredRow, desired_row
from whatsapp_operator.postgres.stage import RowStage, sync_row
from whatsapp_operator.runtime.services import Runtime
from whatsapp_operator.tenant.compose import compose
from whatsapp_operator.tenant.gather import Claims, Gathered, Requests, gather
from whatsapp_operator.tenant.view import View, view_of
from whatsapp_operator.tokens.rotation import (
    RotationInputs,
    next_rotation_moment,
    rotation_fragment,
)
from whatsapp_operator.tokens.stage import api_version_condition, rotate

# A safety net: even a tenant with nothing due is looked at again after this many seconds.
IDLE_RECHECK = 6 * 3600.0
# Seconds between timer-driven checks of one tenant, whatever the schedule says.
MIN_RECHECK = 30.0
NO_REQUESTS = Requests()
# Seconds a tenant waits for its WhatsAppApp's first pass after a restart (it is woken as soon
# as the app is filed; this only bounds the wait).
APP_PENDING = 10.0


@dataclass(frozen=True)
class Outcome:
    decision: Decision | None
    next_in: float  # seconds until the next reconcile is due
    transient: bool = False


async def reconcile_once(
    rt: Runtime,
    body: Mapping[str, Any],
    status: Mapping[str, Any],
    by_tenant_id: Claims,
    by_phone: Claims,
    requests: Requests = NO_REQUESTS,
) -> Outcome:
    """Gather -> stages -> compose for one tenant. Raises KubeUnavailable when it cannot read."""
    got = await gather(rt, body, status, (by_tenant_id, by_phone), requests)
    if got.app_ref is not None and got.app_ref.pending:
        # nothing decided (its app's first pass wakes it): what workers and Meta reported
        # meanwhile is handed back for that pass
        key = (got.meta["namespace"], got.meta["name"])
        rt.registry.return_signals(key, requests.signals)
        rt.registry.return_notices(key, requests.notices)
        return Outcome(None, APP_PENDING)
    if got.spec is None:
        view = view_of(got.facts(status, got.now, rt.grace))
        skipped = await _row_stage(rt, got, view, status) if rt.rows is not None else None
        row_fragment = skipped.fragment if skipped else None
        _report_number(rt, got, view)
        health = _health(view, status, requests, None)  # kept as stored: no id to check against
        return Outcome(compose(view, row=row_fragment, health=health), IDLE_RECHECK)
    rotation = None
    if got.token is not None and got.conflict is None:
        rotation = await rotate(
            rt.refresher, meta=got.meta, spec=got.spec, snapshot=got.snapshot, token=got.token,
            check=got.check, status=status, now=rt.clock(), forced=requests.refresh,
            app=(got.app.app_id, got.app.app_secret) if got.app and got.app.app_secret else None,
        )  # fmt: skip
    version = got.spec.graph_api_version or rt.default_version
    api_version = api_version_condition(version, rt.clock())
    view = view_of(got.facts(status, rt.clock(), rt.grace))
    _report_number(rt, got, view)
    row, publication = await _publish_and_sync(rt, got, view, status)
    fingerprint = got.token.fingerprint if got.token is not None else None
    decision = compose(
        view,
        rotation=(
            rotation_fragment(rotation, status, view.facts.now, fingerprint)
            if rotation is not None
            else None
        ),
        row=row.fragment if row is not None else None,
        publication=publication,
        api_version=api_version,
        health=_health(view, status, requests, got.spec.tenant_id),
    )
    return _outcome(rt, got, decision, row, rotation)


def _health(
    view: View, status: Mapping[str, Any], requests: Requests, tenant_id: str | None
) -> Fragment | None:
    """status.health and AccountHealthy: the stored health with Meta's new notices applied."""
    return health_fragment(
        status, requests.notices, tenant_id=tenant_id, phone=view.phone_facts, now=view.facts.now
    )


async def _publish_and_sync(
    rt: Runtime, got: Gathered, view: View, status: Mapping[str, Any]
) -> tuple[RowStage | None, Fragment | None]:
    """The publication and row stages, overlapping: the row is written while the publisher
    writes the pool's Secret."""
    publication = _start_publication(rt, got, view)
    row: RowStage | None = None
    try:
        if rt.rows is not None:
            row = await _row_stage(rt, got, view, status)
        if publication is not None:
            await publication.written()
    finally:
        if publication is not None:
            publication.cancel()
    return row, publication.fragment() if publication is not None else None


def _start_publication(rt: Runtime, got: Gathered, view: View) -> Publication | None:
    """The publication stage, started (the row stage runs while the publisher writes)."""
    spec = got.spec
    if rt.publisher is None or got.conflict is not None or spec is None:
        return None
    rt.registry.keys_by_tenant_id[spec.tenant_id] = (got.meta["namespace"], got.meta["name"])
    config = plan_publication(
        spec, got.token, publishable=view.publishable, blocked_code=view.blocked_code,
        phone=view.phone_facts, default_version=rt.default_version,
        webhook_app_id=got.app.app_id if got.app is not None and rt.receiver else None,
    )  # fmt: skip
    return Publication(rt.publisher, rt.convergence, spec.tenant_id, spec.sender_pool, config)


def _plan_row(rt: Runtime, got: Gathered, view: View) -> DesiredRow | str:
    """The row the tenant should have, or why it is not synced (only the owner of the tenant
    id syncs it)."""
    if got.spec is None:
        return "spec is invalid"
    if got.conflict is not None:
        return f"not synced while {got.conflict.hold}"
    token = got.token
    return desired_row(
        spec=got.spec,
        uid=got.meta.get("uid", ""),
        namespace=got.meta["namespace"],
        name=got.meta["name"],
        generation=got.generation,
        token=token.value if token is not None else None,
        token_fingerprint=token.fingerprint if token is not None else None,
        phone=view.phone_facts,
        ready=view.ready.status == "True",
        was_configured=False,
        owner=rt.owner,
        verify_token=got.app.verify_token if got.app is not None else None,
    )


def _report_number(rt: Runtime, got: Gathered, view: View) -> None:
    """The tenant's number in the webhook receiver's config: routed while the tenant may use
    its app and holds its ids (a duplicate does not), whatever its token's state (statuses
    of earlier sends and customers' messages keep coming)."""
    if rt.receiver is None:
        return
    namespace, name = got.meta["namespace"], got.meta["name"]
    spec, app = got.spec, got.app
    entry = None
    if spec is not None and app is not None and got.conflict is None:
        entry = number_entry(
            app=app, tenant_id=spec.tenant_id, waba_id=spec.waba_id,
            phone_number_id=spec.phone_number_id, namespace=namespace, name=name,
            pool=spec.sender_pool, phone=view.phone_facts,
        )  # fmt: skip
    rt.receiver.set_number((namespace, name), entry)


async def _row_stage(rt: Runtime, got: Gathered, view: View, status: Mapping[str, Any]) -> RowStage:
    assert rt.rows is not None
    adopt = got.spec.adopt_existing_row if got.spec is not None else False
    row = await sync_row(
        rt.rows, _plan_row(rt, got, view), adopt=adopt, stored=status,
        approved=got.policy.adoption_approved, bound=rt.tenant_policy == "enforce",
    )  # fmt: skip
    if row.result.transient:
        # Registered before the next await (the publication wait can last seconds): a
        # recovery from here on wakes this tenant instead of leaving it to its backoff.
        rt.registry.db_waiters.add((got.meta["namespace"], got.meta["name"]))
    return row


def _outcome(
    rt: Runtime,
    got: Gathered,
    decision: Decision,
    row: RowStage | None,
    rotation: RotationInputs | None,
) -> Outcome:
    """The decision, and when the next pass is due."""
    spec, token = got.spec, got.token
    assert spec is not None
    if row is not None:
        if row.result.transient or row.result.reason == Reason.DATABASE_ERROR:
            return Outcome(decision, 0.0, transient=True)  # retried with backoff, not in 6 h
        if row.result.status == "True":
            rt.registry.owners[spec.tenant_id] = (got.meta["namespace"], got.meta["name"])
    if got.check is not None and got.check.transient:
        return Outcome(decision, 0.0, transient=True)
    if token is None or got.conflict is not None:
        return Outcome(decision, IDLE_RECHECK)
    later = rt.clock()
    due = next_check(
        decision.status, fingerprint=token.fingerprint, generation=got.generation,
        interval=spec.validation.interval, uid=got.meta.get("uid", ""), now=later,
    )  # fmt: skip
    floor = MIN_RECHECK if got.check is not None else 1.0  # a finished check never repeats
    wait = max(floor, (due - later).total_seconds())
    if rotation is not None:
        moment = next_rotation_moment(
            strategy=rotation.strategy, times=rotation.times, renew_before=rotation.renew_before,
            state=rotation.state, now=later,
        )  # fmt: skip
        if moment is not None:  # always in the future: no loop
            wait = min(wait, max(1.0, (moment - later).total_seconds()))
    return Outcome(decision, min(IDLE_RECHECK, wait))
