"""What Meta says about a token and a phone number, and what that means for a tenant.

Pure: parses `debug_token` and phone-number payloads into typed facts and judges them
(`judge_token`, `judge_phone`, `judge_error`) into verdicts that become conditions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from whatsapp_graph.errors import (
    ErrorClass,
    GraphApiErrorInfo,
    TokenProblem,
    token_problem,
)
from whatsapp_operator.model.conditions import Reason, Status, rfc3339

REQUIRED_SCOPES = ("whatsapp_business_management", "whatsapp_business_messaging")
USER_TOKEN_ADVICE = (
    "Meta recommends system-user tokens in production: a user token expires within hours "
    "or days and stops working when its user logs out or changes password"
)


@dataclass(frozen=True)
class Verdict:
    status: Status
    reason: str
    message: str

    @property
    def ok(self) -> bool:
        return self.status == "True"

    @property
    def transient(self) -> bool:
        return self.reason in (
            Reason.GRAPH_API_UNAVAILABLE,
            Reason.GRAPH_API_THROTTLED,
            Reason.DATABASE_UNAVAILABLE,
        )


def _when(value: Any) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    return None


@dataclass(frozen=True)
class TokenFacts:
    is_valid: bool
    type: str | None = None
    app_id: str | None = None
    expires_at: datetime | None = None  # None: never expires
    data_access_expires_at: datetime | None = None
    issued_at: datetime | None = None
    scopes: tuple[str, ...] = ()
    targets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    error_code: int | None = None
    error_subcode: int | None = None
    error_message: str = ""

    @classmethod
    def from_debug_token(cls, data: Mapping[str, Any]) -> TokenFacts:
        targets: dict[str, tuple[str, ...]] = {}
        for entry in data.get("granular_scopes") or ():
            if isinstance(entry, Mapping) and isinstance(entry.get("target_ids"), list):
                targets[str(entry.get("scope"))] = tuple(str(t) for t in entry["target_ids"])
        raw_error = data.get("error")
        error: Mapping[str, Any] = raw_error if isinstance(raw_error, Mapping) else {}
        return cls(
            is_valid=data.get("is_valid") is True,
            type=str(data["type"]) if data.get("type") else None,
            app_id=str(data["app_id"]) if data.get("app_id") else None,
            expires_at=_when(data.get("expires_at")),
            data_access_expires_at=_when(data.get("data_access_expires_at")),
            issued_at=_when(data.get("issued_at")),
            scopes=tuple(str(s) for s in data.get("scopes") or ()),
            targets=targets,
            error_code=error.get("code") if isinstance(error.get("code"), int) else None,
            error_subcode=error.get("subcode") if isinstance(error.get("subcode"), int) else None,
            error_message=str(error.get("message", ""))[:300],
        )

    def status(self, fingerprint: str, validated_at: datetime) -> dict[str, Any]:
        """`status.token`: facts only, never the token."""
        out: dict[str, Any] = {"fingerprint": fingerprint, "lastValidatedAt": rfc3339(validated_at)}
        if self.type:
            out["type"] = self.type
        for key, when in (
            ("expiresAt", self.expires_at),
            ("dataAccessExpiresAt", self.data_access_expires_at),
            ("issuedAt", self.issued_at),
        ):
            if when is not None:
                out[key] = rfc3339(when)
        if self.scopes:
            out["scopes"] = sorted(self.scopes)
        return out


_PROBLEM_REASONS = {
    TokenProblem.EXPIRED: Reason.TOKEN_EXPIRED,
    TokenProblem.INVALIDATED: Reason.TOKEN_INVALIDATED,
    TokenProblem.APP_REMOVED: Reason.APP_REMOVED,
    TokenProblem.PASSWORD_CHANGED: Reason.PASSWORD_CHANGED,
    TokenProblem.CHECKPOINT: Reason.ACCOUNT_CHECKPOINT,
    TokenProblem.UNREADABLE: Reason.TOKEN_UNREADABLE,
    TokenProblem.PERMISSION_DENIED: Reason.PERMISSION_DENIED,
    TokenProblem.REJECTED: Reason.TOKEN_REJECTED,
}


def judge_token(facts: TokenFacts, waba_id: str, now: datetime) -> Verdict:
    """Is this token fit to run the tenant? (valid, unexpired, right scopes, right WABA)."""
    if not facts.is_valid:
        problem = token_problem(facts.error_code or 190, facts.error_subcode)
        detail = f": {facts.error_message}" if facts.error_message else ""
        return Verdict(
            "False", _PROBLEM_REASONS[problem], f"Meta reports the token invalid{detail}"
        )
    if facts.expires_at is not None and facts.expires_at <= now:
        return Verdict(
            "False", Reason.TOKEN_EXPIRED, f"token expired at {rfc3339(facts.expires_at)}"
        )
    missing = [s for s in REQUIRED_SCOPES if s not in facts.scopes]
    if missing:
        return Verdict(
            "False", Reason.MISSING_SCOPES, f"token lacks required scopes: {', '.join(missing)}"
        )
    for scope in REQUIRED_SCOPES:
        targets = facts.targets.get(scope)
        if targets and waba_id not in targets:
            return Verdict(
                "False",
                Reason.WABA_NOT_IN_SCOPE,
                f"token's {scope} scope does not cover WABA {waba_id} "
                f"(it covers {', '.join(targets)})",
            )
    expiry = f"expires {rfc3339(facts.expires_at)}" if facts.expires_at else "never expires"
    message = f"token valid ({facts.type or 'unknown type'}, {expiry})"
    if facts.type == "USER":
        message += f"; {USER_TOKEN_ADVICE}"
    return Verdict("True", Reason.TOKEN_VALID, message)


@dataclass(frozen=True)
class HealthEntity:
    """One entity of the number's `health_status` (PHONE_NUMBER, WABA, BUSINESS, APP...)."""

    entity_type: str
    id: str | None = None
    can_send_message: str | None = None  # AVAILABLE | LIMITED | BLOCKED
    error_codes: tuple[int, ...] = ()

    @classmethod
    def from_graph(cls, data: Mapping[str, Any]) -> HealthEntity:
        errors = data.get("errors")
        codes = tuple(
            e["error_code"]
            for e in (errors if isinstance(errors, list) else ())
            if isinstance(e, Mapping) and isinstance(e.get("error_code"), int)
        )
        return cls(
            str(data.get("entity_type") or "UNKNOWN"),
            _text(data, "id"),
            _text(data, "can_send_message"),
            codes,
        )

    def describe(self) -> str:
        codes = f" (errors {', '.join(map(str, self.error_codes))})" if self.error_codes else ""
        return f"{self.entity_type} {self.id or '?'} {self.can_send_message or 'UNKNOWN'}{codes}"


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return str(value) if isinstance(value, str | int) and value != "" else None


