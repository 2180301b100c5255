"""What Meta says about a token and a phone number, and what that means for a tenant.

Pure: parses `debug_token` and phone-number payloads into typed facts and judges them
(`judge_token`, `judge_phone`, `judge_error`) into verdicts that become conditions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from whatsapp_graph.errors import (
    ErrorClass,
    GraphApiErrorInfo,
    TokenProblem,
    token_problem,
)

from .conditions import Reason, Status, rfc3339

REQUIRED_SCOPES = ("whatsapp_business_management", "whatsapp_business_messaging")


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
    return Verdict(
        "True", Reason.TOKEN_VALID, f"token valid ({facts.type or 'unknown type'}, {expiry})"
    )


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
    waba_id: str | None = None

    @classmethod
    def from_graph(cls, data: Mapping[str, Any]) -> PhoneFacts:
        def text(key: str) -> str | None:
            value = data.get(key)
            return str(value) if isinstance(value, str | int) and value != "" else None

        throughput = data.get("throughput")
        waba = data.get("whatsapp_business_account")
        limit = data.get("whatsapp_business_manager_messaging_limit")
        return cls(
            display_phone_number=text("display_phone_number"),
            verified_name=text("verified_name"),
            quality_rating=text("quality_rating"),
            throughput_level=(
                str(throughput.get("level")) if isinstance(throughput, Mapping) else None
            ),
            code_verification_status=text("code_verification_status"),
            name_status=text("name_status"),
            messaging_limit=(
                str(limit.get("current_limit", limit))
                if isinstance(limit, Mapping)
                else (str(limit) if limit else None)
            ),
            platform_type=text("platform_type"),
            waba_id=str(waba.get("id")) if isinstance(waba, Mapping) and waba.get("id") else None,
        )

    def status(self) -> dict[str, str]:
        pairs = {
            "displayPhoneNumber": self.display_phone_number,
            "verifiedName": self.verified_name,
            "qualityRating": self.quality_rating,
            "throughputLevel": self.throughput_level,
            "codeVerificationStatus": self.code_verification_status,
            "nameStatus": self.name_status,
            "messagingLimit": self.messaging_limit,
            "platformType": self.platform_type,
        }
        return {k: v for k, v in pairs.items() if v is not None}


def judge_phone(
    facts: PhoneFacts, phone_number_id: str, waba_numbers: tuple[str, ...] | None, waba_id: str
) -> Verdict:
    """Does the number exist, answer to this token, and belong to the tenant's WABA?

    Ownership comes from the number's own `whatsapp_business_account` when Meta returns it,
    else from the WABA's phone number list (`waba_numbers`).
    """
    owner_ok = (
        facts.waba_id == waba_id
        if facts.waba_id is not None
        else (waba_numbers is not None and phone_number_id in waba_numbers)
    )
    if not owner_ok:
        return Verdict(
            "False",
            Reason.PHONE_NUMBER_NOT_IN_WABA,
            f"phone number {phone_number_id} does not belong to WABA {waba_id}",
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


def judge_error(info: GraphApiErrorInfo, error_class: ErrorClass, what: str) -> Verdict:
    """A Graph API error on a token or phone check, as a verdict."""
    text = (
        f"{what}: Meta error {info.code}"
        + (f"/{info.subcode}" if info.subcode is not None else "")
        + f": {info.message}"
    )
    if error_class is ErrorClass.CREDENTIAL:
        problem = token_problem(info.code, info.subcode)
        if what == "phone number" and problem is TokenProblem.PERMISSION_DENIED:
            return Verdict("False", Reason.PHONE_NUMBER_NO_ACCESS, text)
        return Verdict("False", _PROBLEM_REASONS[problem], text)
    if error_class is ErrorClass.THROTTLE:
        return Verdict("Unknown", Reason.GRAPH_API_THROTTLED, text)
    if what == "phone number" and (error_class is ErrorClass.PERMANENT or info.code == 803):
        return Verdict("False", Reason.PHONE_NUMBER_NOT_FOUND, text)
    if error_class in (ErrorClass.RETRY, ErrorClass.UNKNOWN):
        return Verdict("Unknown", Reason.GRAPH_API_UNAVAILABLE, text)
    return Verdict("False", Reason.TOKEN_REJECTED, text)


def unavailable(message: str) -> Verdict:
    return Verdict("Unknown", Reason.GRAPH_API_UNAVAILABLE, message)


def not_checked(message: str) -> Verdict:
    return Verdict("Unknown", Reason.NOT_CHECKED, message)
