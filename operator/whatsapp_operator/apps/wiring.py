"""The WhatsAppApps' part of the operator's start-up (called from runtime/handlers.py).

It gives the apps index the operator's namespace (where the apps' Secrets are), starts the
receiver's config publisher with `--webhook-receiver`, and watches the operator's namespace
for Secret changes when the tenants' Secret watch does not cover it already.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from whatsapp_graph.client import GraphClient
from whatsapp_operator.apps.loop import AppServices
from whatsapp_operator.apps.receiver import ReceiverPublisher
from whatsapp_operator.apps.tenant_ref import ResolvedApp
from whatsapp_operator.meta.budget import RequestBudget
from whatsapp_operator.runtime.kube import KubeError
from whatsapp_operator.runtime.secret_watch import SecretWatch
from whatsapp_operator.runtime.services import Runtime
from whatsapp_operator.settings import OperatorConfig

log = logging.getLogger(__name__)


async def start(
    cfg: OperatorConfig,
    rt: Runtime,
    graph: GraphClient,
    budget: RequestBudget,
    tasks: list[asyncio.Task[None]],
    secret_selector: str,
    listed: Mapping[Any, Iterable[str]],
) -> AppServices:
    """The apps' services; background tasks are appended to `tasks` as they start.
    `listed`: kopf's index of the apps that exist (handlers.whatsapp_apps)."""
    namespace = cfg.resolved_operator_namespace()
    index = rt.apps
    index.registry, index.namespace, index.listed = rt.registry, namespace, listed
    if namespace is None:
        log.warning("WhatsAppApps: the operator's namespace is unknown (--operator-namespace)")
    if cfg.webhook_receiver and namespace is not None:
        rt.receiver = await _receiver(rt, namespace, tasks)
    watched = cfg.all_namespaces or not cfg.namespace_list or namespace in cfg.namespace_list
    if namespace is not None and not watched:
        watch = SecretWatch(rt.kube, [namespace], secret_selector, index.wake_secret)
        tasks.append(asyncio.create_task(watch.run(), name="app-secret-watch"))
    return AppServices(
        kube=rt.kube, graph=graph, budget=budget, clock=rt.clock, post_event=rt.post_event,
        grace=rt.grace, index=index, default_version=rt.default_version,
    )  # fmt: skip


async def _receiver(
    rt: Runtime, namespace: str, tasks: list[asyncio.Task[None]]
) -> ReceiverPublisher:
    receiver = ReceiverPublisher(
        rt.kube, namespace,
        known_tenants=lambda: rt.registry.wakers.keys(),  # the tenants the scheduler knows
        known_apps=lambda: rt.apps.seen_generation.keys(),  # the apps the watch has seen
    )  # fmt: skip
    try:
        await receiver.load()
    except KubeError as exc:  # read again before its first write
        log.warning("receiver config: cannot read what is published yet: %s", exc)
    rt.apps.on_change.append(_follow(receiver))
    tasks.append(asyncio.create_task(receiver.run(), name="receiver-config"))
    log.info("webhook receiver config published in %s", namespace)
    return receiver


def _follow(receiver: ReceiverPublisher) -> Callable[[str, ResolvedApp | None], None]:
    def changed(name: str, app: ResolvedApp | None) -> None:
        receiver.set_app(name, app.receiver_entry() if app is not None else None)

    return changed
