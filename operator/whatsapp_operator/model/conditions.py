"""Standard Kubernetes conditions, kept the way cert-manager keeps them.

A condition's lastTransitionTime changes only when its status flips; reason, message and
observedGeneration are updated in place. Types and reasons are named constants: they are
part of the API users script against (`kubectl wait --for=condition=Ready`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Status = Literal["True", "False", "Unknown"]

# Condition types.
SECRET_RESOLVED = "SecretResolved"
APP_RESOLVED = "AppResolved"  # only for a tenant with spec.appRef (apps/tenant_ref.py)
APP_VERIFIED = "AppVerified"  # a WhatsAppApp's check at Meta (apps/decide.py)
TOKEN_VALID = "TokenValid"
PHONE_NUMBER_VERIFIED = "PhoneNumberVerified"
SENDING_BLOCKED = "SendingBlocked"  # True while Meta blocks the number (blocking.py)
SYNCED = "Synced"
TOKEN_ROTATION = "TokenRotation"  # a warning channel: never part of Ready
API_VERSION = "ApiVersionSupported"  # likewise
ACCOUNT_HEALTHY = "AccountHealthy"  # Meta's notices (health.py): False gates Ready for some
READY = "Ready"
ORDER = (
    SECRET_RESOLVED,
    APP_RESOLVED,
    APP_VERIFIED,
    TOKEN_VALID,
    PHONE_NUMBER_VERIFIED,
    SENDING_BLOCKED,
    SYNCED,
    TOKEN_ROTATION,
    API_VERSION,
    ACCOUNT_HEALTHY,
    READY,
)


class Reason:
    """Every reason this operator writes. CamelCase, stable: users alert on them."""

    READY = "Ready"
    INVALID_SPEC = "InvalidSpec"
    # SecretResolved
    RESOLVED = "Resolved"
    SECRET_NOT_FOUND = "SecretNotFound"
    SECRET_KEY_MISSING = "SecretKeyMissing"
    TOKEN_EMPTY = "TokenEmpty"
    TOKEN_MALFORMED = "TokenMalformed"
    SECRET_FORBIDDEN = "SecretForbidden"
    KUBERNETES_UNAVAILABLE = "KubernetesUnavailable"
    # AppResolved (a tenant's spec.appRef; Ready carries the same reason)
    APP_NOT_FOUND = "AppNotFound"
    APP_NOT_ALLOWED = "AppNotAllowed"
    APP_NOT_READY = "AppNotReady"
    # TokenValid
    TOKEN_VALID = "TokenValid"
    TOKEN_EXPIRED = "TokenExpired"
    TOKEN_INVALIDATED = "TokenInvalidated"
    APP_REMOVED = "AppRemoved"
    PASSWORD_CHANGED = "PasswordChanged"
    ACCOUNT_CHECKPOINT = "AccountCheckpoint"
    TOKEN_UNREADABLE = "TokenUnreadable"
    TOKEN_REJECTED = "TokenRejected"
    PERMISSION_DENIED = "PermissionDenied"
    MISSING_SCOPES = "MissingScopes"
    WABA_NOT_IN_SCOPE = "WabaNotInScope"
    APP_SECRET_PROOF_REQUIRED = "AppSecretProofRequired"  # Meta refused: no/wrong proof
    USER_TOKEN = "UserToken"  # Warning Event: a user token, not a system user's
    GRAPH_API_UNAVAILABLE = "GraphApiUnavailable"
    GRAPH_API_THROTTLED = "GraphApiThrottled"
    NOT_CHECKED = "NotChecked"
    # PhoneNumberVerified
    PHONE_NUMBER_VERIFIED = "PhoneNumberVerified"
    PHONE_NUMBER_NOT_FOUND = "PhoneNumberNotFound"
    PHONE_NUMBER_NOT_IN_WABA = "PhoneNumberNotInWaba"
    PHONE_NUMBER_NO_ACCESS = "PhoneNumberNoAccess"
    # SendingBlocked (True: the Meta code that blocked the number; codes without a name here
    # are `MetaError<code>`); False: SendingAllowed. Ready=False/SendingBlocked meanwhile.
    SENDING_BLOCKED = "SendingBlocked"
    SENDING_ALLOWED = "SendingAllowed"
    ACCOUNT_RESTRICTED = "AccountRestricted"  # 368: policy violation
    COUNTRY_RESTRICTED = "CountryRestricted"  # 130497: may not message this country
    ACCOUNT_LOCKED = "AccountLocked"  # 131031: Meta locked the business account
    DISPLAY_NAME_NOT_APPROVED = "DisplayNameNotApproved"  # 131037
    PAYMENT_ISSUE = "PaymentIssue"  # 131042: payment method or eligibility
    CERTIFICATE_INVALID = "CertificateInvalid"  # 131045: registration / certificate
    SPAM_RATE_LIMIT = "SpamRateLimit"  # 131048: spam rate limit on the number
    ACCOUNT_ENFORCEMENT = "AccountEnforcement"  # 131064: an enforcement action
    NUMBER_NOT_REGISTERED = "NumberNotRegistered"  # 133010
    # Synced (PostgreSQL)
    SYNCED = "Synced"
    NOT_SYNCED = "NotSynced"
    DATABASE_UNAVAILABLE = "DatabaseUnavailable"
    DATABASE_ERROR = "DatabaseError"
    ROW_NOT_MANAGED = "RowNotManaged"
    DRIFT_REPAIRED = "DriftRepaired"
    ROW_ADOPTED = "RowAdopted"
    PLAINTEXT_TOKEN_REPLACED = "PlaintextTokenReplaced"  # Event: a plaintext row, encrypted
    ROW_OWNED_BY_ANOTHER_NAMESPACE = "RowOwnedByAnotherNamespace"  # never handed over (policy)
    ADOPTION_NOT_APPROVED = "AdoptionNotApproved"  # adoptExistingRow without the policy's
    # TokenRotation
    NEVER_EXPIRES = "NeverExpires"
    RENEWAL_SCHEDULED = "RenewalScheduled"
    RENEWAL_DUE = "RenewalDue"
    EXPIRING_SOON = "ExpiringSoon"
    REFRESHED = "Refreshed"
    REFRESH_FAILED = "RefreshFailed"
    TOKEN_REFRESHED = "TokenRefreshed"  # Event
    PREVIOUS_TOKEN_RETIRED = "PreviousTokenRetired"  # Event
    # ApiVersionSupported: graph_api versions.VersionState values
    API_VERSION_CURRENT = "Current"
    # Ready only
    DUPLICATE_TENANT_ID = "DuplicateTenantId"
    DUPLICATE_PHONE_NUMBER_ID = "DuplicatePhoneNumberId"
    TENANT_ID_NOT_ALLOWED = "TenantIdNotAllowed"  # no WhatsAppTenantPolicy allows it here


@dataclass(frozen=True)
class Condition:
    type: str
    status: Status
    reason: str
    message: str


def rfc3339(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def find(conditions: Iterable[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def merge(
    existing: Iterable[Mapping[str, Any]],
    updates: Iterable[Condition],
    *,
    generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """The new conditions list: updates applied, transition times kept unless status flips.

    Conditions of types we do not update are kept as they are (another writer's, or ours from
    a later feature), in their original order; ours come in a fixed order.
    """
    previous = {c["type"]: c for c in existing if "type" in c}
    out: dict[str, dict[str, Any]] = {}
    for cond in updates:
        old = previous.get(cond.type)
        transitioned = old is None or old.get("status") != cond.status
        out[cond.type] = {
            "type": cond.type,
            "status": cond.status,
            "reason": cond.reason,
            "message": cond.message[:32768],
            "lastTransitionTime": (
                rfc3339(now) if transitioned or old is None else old["lastTransitionTime"]
            ),
            "observedGeneration": generation,
        }
    kept = [dict(c) for t, c in previous.items() if t not in out]
    ordered = [out[t] for t in ORDER if t in out] + [c for t, c in out.items() if t not in ORDER]
    return ordered + kept
