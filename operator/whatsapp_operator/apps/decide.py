"""One WhatsAppApp's pass, decided: its Secrets read, Meta's answer judged, and the status,
Events and `Ready` composed. Pure: no I/O, no clock (the facts carry `now`).

Conditions: `SecretResolved` (the app secret and the verify token read from the operator's
namespace), `AppVerified` (Meta answered `GET /{app-id}?fields=id,name` with the app access
token `{app-id}|{app-secret}`: https://developers.facebook.com/docs/facebook-login/guides/
access-tokens#apptokens, the Application node https://developers.facebook.com/docs/graph-api/
reference/application/), `Ready`. A Graph API outage keeps a Ready app Ready for the grace
(`--unavailable-grace`), as it keeps a Ready tenant Ready: its tenants do not all flip at once.
Nothing derived from the secrets (not even a fingerprint) is ever put in the status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from whatsapp_contract.fingerprint import fingerprint
from whatsapp_graph.errors import ErrorClass, GraphApiErrorInfo
from whatsapp_operator.apps.model import AppSpec
from whatsapp_operator.apps.tenant_ref import ResolvedApp
from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.conditions import Condition, Reason
from whatsapp_operator.model.facts import Verdict, not_checked
from whatsapp_operator.model.fragment import Event
from whatsapp_operator.model.recheck import parse_time
from whatsapp_operator.model.secret_data import decode

MAX_APP_SECRET = 256  # Meta's app secrets are 32 hex characters
# The seed's verify_token column is VARCHAR(255) and holds the token encrypted in the default
# storage mode (about 2x + 40 characters): 100 keeps every mode within the column.
MAX_VERIFY_TOKEN = 100


class AppReason:
    """Reasons only a WhatsAppApp writes (the shared ones are in model.conditions.Reason)."""

    VERIFIED = "Verified"
    SECRET_VALUE_INVALID = "SecretValueInvalid"
    NAMESPACE_UNKNOWN = "OperatorNamespaceUnknown"
    APP_SECRET_INVALID = "AppSecretInvalid"  # Meta refused the app access token
    APP_ID_MISMATCH = "AppIdMismatch"  # Meta answered for another id
    APP_REJECTED = "AppRejected"  # any other refusal, with Meta's message


@dataclass(frozen=True)
class AppSecrets:
    """What the app's Secrets hold. Never printed; `fingerprint` stays in memory only."""

    app_secret: str = field(repr=False)
    verify_token: str = field(repr=False)
    fingerprint: str = field(repr=False)  # of the app id and secret: a new one is checked again


@dataclass(frozen=True)
class SecretsOutcome:
    secrets: AppSecrets | None
    verdict: Verdict


def _value(
    data: Mapping[str, str] | None, secret: str, key: str, limit: int
) -> tuple[str | None, Verdict | None]:
    """One value of a Secret, or the verdict saying why it cannot be used."""
    found = decode(data, secret, key)
    if found.problem == "no-secret":
        return None, Verdict("False", Reason.SECRET_NOT_FOUND, found.message)
    if found.problem == "no-key":
        return None, Verdict("False", Reason.SECRET_KEY_MISSING, found.message)
    where = f"Secret {secret!r} key {key!r}"
    if found.problem or not found.stripped or not found.one_value:
        why = f"{where} is not one printable value (empty, binary or with spaces inside)"
        return None, Verdict("False", AppReason.SECRET_VALUE_INVALID, why)
    if len(found.stripped) > limit:
        why = f"{where} holds {len(found.stripped)} characters; at most {limit}"
        return None, Verdict("False", AppReason.SECRET_VALUE_INVALID, why)
    return found.stripped, None


def read_secrets(
    spec: AppSpec,
    namespace: str,
    data: Mapping[str, Mapping[str, str] | None],
    forbidden: Mapping[str, str] | None = None,
) -> SecretsOutcome:
    """The app secret and the verify token from the Secrets' data maps (by Secret name; None:
    no such Secret). `forbidden`: Secrets the operator may not read, and the API's words."""
    for name, why in (forbidden or {}).items():
        message = f"the operator may not read Secret {namespace}/{name}: {why}"
        return SecretsOutcome(None, Verdict("False", Reason.SECRET_FORBIDDEN, message))
    sref, vref = spec.app_secret_ref, spec.verify_token_ref
    secret, problem = _value(data.get(sref.name), sref.name, sref.key, MAX_APP_SECRET)
    if problem is not None:
        return SecretsOutcome(None, problem)
    verify, problem = _value(data.get(vref.name), vref.name, vref.key, MAX_VERIFY_TOKEN)
    if problem is not None:
        return SecretsOutcome(None, problem)
    assert secret is not None
    assert verify is not None
    print_ = fingerprint(f"{spec.app_id}\x1f{secret}")
    where = f"app secret from {namespace}/{sref.name}, verify token from {namespace}/{vref.name}"
    return SecretsOutcome(AppSecrets(secret, verify, print_), Verdict("True", "Resolved", where))