def _messaging_limit(data: Mapping[str, Any]) -> str | None:
    """`whatsapp_business_manager_messaging_limit` (v24.0 on) or `messaging_limit_tier`."""
    for key in ("whatsapp_business_manager_messaging_limit", "messaging_limit_tier"):
        limit = data.get(key)
        if isinstance(limit, Mapping):
            limit = limit.get("current_limit") or limit.get("tier")
        if isinstance(limit, str | int) and limit != "":
            return str(limit)
    return None


@dataclass(frozen=True)
class PhoneFacts:
    display_phone_number: str | None = None
    verified_name: str | None = None
    quality_rating: str | None = None
    throughput_level: str | None = None
    code_verification_status: str | None = None
    name_status: str | None = None
    messaging_limit: str | None = None
    platform_type: str | None = None
    status: str | None = None  # CONNECTED, PENDING, DISCONNECTED, FLAGGED, RESTRICTED, ...
    can_send_message: str | None = None  # health_status.can_send_message: AVAILABLE|LIMITED|BLOCKED
    health_entities: tuple[HealthEntity, ...] = ()

    @classmethod
    def from_graph(cls, data: Mapping[str, Any]) -> PhoneFacts:
        throughput = data.get("throughput")
        health = data.get("health_status")
        health = health if isinstance(health, Mapping) else {}
        entities = health.get("entities")
        return cls(
            display_phone_number=_text(data, "display_phone_number"),
            verified_name=_text(data, "verified_name"),
            quality_rating=_text(data, "quality_rating"),
            throughput_level=(
                str(throughput.get("level")) if isinstance(throughput, Mapping) else None
            ),
            code_verification_status=_text(data, "code_verification_status"),
            name_status=_text(data, "name_status"),
            messaging_limit=_messaging_limit(data),
            platform_type=_text(data, "platform_type"),
            status=_text(data, "status"),
            can_send_message=_text(health, "can_send_message"),
            health_entities=tuple(
                HealthEntity.from_graph(e)
                for e in (entities if isinstance(entities, list) else ())
                if isinstance(e, Mapping)
            ),
        )

    def not_available(self) -> tuple[HealthEntity, ...]:
        """The health entities that limit or block sending (what to name in a message)."""
        return tuple(
            e for e in self.health_entities if e.can_send_message not in (None, "AVAILABLE")
        )

    def to_status(self) -> dict[str, str]:
        """`status.phone`: what Meta reports about the number."""
        pairs = {key: getattr(self, name) for key, name in _STATUS_FIELDS.items()}
        return {k: v for k, v in pairs.items() if v is not None}

    @classmethod
    def from_status(cls, stored: Mapping[str, Any] | None) -> PhoneFacts | None:
        """The facts a previous check stored in `status.phone` (None: none stored). The
        number's health entities are not stored: only a check this pass has them."""
        if not stored:
            return None
        values = {name: _text(stored, key) for key, name in _STATUS_FIELDS.items()}
        return cls(**values)  # type: ignore[arg-type]  # every one a str | None field

    @property
    def high_throughput(self) -> bool:
        """Meta raised the number to its high throughput level (1,000 msg/s, not 80)."""
        return self.throughput_level == "HIGH"


