"""The webhook half of `SimulatorAdmin` (client.py): subscribe apps, tune the statuses,
inject customers' messages and notices, read the delivery log (webhook_admin.py's routes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode


class WebhookAdminMixin:
    """Mixed into `SimulatorAdmin`, which supplies `_call(method, path, body, **query)`."""

    def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        http_timeout: float | None = None,
        **query: Any,
    ) -> Any:
        raise NotImplementedError

    def set_webhook(
        self, app_id: str, callback_url: str, verify_token: str, *, verify: bool = True
    ) -> dict[str, Any]:
        """Set an app's callback URL. `verify` (Meta's dashboard does): the simulator GETs
        `?hub.mode=subscribe&hub.challenge=..&hub.verify_token=..` first and refuses (HTTP 400,
        `httpx.HTTPStatusError`) unless answered 200 with the challenge."""
        body = {"callback_url": callback_url, "verify_token": verify_token, "verify": verify}
        result: dict[str, Any] = self._call("POST", f"/apps/{app_id}/webhook", body)
        return result

    def remove_webhook(self, app_id: str) -> None:
        self._call("DELETE", f"/apps/{app_id}/webhook")

    def subscribe_app(self, waba_id: str, app_id: str) -> list[str]:
        """Add the app to the WABA's subscribed_apps (what the app's token would do)."""
        body = {"app_id": app_id}
        result = self._call("POST", f"/wabas/{waba_id}/subscribed_apps", body)
        return list(result["subscribed_apps"])

    def unsubscribe_app(self, waba_id: str, app_id: str) -> list[str]:
        result = self._call("DELETE", f"/wabas/{waba_id}/subscribed_apps/{app_id}")
        return list(result["subscribed_apps"])

    def webhook_config(self, **settings: Any) -> dict[str, Any]:
        """Change webhook knobs (none: just read them): read_ratio, failure_ratio,
        failure_code, failed_after_sent, duplicate_ratio, reorder_ratio, sent_delay_ms,
        delivered_delay_ms, read_delay_ms, duplicate_delay_ms, include_conversation,
        include_pricing, template_category, service_window, retry_base_ms, retry_max_ms,
        max_age_seconds, max_attempts, timeout_seconds, concurrency, log_limit, seed."""
        if not settings:
            current: dict[str, Any] = self._call("GET", "/webhooks/config")
            return current
        result: dict[str, Any] = self._call("PUT", "/webhooks/config", settings)
        return result

    def webhooks(self, *, payload: bool = False, **filters: Any) -> list[dict[str, Any]]:
        """The delivery log: id, app_id, field, kind (status|message|notice), waba_id,
        phone_number_id, wamid, status, duplicate, url, attempts, answers, last_code,
        last_error, delivered, gave_up, pending, created_at, first/last_attempt_at (and
        `payload` when asked). Filters: app_id, field, kind, wamid, status, phone_number_id,
        waba_id, delivered (bool), since_id."""
        query = {k: _query_value(v) for k, v in filters.items() if v is not None}
        if payload:
            query["payload"] = "1"
        path = "/webhooks?" + urlencode(query) if query else "/webhooks"
        result: list[dict[str, Any]] = self._call("GET", path)["deliveries"]
        return result

    def webhook_summary(self) -> dict[str, Any]:
        """total, delivered, pending, gave_up, attempts, failed_attempts, duplicates,
        by_field, delivered_by_status."""
        result: dict[str, Any] = self._call("GET", "/webhooks/summary")
        return result

    def inject_inbound(
        self,
        phone_number_id: str,
        from_wa_id: str,
        text: str | None = "Hello",
        *,
        name: str = "",
        message: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A customer's message to a number ({"id": wamid, "wa_id", "deliveries"}).
        `message`: another type, e.g. {"type": "image", "image": {"id": ..}}."""
        body: dict[str, Any] = {"phone_number_id": phone_number_id, "from": from_wa_id}
        body["name"] = name
        body.update(message if message is not None else {"type": "text", "text": {"body": text}})
        result: dict[str, Any] = self._call("POST", "/webhooks/inbound", {**body, **extra})
        return result

    def inject_notice(
        self,
        field: str,
        *,
        waba_id: str | None = None,
        phone_number_id: str | None = None,
        value: Mapping[str, Any] | None = None,
        **keys: Any,
    ) -> dict[str, Any]:
        """An account-level webhook: `value` whole, or its keys (event=, current_limit=,
        decision=, message_template_name=, ...; webhook_notices.py fills in the rest)."""
        body: dict[str, Any] = {"field": field, **keys}
        for key, given in (("waba_id", waba_id), ("phone_number_id", phone_number_id)):
            if given is not None:
                body[key] = given
        if value is not None:
            body["value"] = dict(value)
        result: dict[str, Any] = self._call("POST", "/webhooks/notices", body)
        return result

    def inject_status(
        self, wamid: str, status: str, *, error_code: int | None = None
    ) -> dict[str, Any]:
        """One more status webhook for an accepted message (e.g. a late `read`)."""
        body: dict[str, Any] = {"wamid": wamid, "status": status}
        if error_code is not None:
            body["error_code"] = error_code
        result: dict[str, Any] = self._call("POST", "/webhooks/statuses", body)
        return result

    def drain_webhooks(self, timeout: float = 10.0) -> dict[str, Any]:
        """Wait (server side, at most `timeout` s) until no delivery is pending:
        {"idle": bool, "summary": {...}}."""
        body = {"timeout": timeout}
        result: dict[str, Any] = self._call(
            "POST", "/webhooks/drain", body, http_timeout=timeout + 5.0
        )
        return result


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
