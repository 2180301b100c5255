"""What the simulated Meta sends as webhooks, and to whom.

Who: every app in the WABA's `subscribed_apps` (POST /{waba-id}/subscribed_apps) that has a
callback URL gets each webhook of that WABA and its numbers, signed with its own secret
(https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/overview,
paraphrased: retries go to every app subscribed to the WABA's webhooks and fields). Overrides
of the callback URL per WABA or number are not modelled.

What: statuses for every accepted send (`message_accepted`, planned by webhook_plan.py),
and what tests inject through the admin API (webhook_admin.py): customers' messages,
statuses, account-level notices. `subscribe` performs the dashboard's verification GET.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from whatsapp_simulator.state import Message, Phone, SimState
from whatsapp_simulator.webhook_delivery import Dispatcher
from whatsapp_simulator.webhook_model import MESSAGE, NOTICE, STATUS, Delivery, WebhookBook
from whatsapp_simulator.webhook_notices import NUMBER_FIELDS, notice_status, notice_value
from whatsapp_simulator.webhook_payloads import (
    conversation,
    digits,
    encode,
    inbound_message,
    inbound_value,
    messages_payload,
    new_wamid,
    notice_payload,
    pricing,
    status_item,
)
from whatsapp_simulator.webhook_plan import (
    PlannedStatus,
    carries_pricing,
    plan_statuses,
    pricing_category,
    window_failure,
)

CONVERSATION_SECONDS = 24 * 3600


class Webhooks:
    """The simulator's webhook sender: plans, logs (in `state.webhooks`) and dispatches."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self.dispatcher = Dispatcher(lambda: self.state.webhooks, self._target)

    @property
    def book(self) -> WebhookBook:
        return self.state.webhooks

    def _target(self, app_id: str) -> tuple[str, str] | None:
        app = self.state.apps.get(app_id)
        if app is None or not app.callback_url:
            return None
        return app.callback_url, app.secret

    def targets(self, waba_id: str) -> list[str]:
        """Apps that get this WABA's webhooks: subscribed, with a callback URL."""
        waba = self.state.wabas.get(waba_id)
        if waba is None:
            return []
        apps = self.state.apps
        return [a for a in waba.subscribed_apps if a in apps and apps[a].callback_url]

    def _post(self, fields: dict[str, Any], payload: dict[str, Any], delay: float) -> list[int]:
        """One delivery per target app of `fields["waba_id"]`; their ids."""
        body = encode(payload)
        ids = []
        for app_id in self.targets(fields["waba_id"]):
            delivery = Delivery(
                id=self.book.next_id(),
                app_id=app_id,
                body=body,
                payload=payload,
                created_at=self.state.now(),
                due_in=delay,
                **fields,
            )
            self.book.add(delivery)
            self.dispatcher.schedule(delivery, delay)
            ids.append(delivery.id)
        return ids

    # --- statuses ----------------------------------------------------------------------

    def message_accepted(self, phone: Phone, message: Message) -> list[int]:
        """Plan and queue the statuses of an accepted send (never waits for them)."""
        if not self.targets(phone.waba_id):
            return []
        config = self.book.config
        now = self.state.now()
        forced = window_failure(
            config,
            is_template=message.type == "template",
            last_inbound=self.book.inbound_seen.get((phone.id, message.wa_id)),
            now=now,
        )
        plan = plan_statuses(config, self.book.rng.random, forced_failure=forced)
        delivered = any(p.status == "delivered" for p in plan)
        conversation_id = secrets.token_hex(16)
        ids: list[int] = []
        for planned in plan:
            item = self._status(message, planned, now, conversation_id, delivered)
            ids += self._send_status(phone, message.wamid, item, planned)
        return ids

    def _status(
        self, message: Message, planned: PlannedStatus, now: float, conv: str, delivered: bool
    ) -> dict[str, Any]:
        config = self.book.config
        category = pricing_category(message.type, config)
        at = int(now + planned.delay)
        billed = planned.status != "failed" and carries_pricing(planned.status, delivered)
        conversation_obj = None
        if config.include_conversation and billed:
            expires = at + CONVERSATION_SECONDS if planned.status == "sent" else None
            conversation_obj = conversation(conv, category, expires)
        opaque = message.body.get("biz_opaque_callback_data")
        return status_item(
            wamid=message.wamid,
            status=planned.status,
            timestamp=at,
            recipient_id=message.wa_id,
            opaque=opaque if isinstance(opaque, str) else None,
            conversation_obj=conversation_obj,
            pricing_obj=pricing(category) if config.include_pricing and billed else None,
            error_code=planned.error_code,
        )

    def _send_status(
        self, phone: Phone, wamid: str, item: dict[str, Any], planned: PlannedStatus
    ) -> list[int]:
        payload = messages_payload(
            phone.waba_id, phone.display_phone_number, phone.id, {"statuses": [item]}
        )
        fields = {
            "field": "messages",
            "kind": STATUS,
            "waba_id": phone.waba_id,
            "phone_number_id": phone.id,
            "wamid": wamid,
            "status": planned.status,
            "duplicate": planned.duplicate,
        }
        return self._post(fields, payload, planned.delay)

    def inject_status(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """A status for a logged message: {"wamid", "status", "error_code"?, "delay_ms"?}."""
        wamid = str(data["wamid"])
        message = next((m for m in reversed(self.state.messages) if m.wamid == wamid), None)
        if message is None:
            raise KeyError(f"no logged message {wamid}")
        phone = self.state.phones[message.phone_number_id]
        status = str(data["status"])
        if status not in ("sent", "delivered", "read", "failed"):
            raise ValueError("status must be sent, delivered, read or failed")
        code: int | None = None
        if status == "failed":
            code = int(data.get("error_code") or self.book.config.failure_code)
        planned = PlannedStatus(status, float(data.get("delay_ms", 0)) / 1000.0, code)
        item = self._status(message, planned, self.state.now(), secrets.token_hex(16), True)
        return {"wamid": wamid, "deliveries": self._send_status(phone, wamid, item, planned)}

    # --- customers' messages -------------------------------------------------------------

    def inject_inbound(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """A customer's message to a number: {"phone_number_id", "from", "name"?, "type"?
        ("text"), "<type>": {...} ("text": {"body": ...}), "context"?, "id"?, "timestamp"?}."""
        phone = self.state.phones.get(str(data["phone_number_id"]))
        if phone is None:
            raise KeyError(f"no phone {data['phone_number_id']}")
        wa_id = digits(str(data["from"]))
        if not wa_id:
            raise ValueError("from must be the customer's WhatsApp id (digits)")
        kind = str(data.get("type", "text"))
        content = data.get(kind, {"body": data.get("body", "Hello")} if kind == "text" else None)
        if not isinstance(content, Mapping):
            raise ValueError(f"the message needs its {kind!r} object")
        now = self.state.now()
        timestamp = int(data.get("timestamp") or now)
        wamid = str(data.get("id") or new_wamid())
        message = inbound_message(
            wa_id=wa_id, wamid=wamid, timestamp=timestamp, kind=kind,
            content=dict(content), context=data.get("context"),
        )  # fmt: skip
        value = inbound_value(wa_id=wa_id, name=str(data.get("name", "")), message=message)
        payload = messages_payload(phone.waba_id, phone.display_phone_number, phone.id, value)
        self.book.inbound_seen[(phone.id, wa_id)] = now
        fields = {
            "field": "messages",
            "kind": MESSAGE,
            "waba_id": phone.waba_id,
            "phone_number_id": phone.id,
            "wamid": wamid,
            "status": kind,
        }
        ids = self._post(fields, payload, float(data.get("delay_ms", 0)) / 1000.0)
        return {"id": wamid, "wa_id": wa_id, "deliveries": ids}

    # --- account-level notices -----------------------------------------------------------

    def inject_notice(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """An account-level webhook (webhook_notices.py): {"field", "waba_id" or
        "phone_number_id", "value"? or the value's keys}."""
        field = str(data["field"])
        phone: Phone | None = None
        if data.get("phone_number_id"):
            phone = self.state.phones.get(str(data["phone_number_id"]))
            if phone is None:
                raise KeyError(f"no phone {data['phone_number_id']}")
        waba_id = str(data.get("waba_id") or (phone.waba_id if phone else ""))
        if waba_id not in self.state.wabas:
            raise KeyError(f"no WABA {waba_id!r}")
        if field in NUMBER_FIELDS and phone is None and "value" not in data:
            raise ValueError(f"{field} names a number: give phone_number_id")
        value = notice_value(
            field,
            data,
            display_phone_number=phone.display_phone_number if phone else "",
            verified_name=phone.verified_name if phone else "",
        )
        payload = notice_payload(waba_id, field, value, int(self.state.now()))
        fields = {
            "field": field,
            "kind": NOTICE,
            "waba_id": waba_id,
            "phone_number_id": phone.id if phone else "",
            "status": notice_status(value),
        }
        ids = self._post(fields, payload, float(data.get("delay_ms", 0)) / 1000.0)
        return {"field": field, "value": value, "deliveries": ids}

    # --- subscriptions -------------------------------------------------------------------

    async def subscribe(
        self, app_id: str, callback_url: str, verify_token: str, *, verify: bool = True
    ) -> tuple[bool, str]:
        """Set an app's callback URL and verify token. With `verify`, only after the
        verification GET succeeds (as the App Dashboard saves it only then)."""
        app = self.state.apps.get(app_id)
        if app is None:
            raise KeyError(f"no app {app_id}")
        if not callback_url.startswith(("http://", "https://")):
            raise ValueError("callback_url must be an http(s) URL")
        if verify:
            timeout = self.book.config.timeout_seconds
            ok, why = await self.dispatcher.verify(callback_url, verify_token, timeout)
            if not ok:
                return False, why
        app.callback_url, app.verify_token = callback_url, verify_token
        return True, ""


WEBHOOKS_KEY = web.AppKey("webhooks", Webhooks)


def install(app: web.Application, state: SimState) -> Webhooks:
    """Attach the webhook sender to the simulator's application (started with it)."""
    webhooks = Webhooks(state)
    app[WEBHOOKS_KEY] = webhooks

    async def start(_: web.Application) -> None:
        await webhooks.dispatcher.start()

    async def stop(_: web.Application) -> None:
        await webhooks.dispatcher.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return webhooks
