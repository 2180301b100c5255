"""What a signup does next and what each answer means. Pure: no I/O, no clients.

A signup is a fixed sequence of steps, each reported as a condition. `True` means done,
`Unknown` still trying (a transient failure: the operator retries with backoff), `False`
stopped for good (the user must create a new signup). `next_step` reads only the stored
conditions, so a restarted operator continues where the last one stopped; a stopped signup
is never retried, which is what keeps a used code or Meta's registration limit from looping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from whatsapp_operator.model.conditions import Condition, Status, merge, rfc3339
from whatsapp_operator.model.conditions import Reason as TenantReason
from whatsapp_operator.signup.model import SignupSpec

CODE_EXCHANGED = "CodeExchanged"
WABA_DISCOVERED = "WabaDiscovered"
PHONE_NUMBER_SELECTED = "PhoneNumberSelected"
APP_SUBSCRIBED = "AppSubscribed"
NUMBER_REGISTERED = "NumberRegistered"
TENANT_CREATED = "TenantCreated"
READY = "Ready"
STEPS = (
    CODE_EXCHANGED,
    WABA_DISCOVERED,
    PHONE_NUMBER_SELECTED,
    APP_SUBSCRIBED,
    NUMBER_REGISTERED,
    TENANT_CREATED,
)
ORDER = (*STEPS, READY)
MAX_EXCHANGE_ATTEMPTS = 5
# Meta allows 10 register calls per number per 72 h; one signup spends at most this many.
MAX_REGISTER_ATTEMPTS = 3


class Reason:
    """Every reason a signup writes (CamelCase, stable)."""

    READY = "Ready"
    IN_PROGRESS = "InProgress"
    INVALID_SPEC = "InvalidSpec"
    GRAPH_API_UNAVAILABLE = "GraphApiUnavailable"
    GRAPH_API_THROTTLED = "GraphApiThrottled"
    GRAPH_API_ERROR = "GraphApiError"
    TOKEN_REJECTED = "TokenRejected"
    PERMISSION_DENIED = "PermissionDenied"
    KUBERNETES_UNAVAILABLE = "KubernetesUnavailable"
    KUBERNETES_FORBIDDEN = "KubernetesForbidden"
    KUBERNETES_REJECTED = "KubernetesRejected"
    # CodeExchanged
    EXCHANGED = "Exchanged"
    CODE_SECRET_NOT_FOUND = "CodeSecretNotFound"
    CODE_SECRET_INVALID = "CodeSecretInvalid"
    PIN_INVALID = "PinInvalid"
    APP_CREDENTIALS_NOT_FOUND = "AppCredentialsNotFound"
    APP_CREDENTIALS_INVALID = "AppCredentialsInvalid"
    APP_CREDENTIALS_REJECTED = "AppCredentialsRejected"
    CODE_USED = "CodeUsed"
    CODE_EXPIRED = "CodeExpired"
    CODE_INVALID = "CodeInvalid"
    EXCHANGE_FAILED = "ExchangeFailed"
    TOKEN_SECRET_EXISTS = "TokenSecretExists"
    TOKEN_SECRET_NOT_FOUND = "TokenSecretNotFound"
    SIGNUP_IN_PROGRESS = "SignupInProgress"
    # spec.appRef: the WhatsAppApp, judged as for a tenant (any step that needs its secret)
    APP_NOT_FOUND = TenantReason.APP_NOT_FOUND
    APP_NOT_ALLOWED = TenantReason.APP_NOT_ALLOWED
    APP_NOT_READY = TenantReason.APP_NOT_READY
    # no WhatsAppTenantPolicy allows the tenant id in the signup's namespace (before the code)
    TENANT_ID_NOT_ALLOWED = TenantReason.TENANT_ID_NOT_ALLOWED
    # WabaDiscovered
    DISCOVERED = "Discovered"
    WABA_NOT_FOUND = "WabaNotFound"
    # PhoneNumberSelected
    SELECTED = "Selected"
    NO_PHONE_NUMBERS = "NoPhoneNumbers"
    PHONE_NUMBER_SELECTOR_REQUIRED = "PhoneNumberSelectorRequired"
    PHONE_NUMBER_NOT_FOUND = "PhoneNumberNotFound"
    # AppSubscribed
    SUBSCRIBED = "Subscribed"
    # NumberRegistered
    REGISTERED = "Registered"
    REGISTRATION_LIMIT_REACHED = "RegistrationLimitReached"
    PIN_MISMATCH = "PinMismatch"
    REGISTRATION_FAILED = "RegistrationFailed"
    # TenantCreated
    CREATED = "Created"
    TENANT_EXISTS = "TenantExists"
    DUPLICATE_TENANT_ID = "DuplicateTenantId"


Outcome = Literal["next", "retry", "stop"]


@dataclass(frozen=True)
class Notice:
    """An Event to post about the signup."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class StepResult:
    """What one step found: go on, try again later, or stop for good."""

    outcome: Outcome
    conditions: tuple[Condition, ...]
    status: Mapping[str, Any] = field(default_factory=dict)


