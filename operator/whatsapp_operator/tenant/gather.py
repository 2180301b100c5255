"""The gather step of a tenant's pass: the spec, claims on its ids, the token from its Secret
(with its appsecret_proof), Meta's check when one is due, and what workers reported."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from whatsapp_operator.apps.tenant_ref import (
    AppRefOutcome,
    ResolvedApp,
    app_pending,
    judge_app_ref,
    require_proof,
)
from whatsapp_operator.meta.app_proof import app_proof, attach_proof
from whatsapp_operator.model import blocking
from whatsapp_operator.model.claims import Claim, Conflict, find_conflict, number_verified
from whatsapp_operator.model.conditions import Reason
from whatsapp_operator.model.facts import CheckResult
from whatsapp_operator.model.notices import Notice
from whatsapp_operator.model.recheck import next_check
from whatsapp_operator.model.secret_data import ResolvedToken, SecretOutcome, resolve_token
from whatsapp_operator.model.spec import REVALIDATE_ANNOTATION, TenantSpec, parse_spec
from whatsapp_operator.model.tenant_policy import ALLOW_ALL, PolicyVerdict
from whatsapp_operator.runtime.kube import KubeForbidden, SecretSnapshot
from whatsapp_operator.runtime.logs import REDACTOR
from whatsapp_operator.runtime.services import Runtime
from whatsapp_operator.tenant.view import Facts

Claims = Mapping[Any, Iterable[Claim]]


def claim_of(body: Mapping[str, Any], status: Mapping[str, Any] | None = None) -> Claim:
    """The tenant's claim on its ids; `status`: the newest status (default: the body's)."""
    meta = body["metadata"]
    spec = body.get("spec") or {}
    return Claim(
        meta.get("creationTimestamp", ""), meta["namespace"], meta["name"], meta.get("uid", ""),
        str(spec.get("tenantId") or ""),
        number_verified(meta, body.get("status") if status is None else status),
    )  # fmt: skip


def revalidation_requested(meta: Mapping[str, Any]) -> bool:
    """Someone asked for a Graph API check now (the revalidate annotation is set)."""
    return REVALIDATE_ANNOTATION in (meta.get("annotations") or {})


@dataclass(frozen=True)
class Requests:
    """What users asked for through annotations, each to be acted on once."""

    revalidate: bool = False
    refresh: bool = False
    signals: blocking.Pending | None = None  # what workers reported since the last pass
    notices: tuple[Notice, ...] = ()  # Meta's notices since the last pass (model/health.py)


@dataclass(frozen=True)
class Gathered:
    meta: Mapping[str, Any]
    generation: int
    spec: TenantSpec | None
    spec_error: str
    now: datetime  # when the pass began
    conflict: Conflict | None = None
    secret: SecretOutcome | None = None
    snapshot: SecretSnapshot | None = None
    check: CheckResult | None = None
    reported: blocking.Block | None = None  # a block workers reported since the last pass
    app_ref: AppRefOutcome | None = None  # spec.appRef resolved (None: the tenant names none)
    policy: PolicyVerdict = ALLOW_ALL  # may its namespace hold its tenant id (and take rows)

    @property
    def token(self) -> ResolvedToken | None:
        return self.secret.token if self.secret is not None else None

    @property
    def app(self) -> ResolvedApp | None:
        """The tenant's WhatsAppApp, when it may use it."""
        return self.app_ref.app if self.app_ref is not None else None

    def facts(self, status: Mapping[str, Any], now: datetime, grace: timedelta) -> Facts:
        if self.spec is None:
            return Facts(self.generation, self.spec_error, None, None, None, status, now, grace)
        sending = blocking.SendingFacts(self.spec.phone_number_id, self.reported)
        app = self.app_ref.verdict if self.app_ref is not None else None
        return Facts(
            self.generation, "", self.secret, self.conflict, self.check, status, now, grace,
            sending, app,
        )  # fmt: skip


