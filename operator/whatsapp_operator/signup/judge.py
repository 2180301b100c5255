"""Judges of what a signup step found: Meta's answers and the objects already there. Pure.

Each returns a `StepResult` (go on, retry later, stop for good) with the step's condition; the
messages tell the user what to do, and never contain the code, the PIN or the token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from whatsapp_graph.errors import ErrorClass, GraphApiErrorInfo
from whatsapp_operator.apps.tenant_ref import ResolvedApp, app_pending, judge_app_ref
from whatsapp_operator.model.tenant_policy import PolicyVerdict
from whatsapp_operator.signup.flow import (
    CODE_EXCHANGED,
    MAX_EXCHANGE_ATTEMPTS,
    MAX_REGISTER_ATTEMPTS,
    NUMBER_REGISTERED,
    PHONE_NUMBER_SELECTED,
    TENANT_CREATED,
    WABA_DISCOVERED,
    Reason,
    StepResult,
    done,
    retry,
    stop,
)
from whatsapp_operator.signup.model import (
    CODE_FINGERPRINT_ANNOTATION,
    PIN_PATTERN,
    SIGNUP_ANNOTATION,
    PhoneNumberSelector,
    SecretValue,
    SessionInfo,
)

MANAGEMENT_SCOPE = "whatsapp_business_management"
MESSAGING_SCOPE = "whatsapp_business_messaging"
# Granted to signup tokens since Meta's mid-2026 change (accepted; never required)
MANAGE_EVENTS_SCOPE = "whatsapp_business_manage_events"
WABA_SCOPES = (MANAGEMENT_SCOPE, MESSAGING_SCOPE, MANAGE_EVENTS_SCOPE)
NEW_SIGNUP = "run Embedded Signup again and create a new WhatsAppSignup with the new code"


def tenant_owner(tenant: Mapping[str, Any] | None) -> str | None:
    """The signup that created this tenant (None: not created by a signup)."""
    if tenant is None:
        return None
    annotations = (tenant.get("metadata") or {}).get("annotations") or {}
    owner = annotations.get(SIGNUP_ANNOTATION)
    return str(owner) if owner else None


def tenant_conflict(tenant: Mapping[str, Any] | None, signup: str, name: str) -> StepResult | None:
    """A stop when a tenant of that name exists and this signup did not create it."""
    if tenant is None or tenant_owner(tenant) == signup:
        return None
    owner = tenant_owner(tenant)
    by = f"by signup {owner!r}" if owner else "by someone else"
    return stop(
        TENANT_CREATED,
        Reason.TENANT_EXISTS,
        f"WhatsAppTenant {name!r} already exists (created {by}) and is never overwritten: "
        "create a new signup with another spec.tenant.name",
    )


def tenant_id_taken(tenant_id: str, claimed_by: Sequence[str], mine: str) -> StepResult | None:
    """A stop when another WhatsAppTenant (anywhere in the cluster) has this tenantId."""
    others = sorted(ref for ref in claimed_by if ref != mine)
    if not others:
        return None
    why = (
        f"tenantId {tenant_id!r} already belongs to WhatsAppTenant {others[0]}: a signup never "
        "makes a second tenant with the same id"
    )
    return stop(TENANT_CREATED, Reason.DUPLICATE_TENANT_ID, why)


def tenant_id_policy(verdict: PolicyVerdict, labels_known: bool) -> StepResult | None:
    """A stop, before the code is spent, when no WhatsAppTenantPolicy allows the signup's
    tenant id in its namespace (the tenant it would make could never work); a wait while the
    namespace's labels are not known yet."""
    if verdict.allowed:
        return None
    if not labels_known:
        return retry(CODE_EXCHANGED, Reason.TENANT_ID_NOT_ALLOWED, f"{verdict.message}; waiting")
    why = (
        f"{verdict.message}; the signup stops before the code is spent: once allowed, {NEW_SIGNUP}"
    )
    return stop(CODE_EXCHANGED, Reason.TENANT_ID_NOT_ALLOWED, why)


Claim = Literal["free", "reuse", "replace", "busy", "foreign"]