def done(type_: str, reason: str, message: str, **status: Any) -> StepResult:
    return StepResult("next", (Condition(type_, "True", reason, message),), status)


def retry(type_: str, reason: str, message: str) -> StepResult:
    return StepResult("retry", (Condition(type_, "Unknown", reason, message),))


def stop(type_: str, reason: str, message: str) -> StepResult:
    return StepResult("stop", (Condition(type_, "False", reason, message),))


# --- which step is next -------------------------------------------------------------------


def planned_steps(spec: SignupSpec) -> tuple[str, ...]:
    skipped = {APP_SUBSCRIBED} if not spec.subscribe_app else set()
    if not spec.register_number:
        skipped.add(NUMBER_REGISTERED)
    return tuple(s for s in STEPS if s not in skipped)


def _statuses(status: Mapping[str, Any]) -> dict[str, str]:
    return {c.get("type", ""): c.get("status", "") for c in status.get("conditions") or []}


def stopped(status: Mapping[str, Any]) -> bool:
    """Some step failed for good (any False condition)."""
    return any(s == "False" for s in _statuses(status).values())


def next_step(spec: SignupSpec, status: Mapping[str, Any]) -> str | None:
    """The first step not done yet; None when the signup is complete or stopped for good."""
    if stopped(status):
        return None
    done_ = _statuses(status)
    return next((s for s in planned_steps(spec) if done_.get(s) != "True"), None)


def signup_active(signup: Mapping[str, Any] | None) -> bool:
    """Another signup object is still working (neither finished nor stopped)."""
    if signup is None:
        return False
    status = signup.get("status") or {}
    return _statuses(status).get(READY) != "True" and not stopped(status)


def ready(spec: SignupSpec, conditions: Sequence[Mapping[str, Any]], tenant: str) -> Condition:
    by_type = {c.get("type"): c for c in conditions}
    steps = planned_steps(spec)
    for step in steps:
        cond = by_type.get(step) or {}
        if cond.get("status") == "False":
            return Condition(READY, "False", cond["reason"], f"{step}: {cond['message']}")
    pending = [s for s in steps if (by_type.get(s) or {}).get("status") != "True"]
    if not pending:
        return Condition(READY, "True", Reason.READY, f"signup complete: WhatsAppTenant {tenant}")
    cond = by_type.get(pending[0]) or {}
    if cond.get("status") == "Unknown":
        return Condition(READY, "Unknown", cond["reason"], f"{pending[0]}: {cond['message']}")
    return Condition(READY, "Unknown", Reason.IN_PROGRESS, f"next step: {pending[0]}")


def apply_result(
    status: Mapping[str, Any],
    result: StepResult,
    spec: SignupSpec,
    *,
    tenant: str,
    generation: int,
    now: datetime,
) -> dict[str, Any]:
    """The new status after a step: its fields and conditions, Ready recomputed."""
    new = {**status, **result.status, "observedGeneration": generation}
    existing = list(status.get("conditions") or [])
    conds = merge(existing, result.conditions, generation=generation, now=now)
    conds = merge(conds, [ready(spec, conds, tenant)], generation=generation, now=now)
    rank = {t: i for i, t in enumerate(ORDER)}
    new["conditions"] = sorted(conds, key=lambda c: rank.get(c["type"], len(rank)))
    if next_step(spec, new) is None and not stopped(new) and "completedAt" not in new:
        new["completedAt"] = rfc3339(now)
    return new


def notices(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Notice]:
    """Events for the conditions whose status or reason changed: Normal for a step done or
    the signup complete, Warning for a failure (transient ones once per reason)."""
    old = {c["type"]: c for c in before.get("conditions") or []}
    out: list[Notice] = []
    for cond in after.get("conditions") or []:
        prev = old.get(cond["type"]) or {}
        if (prev.get("status"), prev.get("reason")) == (cond["status"], cond["reason"]):
            continue
        if cond["type"] == READY and cond["status"] != "True":
            continue  # the failing step's own Event says it
        status: Status = cond["status"]
        if status == "True":
            reason = "SignupComplete" if cond["type"] == READY else cond["type"]
            out.append(Notice("Normal", reason, cond["message"]))
        elif cond["reason"] != Reason.IN_PROGRESS:
            out.append(Notice("Warning", cond["reason"], f"{cond['type']}: {cond['message']}"))
    return out
