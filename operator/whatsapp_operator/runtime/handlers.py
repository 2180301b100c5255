"""kopf registration: wires watch events to the reconcile. No decisions are made here.

Every handler is `async`, even those that do no I/O: kopf runs a plain function in a thread
pool, which costs a thread hop per watch event (thousands at start-up) and would set the
loops' asyncio Events from a foreign thread, which asyncio does not support.

- indexes: tenants by tenantId and by phoneNumberId (cluster-wide claims, complete before any
  pass runs); the registry follows which Secret each tenant reads;
- every tenant event hands the tenant's body to the scheduler (scheduler.py), which runs its
  reconcile passes (create, resume, timers in one place) with no task while it sleeps;
- watch events on tenants, and the metadata-only watch of Secrets (secret_watch.py), wake
  the tenants that must look again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from whatsapp_graph.client import GraphClient, default_timeout
from whatsapp_graph.http import new_http_client
from whatsapp_operator.apps import wiring as apps_wiring
from whatsapp_operator.meta.budget import RequestBudget
from whatsapp_operator.meta.validation import Validator
from whatsapp_operator.model.claims import Claim, number_verified
from whatsapp_operator.model.fragment import Event
from whatsapp_operator.model.spec import GROUP, PLURAL, VERSION
from whatsapp_operator.pools.convergence import HeartbeatListener
from whatsapp_operator.pools.notices import NoticeListener, NoticeRouter
from whatsapp_operator.pools.publisher import POOL_LABEL, Publisher
from whatsapp_operator.pools.signals import SignalListener, SignalRouter
from whatsapp_operator.postgres import wiring
from whatsapp_operator.runtime import diagnostics, memory, metrics, toggles
from whatsapp_operator.runtime.kube import Kube
from whatsapp_operator.runtime.registry import Registry, TenantKey
from whatsapp_operator.runtime.scheduler import Scheduler, wait_ended
from whatsapp_operator.runtime.secret_watch import SecretWatch
from whatsapp_operator.runtime.services import Runtime
from whatsapp_operator.settings import OperatorConfig
from whatsapp_operator.tenant.gather import claim_of, revalidation_requested
from whatsapp_operator.tenant.loop import TenantLoop
from whatsapp_operator.tokens.refresh import Refresher
from whatsapp_operator.tokens.stage import refresh_requested

log = logging.getLogger(__name__)
TENANTS = (GROUP, VERSION, PLURAL)
GRAPH_CONNECTIONS = 100
# The pools' shard Secrets (labelled with their pool, each up to 512 KB plus base64) are this
# operator's own output: the Secret watch leaves them out.
SECRET_SELECTOR = f"!{POOL_LABEL}"


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _post_event(body: Mapping[str, Any], event: Event) -> None:
    target = body if isinstance(body, kopf.Body) else kopf.Body(dict(body))  # type: ignore[arg-type]
    kopf.event(target, type=event.type, reason=event.reason, message=event.message)


def configure_settings(settings: kopf.OperatorSettings, cfg: OperatorConfig) -> None:
    """kopf settings for many objects and a well-behaved footprint (README, "Performance")."""
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    settings.posting.reporting_component = "whatsapp-operator"
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 660
    settings.watching.connect_timeout = 30
    # A restart lists 10,000 tenants and their Secrets 500 at a time, not in one response of
    # tens of MB that would be held (and then leave the heap fragmented) all at once.
    settings.watching.chunk_size = 500
    settings.networking.request_timeout = 60
    settings.scanning.disabled = True
    # kopf's default. A per-object worker holds the object's last watch event (the whole body,
    # 31 KB parsed) while it waits for the next: with 30 s, a burst of 10,000 tenants kept them
    # all for half a minute after it ended.
    settings.queueing.idle_timeout = 5.0
    settings.peering.standalone = cfg.peering is None
    if cfg.peering is not None:
        settings.peering.name = cfg.peering
        settings.peering.priority = cfg.priority
        settings.peering.clusterwide = cfg.all_namespaces or not cfg.namespace_list


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: Any, **kwargs: Any) -> None:
    cfg: OperatorConfig = memo.config
    configure_settings(settings, cfg)
    diagnostics.install()
    graph = _graph_client(cfg, memo)
    budget = RequestBudget(cfg.graph_rate, cfg.graph_burst)
    memo.kube = await Kube.connect(cfg.kubeconfig)
    diagnostics.REPORTERS["kubernetes client"] = memo.kube.connection_stats
    diagnostics.REPORTERS["malloc"] = memory.heap_stats
    registry = Registry()
    memo.runtime = Runtime(
        kube=memo.kube,
        validator=Validator(graph, budget, utcnow),
        registry=registry,
        clock=utcnow,
        post_event=_post_event,
        grace=cfg.unavailable_grace,
        rows=await wiring.connect(cfg, registry, utcnow),
        owner=cfg.database_owner,
        refresher=Refresher(memo.kube, graph, budget, utcnow),
        default_version=cfg.graph_api_version,
        by_tenant_id=_claims(kwargs, "tenants_by_tenant_id"),  # kopf's live indexes
        by_phone=_claims(kwargs, "tenants_by_phone_number_id"),
        namespace_labels=kwargs.get("namespace_labels", {}),  # apps/handlers.py's index
        tenant_policy=cfg.tenant_policy,
        tenant_policies=kwargs.get("tenant_policies", {}),  # runtime/policies.py's index
    )
    memo.scheduler = Scheduler(
        cfg.max_concurrent_reconciles, paused=toggles.paused_set(), registry=registry
    )
    metrics.watch_scheduler(memo.scheduler)
    leadership = metrics.watch_leadership(toggles.paused_set())  # its task, under peering
    metrics.watch_postgres(memo.runtime.rows)
    metrics.serve(cfg.metrics_port, cfg.metrics_host)
    memo.background = wiring.start_background(cfg, memo.runtime) + leadership
    _start_core_tasks(cfg, memo, registry, memo.background)
    memo.apps = await apps_wiring.start(
        cfg, memo.runtime, graph, budget, memo.background, SECRET_SELECTOR,
        kwargs.get("whatsapp_apps", {}),  # apps/handlers.py's index of the apps that exist
    )  # fmt: skip
    if cfg.workers_namespace:
        await _start_publishing(cfg, memo.runtime, cfg.workers_namespace, memo.background)
    if cfg.amqp_url:  # Meta's notices from the webhook receiver: status.health, AccountHealthy
        notices = NoticeListener(
            cfg.amqp_url, NoticeRouter(registry).route, paused=toggles.paused_set()
        )
        memo.background.append(asyncio.create_task(notices.run(), name="notices"))
    for task in memo.background:
        diagnostics.supervise(task)
    log.info(
        "whatsapp-operator started: Graph API %s %s, budget %.1f req/s (burst %d); "
        "event loop %s, HTTP %s",
        cfg.graph_api_url,
        cfg.graph_api_version,
        cfg.graph_rate,
        cfg.graph_burst,
        type(asyncio.get_running_loop()).__module__.split(".")[0],
        cfg.http_backend,
    )


def _graph_client(cfg: OperatorConfig, memo: Any) -> GraphClient:
    """The Graph API client of every tenant, on one HTTP client (kept in `memo.http`)."""
    timeout = default_timeout()
    timeout.read = cfg.graph_timeout
    memo.http = new_http_client(
        max_connections=GRAPH_CONNECTIONS, timeout=timeout, backend=cfg.http_backend
    )
    return GraphClient(
        memo.http,
        base_url=cfg.graph_api_url,
        version=cfg.graph_api_version,
        max_in_flight=GRAPH_CONNECTIONS,  # queue here, not in httpx's pool (see GraphClient)
        observer=metrics.GRAPH_OBSERVER,
    )


def _start_core_tasks(
    cfg: OperatorConfig, memo: Any, registry: Registry, tasks: list[asyncio.Task[None]]
) -> None:
    """The scheduler, the heap trimming, the Secret watch and (with a database) the audit
    writer, each appended to `tasks` as it starts."""
    tasks.append(asyncio.create_task(memo.scheduler.run(), name="scheduler"))
    tasks.append(asyncio.create_task(memory.trimming(), name="malloc-trim"))
    tasks.append(
        asyncio.create_task(
            SecretWatch(
                memo.kube,
                [] if cfg.all_namespaces else cfg.namespace_list,
                SECRET_SELECTOR,
                _secret_changed(memo.runtime),  # its tenants (and apps) look again
            ).run(),
            name="secret-watch",
        )
    )
    rt: Runtime = memo.runtime
    if rt.rows is not None:
        rt.audit = wiring.audit_writer(cfg, rt.rows)
        tasks.append(asyncio.create_task(rt.audit.run(), name="audit"))


def _secret_changed(rt: Runtime) -> Callable[[str, str], None]:
    def changed(namespace: str, name: str) -> None:
        rt.registry.wake_secret(namespace, name)  # the tenants reading their token from it
        rt.apps.wake_secret(namespace, name)  # the WhatsAppApps reading it (apps/index.py)

    return changed


async def _start_publishing(
    cfg: OperatorConfig, rt: Runtime, namespace: str, tasks: list[asyncio.Task[None]]
) -> None:
    """The pools' resolved config published in `namespace` and, with AMQP, the workers'
    heartbeats and tenant signals; each task appended to `tasks` as it starts."""
    registry = rt.registry
    rt.publisher = Publisher(
        rt.kube,
        namespace,
        on_published=lambda ids: registry.wake_tenants(ids, "published"),
        initial_shards=cfg.initial_shards,
    )
    await rt.publisher.load()
    tasks.append(asyncio.create_task(publishing(rt), name="publisher"))
    if cfg.amqp_url:
        publisher = rt.publisher
        rt.convergence = HeartbeatListener(
            cfg.amqp_url,
            publisher.pool_hashes,
            on_change=lambda pool: registry.wake_tenants(publisher.tenants_in(pool), "workers"),
        )
        tasks.append(asyncio.create_task(rt.convergence.run(), name="heartbeats"))
        tasks.append(asyncio.create_task(_signals(cfg.amqp_url, registry), name="tenant-signals"))


async def _signals(amqp_url: str, registry: Registry) -> None:
    """Workers' tenant signals wake the tenants they are about (ignored while paused)."""
    paused = toggles.paused_set()
    router = SignalRouter(registry, paused=lambda: paused is not None and paused.is_on())
    try:
        await SignalListener(amqp_url, router.route).run()
    finally:
        router.close()