def token_secret_claim(
    annotations: Mapping[str, str] | None,
    signup: str,
    code_fp: str,
    *,
    tenant_exists: bool,
    other_active: bool,
) -> Claim:
    """What to do with the token Secret: create it, reuse its token (this signup already
    exchanged this code), replace it (ours with another code, or a failed signup's
    leftover), wait (another signup is using it), or stop (someone else's Secret)."""
    if annotations is None:
        return "free"
    owner = annotations.get(SIGNUP_ANNOTATION)
    if not owner:
        return "foreign"
    if owner == signup:
        same_code = annotations.get(CODE_FINGERPRINT_ANNOTATION) == code_fp
        return "reuse" if same_code else "replace"
    if tenant_exists:
        return "foreign"
    return "busy" if other_active else "replace"


def exchange_error(info: GraphApiErrorInfo, error_class: ErrorClass, attempts: int) -> StepResult:
    """The code exchange failed with Meta's error envelope."""
    if info.code == 100 and info.subcode == 36009:
        earlier = (
            " (perhaps by an earlier attempt of this signup whose answer was lost)"
            if attempts > 1
            else ""
        )
        why = f"the OAuth code was already used{earlier}; codes are single-use"
        return stop(CODE_EXCHANGED, Reason.CODE_USED, f"{why}: {NEW_SIGNUP}")
    if info.code == 100 and info.subcode == 36007:
        why = "the OAuth code expired before it was exchanged (codes live about 30 seconds)"
        return stop(CODE_EXCHANGED, Reason.CODE_EXPIRED, f"{why}: {NEW_SIGNUP} right away")
    if info.code == 100:
        why = "Meta does not accept the OAuth code for this app"
        return stop(CODE_EXCHANGED, Reason.CODE_INVALID, f"{why} ({info.message}): {NEW_SIGNUP}")
    if info.code == 101 or error_class is ErrorClass.CREDENTIAL:
        why = f"Meta rejected the app credentials ({info.message})"
        return stop(CODE_EXCHANGED, Reason.APP_CREDENTIALS_REJECTED, why)
    if error_class in (ErrorClass.RETRY, ErrorClass.THROTTLE, ErrorClass.UNKNOWN):
        return exchange_unavailable(f"Graph API error {info.code}: {info.message}", attempts)
    message = f"Graph API error {info.code}: {info.message}"
    return stop(CODE_EXCHANGED, Reason.EXCHANGE_FAILED, message)


def exchange_unavailable(message: str, attempts: int) -> StepResult:
    if attempts >= MAX_EXCHANGE_ATTEMPTS:
        why = f"gave up after {attempts} attempts: {message}"
        return stop(CODE_EXCHANGED, Reason.EXCHANGE_FAILED, why)
    return retry(CODE_EXCHANGED, Reason.GRAPH_API_UNAVAILABLE, message)


def graph_error(step: str, info: GraphApiErrorInfo, error_class: ErrorClass) -> StepResult:
    """A Graph API error in a step after the exchange (the token is known to work)."""
    message = f"Graph API error {info.code}: {info.message}"
    if error_class is ErrorClass.THROTTLE:
        return retry(step, Reason.GRAPH_API_THROTTLED, message)
    if error_class is ErrorClass.RETRY:
        return retry(step, Reason.GRAPH_API_UNAVAILABLE, message)
    if info.code == 10 or 200 <= info.code < 300:
        return stop(step, Reason.PERMISSION_DENIED, message)
    if error_class is ErrorClass.CREDENTIAL:
        return stop(step, Reason.TOKEN_REJECTED, message)
    return stop(step, Reason.GRAPH_API_ERROR, message)


def _grant_targets(data: Mapping[str, Any]) -> dict[str, list[str]]:
    targets: dict[str, list[str]] = {}
    for grant in data.get("granular_scopes") or []:
        if isinstance(grant, Mapping) and isinstance(grant.get("target_ids"), list):
            targets[str(grant.get("scope"))] = [str(t) for t in grant["target_ids"]]
    return targets