@dataclass(frozen=True)
class MetaCheck:
    """What Meta answered about the app this pass (None fields: not known)."""

    verdict: Verdict
    name: str | None = None
    checked_at: datetime | None = None

    @property
    def transient(self) -> bool:
        return self.verdict.transient


# Meta's answers to an app access token (codes from Meta's Graph API error reference):
# 190 bad token signature (the secret does not match the app id), 102/104 an unreadable
# token; 101 "Invalid application ID"; 803 and 100/33 an object that does not exist.
_NOT_FOUND = {101, 803}


def judge_answer(app_id: str, body: Mapping[str, Any], at: datetime) -> MetaCheck:
    """Meta's `{"id": ..., "name": ...}` for the app."""
    answered = str(body.get("id") or "")
    if answered != app_id:
        why = f"Meta answered for app id {answered or '(none)'!r}, not {app_id}"
        return MetaCheck(Verdict("False", AppReason.APP_ID_MISMATCH, why), checked_at=at)
    name = str(body.get("name") or "") or None
    shown = f"{name!r} ({app_id})" if name else app_id
    verdict = Verdict("True", AppReason.VERIFIED, f"Meta knows app {shown} and its secret")
    return MetaCheck(verdict, name, at)


def judge_error(
    app_id: str, info: GraphApiErrorInfo, error_class: ErrorClass, at: datetime
) -> MetaCheck:
    """Meta's error envelope for the app check."""
    said = f"Meta answered {info.code}: {info.message}"
    if info.code in _NOT_FOUND or (info.code == 100 and info.subcode == 33):
        verdict = Verdict("False", Reason.APP_NOT_FOUND, f"no Meta app {app_id} ({said})")
    elif error_class is ErrorClass.THROTTLE:
        return MetaCheck(Verdict("Unknown", Reason.GRAPH_API_THROTTLED, said))
    elif error_class is ErrorClass.RETRY or info.http_status >= 500:
        return MetaCheck(Verdict("Unknown", Reason.GRAPH_API_UNAVAILABLE, said))
    elif error_class is ErrorClass.CREDENTIAL:
        why = f"Meta refused the app access token of app {app_id}: is the secret right? ({said})"
        verdict = Verdict("False", AppReason.APP_SECRET_INVALID, why)
    else:
        verdict = Verdict("False", AppReason.APP_REJECTED, said)
    return MetaCheck(verdict, checked_at=at)


def judge_unavailable(message: str) -> MetaCheck:
    return MetaCheck(Verdict("Unknown", Reason.GRAPH_API_UNAVAILABLE, message))


@dataclass(frozen=True)
class AppFacts:
    """What an app's pass gathered."""

    generation: int
    spec: AppSpec | None
    spec_error: str
    secrets: SecretsOutcome | None  # None: not looked at (invalid spec)
    check: MetaCheck | None  # this pass's; None: carry the stored verdict
    status: Mapping[str, Any]  # as stored
    now: datetime
    grace: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class AppDecision:
    status: dict[str, Any]
    events: list[Event]
    ready: Condition

    @property
    def usable(self) -> bool:
        """Tenants may use the app (Ready=True)."""
        return self.ready.status == "True"


