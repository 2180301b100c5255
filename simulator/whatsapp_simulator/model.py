"""The simulator's data model: apps, tokens, WABAs, numbers, messages, configuration.

Plain dataclasses; `state.py` holds them in a `SimState` and does the bookkeeping.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from whatsapp_simulator.webhook_model import WebhookConfig

NEVER = 0
STANDARD_MPS = 80
HIGH_MPS = 1000
PAIR_BURST = 45
PAIR_REFILL_SECONDS = 6.0
GC_FREEZE_EVERY = 2000
REGISTER_LIMIT = 10
REGISTER_WINDOW_SECONDS = 72 * 3600
SIXTY_DAYS_SECONDS = 60 * 86400
MANAGEMENT_WINDOW_SECONDS = 3600
EXPIRED_SUBCODE = 463
REVOKED_SUBCODE = 467


def fingerprint(token: str) -> str:
    """What logs and counters show instead of a token: sha256 hex, first 12 characters."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


@dataclass
class App:
    id: str
    secret: str
    name: str = ""
    # App Dashboard > Settings > Advanced > "Require App Secret": every call with this app's
    # user or system-user token must carry `appsecret_proof` (see auth.py)
    require_app_secret_proof: bool = False
    # App Dashboard > WhatsApp > Configuration: the webhook Callback URL and Verify Token
    # (webhooks.py); "" = no webhooks for this app
    callback_url: str = ""
    verify_token: str = ""


@dataclass
class Enforcement:
    """A Meta enforcement state on a number or WABA (enforcement.py): sends fail with `code`.

    `countries`: for 130497, the recipients' country calling codes it applies to (empty: all).
    """

    code: int
    details: str = ""
    countries: list[str] = field(default_factory=list)


@dataclass
class Token:
    token: str
    app_id: str
    type: str = "SYSTEM_USER"
    scopes: list[str] = field(default_factory=list)
    targets: dict[str, list[str]] = field(default_factory=dict)
    expires_at: int = NEVER
    data_access_expires_at: int = NEVER
    issued_at: int = 0
    user_id: str = ""
    invalid_subcode: int | None = None
    fingerprint: str = ""

    def __post_init__(self) -> None:
        self.fingerprint = fingerprint(self.token)

    def failure(self, now: float) -> int | None:
        """The code-190 subcode this token fails with at `now`; None while it works."""
        if self.invalid_subcode is not None:
            return self.invalid_subcode
        if self.expires_at and now >= self.expires_at:
            return EXPIRED_SUBCODE
        return None

    def covers(self, scope: str, waba_id: str) -> bool:
        """Granted `scope`, and either no target ids are listed or the WABA is one."""
        if scope not in self.scopes:
            return False
        targets = self.targets.get(scope)
        return not targets or waba_id in targets

    def describe(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Waba:
    id: str
    name: str = ""
    subscribed_apps: list[str] = field(default_factory=list)
    business_id: str = ""  # the owning business portfolio; "" reads as the WABA's own id
    enforcement: Enforcement | None = None


@dataclass
class Phone:
    id: str
    waba_id: str
    display_phone_number: str = ""
    verified_name: str = ""
    quality_rating: str = "GREEN"
    throughput_level: str = "STANDARD"
    mps: int | None = None  # None: from throughput_level; 0: no per-number limit
    pair_limit_enabled: bool = True
    pair_burst: int = PAIR_BURST
    pair_refill_seconds: float = PAIR_REFILL_SECONDS
    code_verification_status: str = "VERIFIED"
    name_status: str = "APPROVED"
    new_name_status: str = "NONE"
    platform_type: str = "CLOUD_API"
    # whatsapp_business_manager_messaging_limit (the portfolio's limit since Oct 2025)
    messaging_limit: str = "TIER_2K"
    messaging_limit_tier: str | None = None  # the deprecated per-number field; unset = null
    account_mode: str = "LIVE"
    is_official_business_account: bool = False
    is_pin_enabled: bool = True
    is_on_biz_app: bool = False
    is_preverified_number: bool = False
    search_visibility: str = "VISIBLE"
    eligibility_for_api_business_global_search: str = "ELIGIBLE"
    last_onboarded_time: str = ""  # Meta's "2025-01-10T08:30:00+0000"; set when added
    certificate: str = ""
    new_certificate: str = ""
    new_display_name: str = ""
    webhook_url: str = ""  # webhook_configuration.application when set
    username: str = ""  # the business username (2026); "" = none
    status: str = ""  # "" = CONNECTED when registered, else PENDING
    registered: bool = False
    enforcement: Enforcement | None = None

    def limit_mps(self) -> int:
        if self.mps is not None:
            return self.mps
        return HIGH_MPS if self.throughput_level == "HIGH" else STANDARD_MPS

    def describe(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AuthCode:
    """An Embedded Signup code: exchanged once for a token built from `template`."""

    code: str
    template: Token
    expires_at: float
    used: bool = False


@dataclass
class Message:
    index: int
    phone_number_id: str
    to: str  # the `to` as sent
    wa_id: str  # the WhatsApp ID Meta delivers it to (numbers.py)
    type: str
    body: dict[str, Any]
    wamid: str
    token_fingerprint: str
    time: float

    def describe(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Config:
    throttle_http_status: int = 400  # for 130429, 131056 and 80007; Meta has sent 400 and 429
    management_limit_per_hour: int = 0  # per (app, WABA); 0 = unlimited (Meta: 200)
    exchanged_token_lifetime: int = SIXTY_DAYS_SECONDS
    code_ttl: float = 30.0
    message_log_limit: int = 200_000  # messages kept for inspection; 0 = all
    # Meta refuses sends from a number that is not registered (133010); off by default so
    # seeds need not register their numbers first
    require_registered_sender: bool = False
    # refuse top-level send keys Meta's schema does not list (sends.py); on by default
    strict_top_level_keys: bool = True
    # template names whose sends Meta holds for quality assessment (template pacing)
    held_templates: list[str] = field(default_factory=list)
    default_latency_ms: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)  # webhook_model.py

    def latency_for(self, kind: str) -> float:
        """Seconds to wait before answering a request of this endpoint kind."""
        return self.latency_ms.get(kind, self.default_latency_ms) / 1000.0

    def describe(self) -> dict[str, Any]:
        return asdict(self)
