"""The gather step of a tenant's pass: the spec, claims on its ids, the token from its Secret
(with its appsecret_proof), Meta's check when one is due, and what workers reported."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from whatsapp_operator.meta.app_proof import attach_proof
from whatsapp_operator.model import blocking
from whatsapp_operator.model.claims import Claim, Conflict, find_conflict
from whatsapp_operator.model.facts import CheckResult
from whatsapp_operator.model.recheck import next_check
from whatsapp_operator.model.secret_data import ResolvedToken, SecretOutcome, resolve_token
from whatsapp_operator.model.spec import REVALIDATE_ANNOTATION, TenantSpec, parse_spec
from whatsapp_operator.runtime.kube import KubeForbidden, SecretSnapshot
from whatsapp_operator.runtime.logs import REDACTOR
from whatsapp_operator.runtime.services import Runtime
from whatsapp_operator.tenant.view import Facts

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

    @property
    def token(self) -> ResolvedToken | None:
        return self.secret.token if self.secret is not None else None

    def facts(self, status: Mapping[str, Any], now: datetime, grace: timedelta) -> Facts:
        if self.spec is None:
            return Facts(self.generation, self.spec_error, None, None, None, status, now, grace)
        sending = blocking.SendingFacts(self.spec.phone_number_id, self.reported)
        return Facts(
            self.generation, "", self.secret, self.conflict, self.check, status, now, grace,
            sending,
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
    by_tenant_id, by_phone = claims
    conflict = find_conflict(
        claim_of(body),
        spec.tenant_id,
        by_tenant_id.get(spec.tenant_id, ()),
        spec.phone_number_id,
        by_phone.get(spec.phone_number_id, ()),
    )
    secret, snapshot = await _read_token(rt, meta["namespace"], spec)
    token = secret.token
    check = None
    if token is not None and conflict is None:
        due = next_check(
            status, fingerprint=token.fingerprint, generation=generation,
            interval=spec.validation.interval, uid=meta.get("uid", ""), now=now,
        )  # fmt: skip
        recheck = blocking.wants_recheck(requests.signals, token.fingerprint, status)
        if due <= now or requests.revalidate or recheck:
            check = await rt.validator.check(token.value, spec, token.proof)
    reported = blocking.reported_block(requests.signals, spec.phone_number_id, now)
    return Gathered(meta, generation, spec, "", now, conflict, secret, snapshot, check, reported)


async def _read_token(
    rt: Runtime, namespace: str, spec: TenantSpec
) -> tuple[SecretOutcome, SecretSnapshot | None]:
    """The token from the tenant's Secret, with its appsecret_proof attached."""
    ref = spec.token_secret_ref
    try:
        snapshot = await rt.kube.read_secret(namespace, ref.name)
    except KubeForbidden as exc:
        forbidden = f"the operator may not read it: {exc}"
        return SecretOutcome(None, "SecretForbidden", forbidden), None
    outcome = resolve_token(snapshot.data if snapshot is not None else None, ref.name, ref.key)
    if outcome.token is not None:
        REDACTOR.add(outcome.token.value)
    app = spec.rotation.app_credentials_secret_ref
    return await attach_proof(rt.kube, namespace, app, outcome), snapshot
