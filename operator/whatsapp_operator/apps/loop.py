"""One WhatsAppApp's passes: gather (its Secrets, Meta's check when due), decide
(decide.py, pure), apply (status merge-patch when it changed, Events on transitions, the
apps index, the receiver's config).

A kopf daemon runs `AppLoop.run` for each app (handlers.py): apps are few, and kopf stops the
daemons of a replica paused by peering. A pass runs when the spec changes, when one of the
app's Secrets changes (the Secret watch wakes it), after a transient failure (backoff), and
hourly to ask Meta again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from whatsapp_graph.client import GraphClient
from whatsapp_graph.errors import ErrorClass, GraphApiError, GraphUnavailable
from whatsapp_operator.apps.decide import (
    RECHECK,
    AppDecision,
    AppFacts,
    AppReason,
    MetaCheck,
    SecretsOutcome,
    Verified,
    check_due,
    decide_app,
    judge_answer,
    judge_error,
    judge_unavailable,
    read_secrets,
    resolved_app,
)
from whatsapp_operator.apps.index import AppIndex
from whatsapp_operator.apps.model import APP_PLURAL, AppSpec, parse_app_spec
from whatsapp_operator.meta.budget import RequestBudget
from whatsapp_operator.model.facts import Verdict
from whatsapp_operator.model.fragment import Event
from whatsapp_operator.model.patches import merge_patch
from whatsapp_operator.model.recheck import backoff
from whatsapp_operator.runtime.kube import Kube, KubeError, KubeForbidden, KubeUnavailable
from whatsapp_operator.runtime.logs import REDACTOR

log = logging.getLogger(__name__)
IDLE = 3600.0  # seconds: an app that cannot be checked (no secret) is looked at again anyway


@dataclass
class AppServices:
    kube: Kube
    graph: GraphClient
    budget: RequestBudget
    clock: Callable[[], datetime]
    post_event: Callable[[Mapping[str, Any], Event], None]
    grace: timedelta
    index: AppIndex
    default_version: str

    @property
    def namespace(self) -> str | None:
        return self.index.namespace


class AppLoop:
    def __init__(self, services: AppServices, body: Mapping[str, Any], name: str) -> None:
        self.s = services
        self.body = body  # kopf's live body of the app: the newest seen by the watch
        self.name = name
        self.verified: Verified | None = None
        self.failures = 0
        self._written: tuple[int, dict[str, Any]] | None = None

    @property
    def uid(self) -> str:
        return str(self.body.get("metadata", {}).get("uid", ""))

    async def run(self) -> None:
        """Passes until cancelled (kopf stops the daemon)."""
        wake = self.s.index.loops[self.name] = asyncio.Event()
        try:
            while True:
                wake.clear()
                delay = await self.step()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await wake.wait()
        finally:
            if self.s.index.loops.get(self.name) is wake:
                del self.s.index.loops[self.name]

    async def step(self) -> float:
        """One pass; seconds until the next one is due."""
        if (self.body.get("metadata") or {}).get("deletionTimestamp"):
            return IDLE  # handlers.app_changed took it out of the index
        try:
            delay = await self._pass()
        except KubeError as exc:
            if not isinstance(exc, KubeUnavailable):
                log.error("WhatsAppApp %s: %s", self.name, exc)
            self.failures += 1
            return backoff(self.failures)
        return delay

    async def _pass(self) -> float:
        body = self.body
        meta = body.get("metadata") or {}
        generation = int(meta.get("generation") or 0)
        spec, spec_error = parse_app_spec(body.get("spec"))
        status = self._status(body)
        now = self.s.clock()
        secrets = check = None
        if spec is not None:
            self.s.index.secrets[self.name] = spec.secret_names
            secrets = await self._secrets(spec)
            if check_due(self.verified, secrets.secrets, generation, now):
                check = await self._check(spec, secrets)
        facts = AppFacts(generation, spec, spec_error, secrets, check, status, now, self.s.grace)
        decision = decide_app(facts)
        await self._apply(body, status, decision)
        self.s.index.put(self.name, self.uid, resolved_app(self.name, spec, secrets, decision))
        return self._next(check, secrets)

    def _status(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """The stored status; ours while the watch has not brought our last write back."""
        seen = _rv(body.get("metadata", {}).get("resourceVersion"))
        if self._written is not None and seen < self._written[0]:
            return self._written[1]
        self._written = None
        return body.get("status") or {}

    async def _secrets(self, spec: AppSpec) -> SecretsOutcome:
        namespace = self.s.namespace
        if namespace is None:
            why = "the operator does not know its namespace: set --operator-namespace"
            return SecretsOutcome(None, Verdict("False", AppReason.NAMESPACE_UNKNOWN, why))
        data: dict[str, Mapping[str, str] | None] = {}
        forbidden: dict[str, str] = {}
        for name in spec.secret_names:
            try:
                snapshot = await self.s.kube.read_secret(namespace, name)
            except KubeForbidden as exc:
                forbidden[name] = str(exc)
                continue
            data[name] = snapshot.data if snapshot is not None else None
        outcome = read_secrets(spec, namespace, data, forbidden)
        if outcome.secrets is not None:
            found = outcome.secrets
            for value in (
                found.app_secret,
                found.verify_token,
                f"{spec.app_id}|{found.app_secret}",
            ):
                REDACTOR.add(value)
        return outcome

    async def _check(self, spec: AppSpec, secrets: SecretsOutcome) -> MetaCheck:
        """`GET /{app-id}?fields=id,name` with the app access token, through the budget."""
        found = secrets.secrets
        assert found is not None
        version = spec.graph_api_version or self.s.default_version
        try:
            await self.s.budget.acquire()
            body = await self.s.graph.app(spec.app_id, found.app_secret, version=version)
            check = judge_answer(spec.app_id, body, self.s.clock())
        except GraphApiError as exc:
            cls = exc.classification
            if cls.error_class is ErrorClass.THROTTLE:
                self.s.budget.pause(max(cls.min_delay, 1.0))
            check = judge_error(spec.app_id, exc.info, cls.error_class, self.s.clock())
        except GraphUnavailable as exc:
            check = judge_unavailable(str(exc))
        generation = int((self.body.get("metadata") or {}).get("generation") or 0)
        at = check.checked_at or self.s.clock()
        self.verified = Verified(found.fingerprint, generation, at, settled=not check.transient)
        return check

    def _next(self, check: MetaCheck | None, secrets: SecretsOutcome | None) -> float:
        if check is not None and check.transient:
            self.failures += 1
            return backoff(self.failures)
        self.failures = 0
        if self.verified is None or secrets is None or secrets.secrets is None:
            return IDLE  # a change of its Secrets or its spec wakes it sooner
        due = self.verified.at + RECHECK - self.s.clock()
        return max(1.0, min(IDLE, due.total_seconds()))

    async def _apply(
        self, body: Mapping[str, Any], status: Mapping[str, Any], decision: AppDecision
    ) -> None:
        patch = merge_patch(status, decision.status)
        if patch:
            rv = await self.s.kube.patch_cluster_status(APP_PLURAL, self.name, patch)
            if rv is not None:
                self._written = (_rv(rv), decision.status)
        for event in decision.events:
            self.s.post_event(body, event)


def _rv(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
