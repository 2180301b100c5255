"""From plain data (a seed file, an admin request body) to the simulator's model.

A seed file is YAML or JSON with optional top-level lists `apps`, `wabas`, `phones`,
`tokens`, `codes`, `faults` and mappings `config`, `latency`, `webhooks`; each item has the
same shape as the matching admin API request body (docs/simulator.md lists them).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from whatsapp_simulator import enforcement
from whatsapp_simulator.state import (
    NEVER,
    App,
    AuthCode,
    Config,
    Phone,
    SimState,
    Token,
    Waba,
    fingerprint,
)
from whatsapp_simulator.webhook_model import apply_webhook_config

PHONE_TEXT_FIELDS = (
    "display_phone_number",
    "verified_name",
    "quality_rating",
    "throughput_level",
    "code_verification_status",
    "name_status",
    "platform_type",
    "messaging_limit",
    "waba_id",
    "new_name_status",
    "account_mode",
    "search_visibility",
    "eligibility_for_api_business_global_search",
    "last_onboarded_time",
    "certificate",
    "new_certificate",
    "new_display_name",
    "webhook_url",
    "status",
    "username",
)
PHONE_FLAGS = (
    "is_official_business_account",
    "is_pin_enabled",
    "is_on_biz_app",
    "is_preverified_number",
    "registered",
)
QUALITY_RATINGS = frozenset({"GREEN", "YELLOW", "RED", "NA", "UNKNOWN"})
THROUGHPUT_LEVELS = frozenset({"STANDARD", "HIGH", "NOT_APPLICABLE"})
# debug_token's `type` (https://developers.facebook.com/docs/graph-api/reference/debug_token/)
TOKEN_TYPES = frozenset({"USER", "SYSTEM_USER", "PAGE", "APP"})


def _require(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None or value == "":
        raise ValueError(f"{key} is required")
    return str(value)


def app_from(data: Mapping[str, Any]) -> App:
    return App(
        id=_require(data, "id"),
        secret=_require(data, "secret"),
        name=str(data.get("name", "")),
        require_app_secret_proof=bool(data.get("require_app_secret_proof", False)),
        # set without the verification GET (the receiver may not be up yet): webhooks.py
        callback_url=str(data.get("callback_url") or ""),
        verify_token=str(data.get("verify_token") or ""),
    )


def patch_app(app: App, data: Mapping[str, Any]) -> App:
    """Change `name`, `secret` or `require_app_secret_proof` of an app."""
    if "name" in data:
        app.name = str(data["name"])
    if data.get("secret"):
        app.secret = str(data["secret"])
    if "require_app_secret_proof" in data:
        app.require_app_secret_proof = bool(data["require_app_secret_proof"])
    return app


def waba_from(data: Mapping[str, Any]) -> Waba:
    return Waba(
        id=_require(data, "id"),
        name=str(data.get("name", "")),
        business_id=str(data.get("business_id", "")),
        enforcement=enforcement.parse(data.get("enforcement")),
        subscribed_apps=[str(a) for a in data.get("subscribed_apps") or []],
    )


def _targets(data: Mapping[str, Any]) -> dict[str, list[str]]:
    raw = data.get("targets") or {}
    if not isinstance(raw, Mapping):
        raise ValueError("targets must map a scope to a list of ids")
    return {str(scope): [str(i) for i in ids] for scope, ids in raw.items()}


def _expires_at(data: Mapping[str, Any], now: float) -> int:
    if data.get("expires_in") is not None:
        return int(now) + int(data["expires_in"])
    return int(data.get("expires_at", NEVER))


def token_from(data: Mapping[str, Any], now: float, *, need_token: bool = True) -> Token:
    """A token (or, for codes, a template of one; then the token string is optional)."""
    scopes = data.get("scopes") or []
    if not isinstance(scopes, list):
        raise ValueError("scopes must be a list")
    kind = str(data.get("type", "SYSTEM_USER"))
    if kind not in TOKEN_TYPES:
        raise ValueError(f"type must be one of {sorted(TOKEN_TYPES)}")
    return Token(
        token=_require(data, "token") if need_token else str(data.get("token") or ""),
        app_id=_require(data, "app_id"),
        type=kind,
        scopes=[str(s) for s in scopes],
        targets=_targets(data),
        expires_at=_expires_at(data, now),
        data_access_expires_at=int(data.get("data_access_expires_at", NEVER)),
        issued_at=int(data.get("issued_at", 0)),
        user_id=str(data.get("user_id", "")),
    )


def code_from(data: Mapping[str, Any], now: float, default_ttl: float) -> AuthCode:
    ttl = float(data.get("ttl", default_ttl))
    return AuthCode(
        code=_require(data, "code"),
        template=token_from(data, now, need_token=False),
        expires_at=now + ttl,
    )


def phone_from(data: Mapping[str, Any]) -> Phone:
    phone = Phone(id=_require(data, "id"), waba_id=_require(data, "waba_id"))
    patch_phone(phone, data)
    return phone


def patch_phone(phone: Phone, data: Mapping[str, Any]) -> Phone:
    """Apply the given fields; `mps` null = by throughput level, 0 = unlimited;
    `pair_limit` false disables, true enables, {burst, refill_seconds} overrides."""
    for key in PHONE_TEXT_FIELDS:
        if key in data:
            setattr(phone, key, str(data[key]))
    if phone.quality_rating not in QUALITY_RATINGS:
        raise ValueError(f"quality_rating must be one of {sorted(QUALITY_RATINGS)}")
    if phone.throughput_level not in THROUGHPUT_LEVELS:
        raise ValueError(f"throughput_level must be one of {sorted(THROUGHPUT_LEVELS)}")
    if "mps" in data:
        phone.mps = None if data["mps"] is None else int(data["mps"])
    for flag in PHONE_FLAGS:
        if flag in data:
            setattr(phone, flag, bool(data[flag]))
    if "messaging_limit_tier" in data:
        tier = data["messaging_limit_tier"]
        phone.messaging_limit_tier = None if tier is None else str(tier)
    if "enforcement" in data:
        phone.enforcement = enforcement.parse(data["enforcement"])
    pair = data.get("pair_limit")
    if isinstance(pair, Mapping):
        phone.pair_limit_enabled = True
        phone.pair_burst = int(pair.get("burst", phone.pair_burst))
        phone.pair_refill_seconds = float(pair.get("refill_seconds", phone.pair_refill_seconds))
    elif pair is not None:
        phone.pair_limit_enabled = bool(pair)
    return phone


def fault_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """A fault rule body with a `token` filter turned into its fingerprint."""
    out = dict(data)
    token = out.pop("token", None)
    if token:
        out["token_fingerprint"] = fingerprint(str(token))
    return out


def apply_config(config: Config, data: Mapping[str, Any]) -> Config:
    if "throttle_http_status" in data:
        config.throttle_http_status = int(data["throttle_http_status"])
    if "management_limit_per_hour" in data:
        config.management_limit_per_hour = int(data["management_limit_per_hour"])
    if "exchanged_token_lifetime" in data:
        config.exchanged_token_lifetime = int(data["exchanged_token_lifetime"])
    if "message_log_limit" in data:
        config.message_log_limit = int(data["message_log_limit"])
    if "code_ttl" in data:
        config.code_ttl = float(data["code_ttl"])
    if "require_registered_sender" in data:
        config.require_registered_sender = bool(data["require_registered_sender"])
    if "strict_top_level_keys" in data:
        config.strict_top_level_keys = bool(data["strict_top_level_keys"])
    if "held_templates" in data:
        config.held_templates = [str(name) for name in data["held_templates"] or []]
    return config


def apply_webhooks(state: SimState, data: Mapping[str, Any]) -> SimState:
    """Webhook settings (webhook_model.WebhookConfig names); a `seed` reseeds their RNG."""
    apply_webhook_config(state.config.webhooks, data)
    if "seed" in data:
        state.webhooks.reseed()
    return state


def apply_latency(config: Config, data: Mapping[str, Any]) -> Config:
    """`default_ms` for every endpoint kind, `per_endpoint` {kind: ms} overrides."""
    if "default_ms" in data:
        config.default_latency_ms = float(data["default_ms"])
    if "per_endpoint" in data:
        per = data["per_endpoint"] or {}
        config.latency_ms = {str(k): float(v) for k, v in per.items()}
    return config


def apply_seed(state: SimState, data: Mapping[str, Any]) -> SimState:
    """Add everything a seed mapping describes to `state` (existing entries stay)."""
    now = state.now()
    config = data.get("config") or {}
    apply_config(state.config, config)
    apply_webhooks(state, config.get("webhooks") or {})
    apply_latency(state.config, data.get("latency") or {})
    apply_webhooks(state, data.get("webhooks") or {})
    for item in data.get("apps") or []:
        state.add_app(app_from(item))
    for item in data.get("wabas") or []:
        state.add_waba(waba_from(item))
    for item in data.get("phones") or []:
        state.add_phone(phone_from(item))
    for item in data.get("tokens") or []:
        state.add_token(token_from(item, now))
    for item in data.get("codes") or []:
        state.add_code(code_from(item, now, state.config.code_ttl))
    for item in data.get("faults") or []:
        state.faults.add(fault_data(item))
    return state


def load_seed(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON seed file (JSON is YAML, so one parser reads both)."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a seed file holds a mapping at the top level")
    return data