# status.phone's keys, and the PhoneFacts fields they hold
_STATUS_FIELDS = {
    "displayPhoneNumber": "display_phone_number",
    "verifiedName": "verified_name",
    "qualityRating": "quality_rating",
    "throughputLevel": "throughput_level",
    "codeVerificationStatus": "code_verification_status",
    "nameStatus": "name_status",
    "messagingLimit": "messaging_limit",
    "platformType": "platform_type",
    "status": "status",
    "canSendMessage": "can_send_message",
}


@dataclass(frozen=True)
class Ownership:
    """What the paged read of the WABA's `phone_numbers` has shown so far. Pure: the caller
    feeds it each page (`after_page`) until it is `settled`."""

    found: bool = False
    pages: int = 0
    numbers: int = 0
    more: bool = True  # another page remains to be read

    def after_page(self, ids: Sequence[str], more: bool, phone_number_id: str) -> Ownership:
        return Ownership(
            self.found or phone_number_id in ids, self.pages + 1, self.numbers + len(ids), more
        )

    @property
    def settled(self) -> bool:
        return self.found or not self.more


def judge_phone(
    facts: PhoneFacts, phone_number_id: str, ownership: Ownership, waba_id: str
) -> Verdict:
    """Does the number exist, answer to this token, and belong to the tenant's WABA?

    The number's own node does not name its WABA: ownership is proven by finding the number
    in the WABA's `phone_numbers` list (read page by page; a token's granular scopes naming
    the WABA prove access to the WABA, not that the number is one of its numbers)."""
    if not ownership.found:
        where = f"the {ownership.numbers} numbers of WABA {waba_id}"
        if ownership.more:
            where = (
                f"the first {ownership.numbers} numbers of WABA {waba_id} "
                f"(read stopped after {ownership.pages} pages)"
            )
        return Verdict(
            "False",
            Reason.PHONE_NUMBER_NOT_IN_WABA,
            f"phone number {phone_number_id} does not belong to WABA {waba_id}: "
            f"it is not among {where}",
        )
    label = " ".join(
        x
        for x in (
            facts.display_phone_number,
            f"({facts.verified_name})" if facts.verified_name else None,
        )
        if x
    )
    return Verdict(
        "True",
        Reason.PHONE_NUMBER_VERIFIED,
        f"phone number {label or phone_number_id} verified, quality {facts.quality_rating or 'NA'}",
    )


# What a failed call was for (judge_error's `what`, also the start of its message).
TOKEN_CHECK = "token check"
PHONE_READ = "phone number"
WABA_NUMBERS = "WABA phone numbers"
PROOF_ADVICE = (
    "the Meta app requires appsecret_proof: put the app's id and secret in a Secret and name "
    "it in spec.rotation.appCredentialsSecretRef"
)


def proof_refused(info: GraphApiErrorInfo) -> bool:
    """Meta refused the call for a missing or wrong `appsecret_proof` (code 100: "API calls
    from the server require an appsecret_proof argument" / "Invalid appsecret_proof ...")."""
    return "appsecret_proof" in info.message.lower()


def judge_error(info: GraphApiErrorInfo, error_class: ErrorClass, what: str) -> Verdict:
    """A Graph API error on a token check, a number's read or its WABA's list, as a verdict."""
    text = (
        f"{what}: Meta error {info.code}"
        + (f"/{info.subcode}" if info.subcode is not None else "")
        + f": {info.message}"
    )
    if proof_refused(info):
        return Verdict("False", Reason.APP_SECRET_PROOF_REQUIRED, f"{text}; {PROOF_ADVICE}")
    if error_class is ErrorClass.CREDENTIAL:
        problem = token_problem(info.code, info.subcode)
        if what != TOKEN_CHECK and problem is TokenProblem.PERMISSION_DENIED:
            return Verdict("False", Reason.PHONE_NUMBER_NO_ACCESS, text)
        return Verdict("False", _PROBLEM_REASONS[problem], text)
    if error_class is ErrorClass.THROTTLE:
        return Verdict("Unknown", Reason.GRAPH_API_THROTTLED, text)
    not_found = error_class is ErrorClass.PERMANENT or info.code == 803
    if what == PHONE_READ and not_found:
        return Verdict("False", Reason.PHONE_NUMBER_NOT_FOUND, text)
    if what == WABA_NUMBERS and not_found:  # the WABA is unknown, or not this token's
        return Verdict("False", Reason.PHONE_NUMBER_NOT_IN_WABA, text)
    if error_class in (ErrorClass.RETRY, ErrorClass.UNKNOWN):
        return Verdict("Unknown", Reason.GRAPH_API_UNAVAILABLE, text)
    return Verdict("False", Reason.TOKEN_REJECTED, text)


def unavailable(message: str) -> Verdict:
    return Verdict("Unknown", Reason.GRAPH_API_UNAVAILABLE, message)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one Graph API check of a tenant's token and phone number."""

    token_verdict: Verdict
    phone_verdict: Verdict
    token: TokenFacts | None = None
    phone: PhoneFacts | None = None
    checked_at: datetime | None = None

    @property
    def transient(self) -> bool:
        return self.token_verdict.transient or self.phone_verdict.transient


def not_checked(message: str) -> Verdict:
    return Verdict("Unknown", Reason.NOT_CHECKED, message)
