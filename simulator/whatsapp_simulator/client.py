"""`SimulatorAdmin`: a small synchronous client for the simulator's admin API (/_sim/).

Tests and benchmarks use it to build the world, inject faults and read what was sent.
Failed admin calls raise `httpx.HTTPStatusError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from whatsapp_simulator.webhook_client import WebhookAdminMixin


def _clean(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class SimulatorAdmin(WebhookAdminMixin):
    """Webhook methods (set_webhook, subscribe_app, webhook_config, webhooks,
    webhook_summary, inject_inbound, inject_notice, inject_status, drain_webhooks) come
    from `WebhookAdminMixin` (webhook_client.py)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        """`base_url` is the simulator's root (`http://127.0.0.1:PORT`)."""
        self._http = httpx.Client(base_url=base_url.rstrip("/") + "/_sim", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SimulatorAdmin:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        http_timeout: float | None = None,
        **query: Any,
    ) -> Any:
        params = _clean(query) or None
        timeout = self._http.timeout if http_timeout is None else httpx.Timeout(http_timeout)
        response = self._http.request(method, path, json=body, params=params, timeout=timeout)
        response.raise_for_status()
        return response.json()

    # --- the world -------------------------------------------------------------------

    def healthz(self) -> bool:
        return bool(self._call("GET", "/healthz").get("ok"))

    def reset(self) -> None:
        self._call("POST", "/reset")

    def seed(self, data: Mapping[str, Any]) -> None:
        """Load a seed mapping (same shape as a seed file)."""
        self._call("POST", "/seed", data)

    def add_app(
        self, app_id: str, secret: str, name: str = "", *, require_app_secret_proof: bool = False
    ) -> None:
        body = {"id": app_id, "secret": secret, "name": name}
        self._call("POST", "/apps", {**body, "require_app_secret_proof": require_app_secret_proof})

    def patch_app(self, app_id: str, **fields: Any) -> dict[str, Any]:
        """Change an app: `name`, `secret`, `require_app_secret_proof`."""
        result: dict[str, Any] = self._call("PATCH", f"/apps/{app_id}", fields)
        return result

    def add_token(
        self,
        token: str,
        *,
        app_id: str,
        scopes: Sequence[str] = (),
        targets: Mapping[str, Sequence[str]] | None = None,
        type: str = "SYSTEM_USER",  # Meta's field name
        expires_at: int | None = None,
        expires_in: int | None = None,
        data_access_expires_at: int | None = None,
        user_id: str | None = None,
    ) -> dict[str, Any]:
        """Register a token; `expires_at` is unix seconds (0 = never), or use `expires_in`."""
        body = {
            "token": token,
            "app_id": app_id,
            "type": type,
            "scopes": list(scopes),
            "targets": {k: list(v) for k, v in (targets or {}).items()},
            "expires_at": expires_at,
            "expires_in": expires_in,
            "data_access_expires_at": data_access_expires_at,
            "user_id": user_id,
        }
        result: dict[str, Any] = self._call("POST", "/tokens", _clean(body))
        return result

    def revoke_token(self, token: str, subcode: int | None = None) -> dict[str, Any]:
        """Invalidate a token (by string or fingerprint): 190/467 unless another subcode."""
        result: dict[str, Any] = self._call(
            "POST", "/tokens/revoke", _clean({"token": token, "subcode": subcode})
        )
        return result

    def expire_token(self, token: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/tokens/expire", {"token": token})
        return result

    def token(self, token_or_fingerprint: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/tokens/{token_or_fingerprint}")
        return result

    def tokens(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/tokens")["tokens"]
        return result

    def add_waba(self, waba_id: str, name: str = "", business_id: str = "") -> None:
        self._call("POST", "/wabas", {"id": waba_id, "name": name, "business_id": business_id})

    def set_enforcement(
        self,
        node_id: str,
        code: int,
        *,
        details: str | None = None,
        countries: Sequence[str] | None = None,
        waba: bool = False,
    ) -> None:
        """Put a number (or with `waba=True` a WABA) into a Meta enforcement state: its sends
        fail with `code` (368, 130497, 131031, 131037, 131042, 131045, 131048, 133010) and
        health_status reads BLOCKED (LIMITED for 130497, limited to `countries` if given)."""
        body = _clean({"code": code, "details": details, "countries": countries})
        if countries is not None:
            body["countries"] = list(countries)
        self._call("PUT", f"/{'wabas' if waba else 'phones'}/{node_id}/enforcement", body)

    def clear_enforcement(self, node_id: str, *, waba: bool = False) -> None:
        self._call("DELETE", f"/{'wabas' if waba else 'phones'}/{node_id}/enforcement")

    def add_phone(
        self,
        phone_id: str,
        *,
        waba_id: str,
        display_phone_number: str = "",
        verified_name: str = "",
        quality_rating: str = "GREEN",
        throughput_level: str = "STANDARD",
        mps: int | None = None,
        pair_limit: bool | Mapping[str, float] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Add a number. `mps`: None by throughput level, 0 unlimited. `pair_limit`: False
        disables the pair limit, `{"burst": 45, "refill_seconds": 6}` overrides it."""
        body: dict[str, Any] = {
            "id": phone_id,
            "waba_id": waba_id,
            "display_phone_number": display_phone_number,
            "verified_name": verified_name,
            "quality_rating": quality_rating,
            "throughput_level": throughput_level,
            **fields,
        }
        if mps is not None:
            body["mps"] = mps
        if pair_limit is not None:
            body["pair_limit"] = pair_limit
        result: dict[str, Any] = self._call("POST", "/phones", body)
        return result

    def patch_phone(self, phone_id: str, **fields: Any) -> dict[str, Any]:
        """Change a number (any add_phone field; `mps=None` returns to the level's limit)."""
        result: dict[str, Any] = self._call("PATCH", f"/phones/{phone_id}", fields)
        return result

    def add_code(
        self,
        code: str,
        *,
        app_id: str,
        scopes: Sequence[str] = (),
        targets: Mapping[str, Sequence[str]] | None = None,
        ttl: float | None = None,
        token: str | None = None,
        **token_fields: Any,
    ) -> dict[str, Any]:
        """An Embedded Signup code; `token` fixes the string it will mint (else random)."""
        body = {
            "code": code,
            "app_id": app_id,
            "scopes": list(scopes),
            "targets": {k: list(v) for k, v in (targets or {}).items()},
            "ttl": ttl,
            "token": token,
            **token_fields,
        }
        result: dict[str, Any] = self._call("POST", "/codes", _clean(body))
        return result

    # --- behaviour -------------------------------------------------------------------

    def add_fault(
        self,
        action: str,
        *,
        kind: str = "any",
        phone_number_id: str | None = None,
        token: str | None = None,
        token_fingerprint: str | None = None,
        probability: float = 1.0,
        count: int | None = None,
        http_status: int | None = None,
        code: int | None = None,
        subcode: int | None = None,
        message: str | None = None,
        details: str | None = None,
        seconds: float | None = None,
        after_accept: bool = False,
    ) -> str:
        """Add a fault rule (actions: http_status, error_code, timeout, drop); its id."""
        body = {
            "action": action,
            "kind": kind,
            "phone_number_id": phone_number_id,
            "token": token,
            "token_fingerprint": token_fingerprint,
            "probability": probability,
            "count": count,
            "http_status": http_status,
            "code": code,
            "subcode": subcode,
            "message": message,
            "details": details,
            "seconds": seconds,
            "after_accept": after_accept,
        }
        return str(self._call("POST", "/faults", _clean(body))["id"])

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/faults")["faults"]
        return result

    def remove_fault(self, fault_id: str) -> None:
        self._call("DELETE", f"/faults/{fault_id}")

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def set_latency(
        self, default_ms: float = 0.0, per_endpoint: Mapping[str, float] | None = None
    ) -> None:
        self._call(
            "PUT", "/latency", {"default_ms": default_ms, "per_endpoint": dict(per_endpoint or {})}
        )

    def set_config(self, **config: Any) -> dict[str, Any]:
        """throttle_http_status, management_limit_per_hour, exchanged_token_lifetime,
        code_ttl, message_log_limit, require_registered_sender, strict_top_level_keys,
        rng_seed."""
        result: dict[str, Any] = self._call("PUT", "/config", config)
        return result

    def advance_clock(self, seconds: float) -> float:
        """Move the simulator's clock forward; returns its new time (unix seconds)."""
        return float(self._call("POST", "/clock", {"seconds": seconds})["now"])

    # --- observation -----------------------------------------------------------------

    def messages(
        self,
        phone_number_id: str | None = None,
        *,
        to: str | None = None,
        wa_id: str | None = None,
        since_index: int = 0,
    ) -> list[dict[str, Any]]:
        """Accepted messages; `to` matches the `to` as sent, `wa_id` the WhatsApp ID Meta
        delivers to (a `to` without `+` gets the sender's country code prepended)."""
        result: list[dict[str, Any]] = self._call(
            "GET",
            "/messages",
            phone_number_id=phone_number_id,
            to=to,
            wa_id=wa_id,
            since_index=since_index,
        )["messages"]
        return result

    def calls(self) -> dict[str, Any]:
        """Counts: total, by_kind, by_token, by_outcome, by_kind_token, by_kind_outcome."""
        result: dict[str, Any] = self._call("GET", "/calls")
        return result

    def stats(self) -> dict[str, Any]:
        """messages, throttled {130429, 131056, by_phone}, versions {asked: {served: n}},
        peak_window, faults_applied, faults_active."""
        result: dict[str, Any] = self._call("GET", "/stats")
        return result