async def publishing(rt: Runtime) -> None:
    """The publisher's loop, plus dropping tenants that vanished while we were away."""
    assert rt.publisher is not None
    publisher = rt.publisher

    async def collect() -> None:
        while True:
            await asyncio.sleep(30)
            publisher.drop_unknown(rt.registry.keys_by_tenant_id)

    await asyncio.gather(publisher.run(), collect())


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account first, else $KUBECONFIG (read now, not at import time)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.cleanup()
async def cleanup(memo: Any, **_: Any) -> None:
    if "runtime" in memo:
        if memo.runtime.audit is not None:
            await memo.runtime.audit.flush(seconds=5.0)
        await wiring.stop(memo.runtime, memo.get("background", []))
    if "http" in memo:
        await memo.http.aclose()
    if "kube" in memo:
        await memo.kube.close()


def _claims(kwargs: Mapping[str, Any], index: str) -> kopf.Index[str, Claim]:
    """One of our indexes, as kopf passes it among the handler's keyword arguments."""
    return cast("kopf.Index[str, Claim]", kwargs[index])


def _deleting(meta: Mapping[str, Any]) -> bool:
    return bool(meta.get("deletionTimestamp"))


def _drop_managed_fields(body: kopf.Body) -> None:
    """metadata.managedFields (the API server's field-ownership records, 17 KB of a tenant's
    31 KB parsed; nothing here reads them) dropped from kopf's own copy of the event: kopf runs
    the index functions first, and its worker keeps the last event until it goes idle."""
    meta = body.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)