async def gather(
    rt: Runtime,
    body: Mapping[str, Any],
    status: Mapping[str, Any],
    claims: tuple[Claims, Claims],
    requests: Requests,
) -> Gathered:
    """Everything the pass decides from. Raises KubeUnavailable when it cannot read."""
    meta = body["metadata"]
    generation = int(meta.get("generation") or 0)
    spec, spec_error = parse_spec(body.get("spec"))
    now = rt.clock()
    if spec is None:
        return Gathered(meta, generation, None, spec_error, now)
    policy = rt.policy_verdict(spec.tenant_id, meta["namespace"])
    conflict = _conflict(rt, body, status, spec, claims, policy)
    spec, app_ref = _resolve_app(rt, meta["namespace"], spec)
    if app_ref is not None and app_ref.pending:  # after a restart: its app's first pass
        return Gathered(meta, generation, spec, "", now, conflict, app_ref=app_ref, policy=policy)
    secret, snapshot = await _read_token(rt, meta["namespace"], spec, app_ref)
    token = secret.token
    if app_ref is not None:
        app_ref = require_proof(app_ref, token is not None, token is not None and bool(token.proof))
    check = None
    checks = conflict is None or conflict.checks
    if token is not None and checks and (app_ref is None or app_ref.usable):
        due = next_check(
            status, fingerprint=token.fingerprint, generation=generation,
            interval=spec.validation.interval, uid=meta.get("uid", ""), now=now,
        )  # fmt: skip
        recheck = blocking.wants_recheck(requests.signals, token.fingerprint, status)
        if due <= now or requests.revalidate or recheck:
            check = await rt.validator.check(token.value, spec, token.proof)
    reported = blocking.reported_block(requests.signals, spec.phone_number_id, now)
    return Gathered(
        meta, generation, spec, "", now, conflict, secret, snapshot, check, reported, app_ref,
        policy,
    )  # fmt: skip


def _conflict(
    rt: Runtime,
    body: Mapping[str, Any],
    status: Mapping[str, Any],
    spec: TenantSpec,
    claims: tuple[Claims, Claims],
    policy: PolicyVerdict,
) -> Conflict | None:
    """What keeps the tenant from its ids: its namespace may not hold its tenant id (no
    claim, no Graph call, no row), or another tenant that may owns one of them (claims the
    policy does not allow are not counted)."""
    if not policy.allowed:
        return Conflict(Reason.TENANT_ID_NOT_ALLOWED, None, policy.message)
    by_tenant_id, by_phone = claims
    return find_conflict(
        claim_of(body, status),
        spec.tenant_id,
        by_tenant_id.get(spec.tenant_id, ()),
        spec.phone_number_id,
        by_phone.get(spec.phone_number_id, ()),
        allowed=lambda claim: rt.policy_verdict(claim.tenant_id, claim.namespace).allowed,
    )


def _resolve_app(
    rt: Runtime, namespace: str, spec: TenantSpec
) -> tuple[TenantSpec, AppRefOutcome | None]:
    """The tenant's WhatsAppApp (spec.appRef), judged against its namespace's labels; the
    spec with the app's Graph API version when it names none itself."""
    if spec.app_ref is None:
        return spec, None
    if rt.apps.pending(spec.app_ref.name):
        return spec, app_pending(spec.app_ref.name)
    labels = next(iter(rt.namespace_labels.get(namespace, ())), None)
    outcome = judge_app_ref(spec.app_ref.name, rt.apps.get(spec.app_ref.name), namespace, labels)
    app = outcome.app
    if app is not None and spec.graph_api_version is None and app.graph_api_version:
        spec = spec.model_copy(update={"graph_api_version": app.graph_api_version})
    return spec, outcome


async def _read_token(
    rt: Runtime, namespace: str, spec: TenantSpec, app_ref: AppRefOutcome | None = None
) -> tuple[SecretOutcome, SecretSnapshot | None]:
    """The token from the tenant's Secret, with its appsecret_proof attached (keyed by its
    WhatsAppApp's secret, or its app credentials Secret's)."""
    ref = spec.token_secret_ref
    try:
        snapshot = await rt.kube.read_secret(namespace, ref.name)
    except KubeForbidden as exc:
        forbidden = f"the operator may not read it: {exc}"
        return SecretOutcome(None, "SecretForbidden", forbidden), None
    outcome = resolve_token(snapshot.data if snapshot is not None else None, ref.name, ref.key)
    if outcome.token is not None:
        REDACTOR.add(outcome.token.value)
    if app_ref is not None:
        app = app_ref.app
        if app is None or app.app_secret is None:
            return outcome, snapshot  # AppResolved says why the app cannot be used
        return app_proof(outcome, app.name, app.app_secret), snapshot
    credentials = spec.rotation.app_credentials_secret_ref
    return await attach_proof(rt.kube, namespace, credentials, outcome), snapshot