def discover_waba(data: Mapping[str, Any], session: SessionInfo | None = None) -> StepResult:
    """The WABA: the one the signup session reported, else the first (newest) target of the
    management scope (then messaging, then manage_events). A session's WABA must be among
    the grants' targets when they list any; when they list none (Meta's mid-2026 tokens) it
    is taken as reported and confirmed by the next step's read of its numbers."""
    if data.get("is_valid") is False:
        error = data.get("error")
        said = error.get("message") if isinstance(error, Mapping) else None
        why = f"Meta says the new token is not valid: {said or 'no reason given'}"
        return stop(WABA_DISCOVERED, Reason.TOKEN_REJECTED, why)
    targets = _grant_targets(data)
    listed = [t for scope in WABA_SCOPES for t in targets.get(scope, ())]
    reported = session.waba_id if session is not None else None
    if reported and listed and reported not in listed:
        why = (
            f"the signup session reported WABA {reported}, but the token's grants cover "
            f"{', '.join(dict.fromkeys(listed))}: {NEW_SIGNUP}"
        )
        return stop(WABA_DISCOVERED, Reason.WABA_NOT_FOUND, why)
    if reported:
        how = "in the token's grants" if listed else "the token's grants name no WABA"
        why = f"WhatsApp Business Account {reported} (from the signup session; {how})"
        return done(WABA_DISCOVERED, Reason.DISCOVERED, why, wabaId=reported)
    for scope in WABA_SCOPES:
        if targets.get(scope):
            waba = targets[scope][0]
            return done(
                WABA_DISCOVERED, Reason.DISCOVERED, f"WhatsApp Business Account {waba}", wabaId=waba
            )
    why = (
        "the token names no WhatsApp Business Account (no target_ids for "
        f"{MANAGEMENT_SCOPE}) and the signup has no spec.session.wabaId: pass the ids of "
        f"Embedded Signup's session message (waba_id, phone_number_id) along; {NEW_SIGNUP}"
    )
    return stop(WABA_DISCOVERED, Reason.WABA_NOT_FOUND, why)


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _matches(number: Mapping[str, Any], selector: PhoneNumberSelector) -> bool:
    if selector.phone_number_id and str(number.get("id")) != selector.phone_number_id:
        return False
    wanted = _digits(selector.display_phone_number or "")
    return not wanted or _digits(str(number.get("display_phone_number", ""))) == wanted


def effective_selector(
    selector: PhoneNumberSelector | None, session_phone: str | None
) -> PhoneNumberSelector | StepResult | None:
    """The selector with the session's number in it (a stop when the two disagree)."""
    if not session_phone:
        return selector
    named = selector.phone_number_id if selector is not None else None
    if named and named != session_phone:
        why = (
            f"spec.phoneNumberSelector names number {named} but the signup session reported "
            f"{session_phone}: {NEW_SIGNUP}"
        )
        return stop(PHONE_NUMBER_SELECTED, Reason.PHONE_NUMBER_NOT_FOUND, why)
    display = selector.display_phone_number if selector is not None else None
    return PhoneNumberSelector(phoneNumberId=session_phone, displayPhoneNumber=display)


def select_phone(
    numbers: Sequence[Mapping[str, Any]],
    selector: PhoneNumberSelector | None,
    waba: str,
    session_phone: str | None = None,
) -> StepResult:
    """The number the tenant sends from: the only one, or the one the selector (or the
    signup session) names, which must be among the WABA's numbers."""
    if not numbers:
        why = f"WhatsApp Business Account {waba} has no phone numbers: add one at Meta first"
        return stop(PHONE_NUMBER_SELECTED, Reason.NO_PHONE_NUMBERS, why)
    chosen_by = effective_selector(selector, session_phone)
    if isinstance(chosen_by, StepResult):
        return chosen_by
    listed = ", ".join(f"{n.get('id')} ({n.get('display_phone_number', '')})" for n in numbers)
    if chosen_by is None or not (chosen_by.phone_number_id or chosen_by.display_phone_number):
        if len(numbers) > 1:
            why = (
                f"WhatsApp Business Account {waba} has {len(numbers)} numbers ({listed}): "
                "set spec.phoneNumberSelector in a new signup to choose one"
            )
            return stop(PHONE_NUMBER_SELECTED, Reason.PHONE_NUMBER_SELECTOR_REQUIRED, why)
        chosen = [numbers[0]]
    else:
        chosen = [n for n in numbers if _matches(n, chosen_by)]
    if len(chosen) != 1:
        by = "the signup session's number" if session_phone else "spec.phoneNumberSelector"
        why = f"{by} matches {len(chosen)} of WABA {waba}'s numbers ({listed})"
        return stop(PHONE_NUMBER_SELECTED, Reason.PHONE_NUMBER_NOT_FOUND, why)
    phone_id = str(chosen[0].get("id", ""))
    display = str(chosen[0].get("display_phone_number", ""))
    return done(
        PHONE_NUMBER_SELECTED,
        Reason.SELECTED,
        f"phone number {phone_id} ({display}) of WABA {waba}",
        phoneNumberId=phone_id,
        displayPhoneNumber=display,
    )