@kopf.index(*TENANTS)
async def tenants_by_tenant_id(
    body: kopf.Body, spec: kopf.Spec, meta: kopf.Meta, **_: Any
) -> dict[str, Claim]:
    _drop_managed_fields(body)  # the first index: before kopf's worker keeps the event
    if _deleting(meta) or not spec.get("tenantId"):
        return {}  # an empty mapping drops the object from the index; None would keep it
    return {spec["tenantId"]: claim_of(body)}


@kopf.index(*TENANTS)
async def tenants_by_phone_number_id(
    body: kopf.Body, spec: kopf.Spec, meta: kopf.Meta, **_: Any
) -> dict[str, Claim]:
    if _deleting(meta) or not spec.get("phoneNumberId"):
        return {}
    return {spec["phoneNumberId"]: claim_of(body)}


@kopf.on.delete(*TENANTS)
async def tenant_deleted(spec: kopf.Spec, meta: kopf.Meta, memo: Any, **_: Any) -> None:
    """Apply spec.deletionPolicy to the tenant's row before the finalizer goes."""
    rt: Runtime = memo.runtime
    tenant_id = str(spec.get("tenantId", ""))
    held = rt.registry.release(tenant_id, (str(meta.get("namespace")), str(meta.get("name"))))
    if held and rt.publisher is not None:
        rt.publisher.forget(tenant_id)  # the workers stop sending for it at once
    key = (str(meta.get("namespace")), str(meta.get("name")))
    rt.registry.drop_notices(key)  # never to be written: acknowledged, not held
    rt.apps.refer(key, None)
    if rt.receiver is not None:
        rt.receiver.forget_number(key)  # the receiver stops routing to it
    await wiring.release(rt, spec, meta)
    metrics.forget(str(meta.get("namespace")), str(meta.get("name")))