def _stored(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    return c.find(status.get("conditions") or (), type_)


def _verified(facts: AppFacts) -> Verdict:
    if facts.secrets is None or not facts.secrets.verdict.ok:
        return not_checked("not checked without the app's secret")
    if facts.check is not None:
        return facts.check.verdict
    stored = _stored(facts.status, c.APP_VERIFIED)
    if stored is None:
        return not_checked("not checked yet")
    return Verdict(stored["status"], stored.get("reason", ""), stored.get("message", ""))


def _within_grace(facts: AppFacts, verified: Verdict) -> bool:
    """A transient failure keeps a Ready app Ready until the outage outlasts the grace."""
    if not verified.transient or (_stored(facts.status, c.READY) or {}).get("status") != "True":
        return False
    stored = _stored(facts.status, c.APP_VERIFIED) or {}
    since = facts.now
    if stored.get("status") == "Unknown" and stored.get("reason") == verified.reason:
        since = parse_time(stored.get("lastTransitionTime")) or facts.now
    return facts.now - since < facts.grace


def _ready(facts: AppFacts, secret: Verdict | None, verified: Verdict) -> Condition:
    if facts.spec is None:
        return Condition(c.READY, "False", Reason.INVALID_SPEC, facts.spec_error)
    for verdict in (secret, verified):
        if verdict is None or verdict.ok:
            continue
        if _within_grace(facts, verdict):
            grace = f"{verdict.message} (still Ready: transient, grace {facts.grace})"
            return Condition(c.READY, "True", Reason.READY, grace)
        status: c.Status = "Unknown" if verdict.status == "Unknown" else "False"
        return Condition(c.READY, status, verdict.reason, verdict.message)
    return Condition(c.READY, "True", Reason.READY, verified.message)


def decide_app(facts: AppFacts) -> AppDecision:
    """The status to store and the Events to post."""
    secret = facts.secrets.verdict if facts.secrets is not None else None
    verified = _verified(facts) if facts.spec is not None else not_checked("spec is invalid")
    ready = _ready(facts, secret, verified)
    updates = [Condition(c.APP_VERIFIED, verified.status, verified.reason, verified.message)]
    if secret is not None:
        updates.insert(
            0, Condition(c.SECRET_RESOLVED, secret.status, secret.reason, secret.message)
        )
    status: dict[str, Any] = {
        "observedGeneration": facts.generation,
        "conditions": c.merge(
            facts.status.get("conditions") or (), [*updates, ready],
            generation=facts.generation, now=facts.now,
        ),
    }  # fmt: skip
    status.update(_meta_status(facts, verified))
    return AppDecision(status, _events(facts.status, ready), ready)


def _meta_status(facts: AppFacts, verified: Verdict) -> dict[str, Any]:
    """`appName` (Meta's) and `lastVerifiedAt`: this pass's check, else as stored."""
    if not verified.ok:
        return {}
    check = facts.check
    if check is None or check.checked_at is None:
        return {k: facts.status[k] for k in ("appName", "lastVerifiedAt") if k in facts.status}
    out: dict[str, Any] = {"lastVerifiedAt": c.rfc3339(check.checked_at)}
    if check.name:
        out["appName"] = check.name
    return out


def _events(stored: Mapping[str, Any], ready: Condition) -> list[Event]:
    """An Event when Ready changes (status or reason): a restart posts nothing."""
    before = _stored(stored, c.READY)
    if before is not None and (before.get("status"), before.get("reason")) == (
        ready.status,
        ready.reason,
    ):
        return []
    if ready.status == "True":
        return [Event("Normal", Reason.READY, ready.message)]
    return [Event("Warning", ready.reason, ready.message)]


# --- when the next check is due -------------------------------------------------------------
RECHECK = timedelta(hours=1)  # a verified app is asked about again after this


@dataclass(frozen=True)
class Verified:
    """What this process last learnt from Meta about an app (in memory: a restart asks
    again, once per app)."""

    fingerprint: str = field(repr=False)
    generation: int
    at: datetime
    settled: bool  # a verdict (True or False), not a transient failure


def check_due(
    last: Verified | None, secrets: AppSecrets | None, generation: int, now: datetime
) -> bool:
    """Whether Meta is asked now: never without the secrets; at once for a new secret, a
    spec change or after a transient failure (the loop's backoff paces those); else hourly."""
    if secrets is None:
        return False
    if last is None or not last.settled:
        return True
    if last.fingerprint != secrets.fingerprint or last.generation != generation:
        return True
    return now - last.at >= RECHECK


def resolved_app(
    name: str, spec: AppSpec | None, secrets: SecretsOutcome | None, decision: AppDecision
) -> ResolvedApp:
    """The app's entry for its tenants (apps/index.py), from this pass."""
    found = secrets.secrets if secrets is not None else None
    return ResolvedApp(
        name=name,
        app_id=spec.app_id if spec is not None else "",
        ready=decision.usable and found is not None,
        reason=decision.ready.reason,
        message=decision.ready.message,
        app_secret=found.app_secret if found is not None else None,
        verify_token=found.verify_token if found is not None else None,
        graph_api_version=spec.graph_api_version if spec is not None else None,
        require_proof=spec.require_app_secret_proof if spec is not None else False,
        selector=spec.namespace_selector if spec is not None else None,
    )
