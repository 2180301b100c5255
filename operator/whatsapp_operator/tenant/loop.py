"""One tenant's state between passes, and the application of a pass's decision.

`TenantLoop.step` is one pass of one tenant; `runtime.scheduler.Scheduler` runs the passes
(one at a time per tenant, the next when it is due or when something wakes the tenant: its
spec changed, its Secret changed, a tenant it waited for went away). The watch hands each new
body of the tenant to `TenantLoop.observe`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from whatsapp_operator.model.fragment import Decision
from whatsapp_operator.model.patches import merge_patch
from whatsapp_operator.model.recheck import backoff
from whatsapp_operator.model.spec import GROUP, REFRESH_ANNOTATION, REVALIDATE_ANNOTATION
from whatsapp_operator.runtime import metrics
from whatsapp_operator.runtime.body_dictionary import TENANT_DICTIONARY
from whatsapp_operator.runtime.kube import KubeError, KubeUnavailable
from whatsapp_operator.runtime.memory import PackedBody
from whatsapp_operator.runtime.registry import TenantKey, settle_notices
from whatsapp_operator.runtime.services import Runtime
from whatsapp_operator.tenant.gather import Requests
from whatsapp_operator.tenant.reconcile import reconcile_once

log = logging.getLogger(__name__)
# kopf's own annotations on a tenant (handlers.configure_settings): nothing in a pass reads them
KOPF_ANNOTATIONS = (f"{GROUP}/last-handled-configuration", f"{GROUP}/kopf-managed")


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
        notices = self.rt.registry.take_notices(self.key)
        requests = Requests(
            REVALIDATE_ANNOTATION in asked, REFRESH_ANNOTATION in asked, signals, notices
        )
        try:
            outcome = await reconcile_once(
                self.rt, body, status, self.rt.by_tenant_id, self.rt.by_phone, requests
            )
            if outcome.decision is not None:
                await self._apply(body, status, outcome.decision, asked)
                # their effect is in the status at the API server now: the broker may forget
                # them (a replica lost before this line leaves them for the next one)
                settle_notices(notices)
        except KubeError as exc:
            if not isinstance(exc, KubeUnavailable):
                log.error("tenant %s/%s: %s", *self.key, exc)
            self.rt.registry.return_signals(self.key, signals)  # for the retry
            self.rt.registry.return_notices(self.key, notices)
            self.failures += 1
            return backoff(self.failures)
        except BaseException:  # cancelled (a pause by peering, a deletion) or a bug
            self.rt.registry.return_notices(self.key, notices)  # Meta sends them only once
            raise
        metrics.RECONCILES.labels("transient" if outcome.transient else "ok").inc()
        if outcome.transient:
            self.failures += 1
            return backoff(self.failures)
        self.failures = 0
        return outcome.next_in