async def _follow(memo: Any, key: TenantKey, body: kopf.Body, gone: bool) -> bool:
    """Hand the tenant's latest body to its passes; True for a tenant new to the scheduler
    (its first pass is due now). A tenant deleted, or marked for deletion, is forgotten, its
    running pass cancelled and awaited (the deletion handler must not race with it)."""
    scheduler: Scheduler = memo.scheduler
    if gone:
        await wait_ended(scheduler.remove(key))
        return False
    slot = scheduler.slots.get(key)
    if slot is not None:
        slot.tenant.observe(body)
        return False
    scheduler.add(key, TenantLoop(memo.runtime, body, key))  # its wake target, too
    return True


@kopf.on.event(*TENANTS)
async def tenant_changed(
    type: str,
    body: kopf.Body,
    namespace: str | None,
    name: str,
    spec: kopf.Spec,
    meta: kopf.Meta,
    memo: Any,
    **kwargs: Any,
) -> None:
    """Follow the tenant's body; wake it on a spec change, and the tenants waiting on ids it
    gave up."""
    if "runtime" not in memo:
        return
    registry: Registry = memo.runtime.registry
    key = (namespace or "", name)
    gone = type == "DELETED" or _deleting(meta)
    new = await _follow(memo, key, body, gone)
    registry.refer(key, None if gone else (spec.get("tokenSecretRef") or {}).get("name"))
    apps = getattr(memo.runtime, "apps", None)  # the WhatsAppApps index (apps/index.py)
    if apps is not None:
        apps.refer(key, None if gone else (spec.get("appRef") or {}).get("name"))
    if gone:
        claims = None
    else:
        claims = (str(spec.get("tenantId", "")), str(spec.get("phoneNumberId", "")))
        changed = registry.spec_changed(key, int(meta.get("generation") or 0))
        asked = revalidation_requested(meta) or refresh_requested(meta)
        # A listing (type None: start-up, or a watch re-established after an API server
        # restart) wakes a tenant only for an asked check: every tenant's generation is new
        # to the registry then, but an annotation set during the reconnect is seen only here.
        # A tenant new to the scheduler runs now anyway: not a wake.
        if not new and ((type is not None and changed) or asked):
            registry.wake(key, "spec")
    if registry.swap_verified(key, None if gone else number_verified(meta, body.get("status"))):
        # Meta confirmed (or no longer confirms) its number: who owns it may change
        phone = str(spec.get("phoneNumberId", ""))
        for claim in _claims(kwargs, "tenants_by_phone_number_id").get(phone, ()):
            registry.wake((claim.namespace, claim.name), "claim")
    before = registry.swap_claims(key, claims)
    if before == claims:
        return
    released = set(before or ()) - set(claims or ())
    for value in released:
        for index in (
            _claims(kwargs, "tenants_by_tenant_id"),
            _claims(kwargs, "tenants_by_phone_number_id"),
        ):
            for claim in index.get(value, ()):
                if (claim.namespace, claim.name) != key:
                    registry.wake((claim.namespace, claim.name), "claim")