def register_error(info: GraphApiErrorInfo, error_class: ErrorClass, attempts: int) -> StepResult:
    """Registration failed. 133016 (Meta's 10 per 72 h) and wrong PINs stop for good; a
    transient failure is retried, but one signup never spends more than a few calls."""
    message = f"Graph API error {info.code}: {info.message}"
    if info.code == 133016:
        why = (
            "Meta allows 10 registration calls per number per 72 hours and this number has "
            "reached it; the operator will not call register again for this signup. Register "
            "the number once the block ends, then create a new signup with register: false"
        )
        return stop(NUMBER_REGISTERED, Reason.REGISTRATION_LIMIT_REACHED, why)
    if info.code == 133005:
        why = "the PIN does not match the number's two-step verification PIN"
        return stop(NUMBER_REGISTERED, Reason.PIN_MISMATCH, why)
    if error_class in (ErrorClass.RETRY, ErrorClass.THROTTLE):
        return register_unavailable(message, attempts)
    return stop(NUMBER_REGISTERED, Reason.REGISTRATION_FAILED, message)


def register_unavailable(message: str, attempts: int) -> StepResult:
    if attempts >= MAX_REGISTER_ATTEMPTS:
        why = f"gave up after {attempts} register calls (Meta allows 10 per 72 h): {message}"
        return stop(NUMBER_REGISTERED, Reason.REGISTRATION_FAILED, why)
    return retry(NUMBER_REGISTERED, Reason.GRAPH_API_UNAVAILABLE, message)


def app_ref(
    step: str,
    name: str,
    app: ResolvedApp | None,
    namespace: str,
    labels: Mapping[str, str] | None,
    *,
    pending: bool = False,
) -> ResolvedApp | StepResult:
    """The WhatsAppApp `name` (spec.appRef: `app` from the apps index, None when there is
    none; `pending`: its first pass is still to come) when the signup in `namespace` (with
    `labels`; None: not known yet) may use it, as a tenant there would. A missing, unread or
    not Ready app is waited for, as are unknown labels (each can change in a moment: the app
    created or fixed, the operator's first pass done); an app that does not select the
    namespace stops the signup: that is the platform team's decision, not a delay."""
    outcome = app_pending(name) if pending else judge_app_ref(name, app, namespace, labels)
    if outcome.app is not None:
        return outcome.app
    verdict = outcome.verdict
    if verdict.reason == Reason.APP_NOT_ALLOWED and labels is not None:
        why = (
            f"{verdict.message}: the signup stops; once the app allows the namespace (or "
            f"with another app), {NEW_SIGNUP}"
        )
        return stop(step, Reason.APP_NOT_ALLOWED, why)
    if outcome.pending:  # its message says it is waited for
        return retry(step, Reason.APP_NOT_READY, verdict.message)
    return retry(step, verdict.reason, f"{verdict.message}; waiting")


def code_preflight(code: SecretValue, pin: SecretValue | None) -> StepResult | None:
    """What in the code Secret stops the exchange (None: nothing): see `preflight`."""
    if code.missing:
        return retry(CODE_EXCHANGED, Reason.CODE_SECRET_NOT_FOUND, f"{code.message}; waiting")
    if not code.ok:
        return stop(CODE_EXCHANGED, Reason.CODE_SECRET_INVALID, code.message)
    if pin is not None:
        if not pin.ok:
            why = f"register is true but there is no usable PIN: {pin.message}"
            return stop(CODE_EXCHANGED, Reason.PIN_INVALID, why)
        if PIN_PATTERN.match(pin.value or "") is None:
            return stop(CODE_EXCHANGED, Reason.PIN_INVALID, "the PIN must be exactly 6 digits")
    return None


def preflight(
    code: SecretValue, pin: SecretValue | None, app_id: SecretValue, app_secret: SecretValue
) -> StepResult | None:
    """What stops the exchange before the code is spent (None: nothing). A missing Secret is
    waited for (it may be created right after the signup); a wrong one stops the signup."""
    blocked = code_preflight(code, pin)
    if blocked is not None:
        return blocked
    if app_id.missing:
        why = f"{app_id.message}; waiting"
        return retry(CODE_EXCHANGED, Reason.APP_CREDENTIALS_NOT_FOUND, why)
    for value in (app_id, app_secret):
        if not value.ok:
            return stop(CODE_EXCHANGED, Reason.APP_CREDENTIALS_INVALID, value.message)
    return None
