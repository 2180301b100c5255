"""One routed change: what the receiver's HTTP side hands to its processing side.

Meta's payload is `{"object": "whatsapp_business_account", "entry": [{"id": <WABA id>,
"changes": [{"field": ..., "value": {...}}]}]}` (Webhooks overview,
https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components). The ingress
splits it into changes, routes each to the tenant(s) it concerns, and publishes each as one
persistent message on `whatsapp.webhooks` (key: its shard). The processor reads them back with
`parse_change`. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from whatsapp_contract.webhook import NumberEntry

FORMAT = 1


@dataclass(frozen=True)
class Change:
    app_id: str
    waba_id: str  # entry[].id
    field: str  # changes[].field: messages, account_update, ...
    value: dict[str, Any]  # changes[].value, as Meta sent it
    routes: tuple[NumberEntry, ...]  # the tenants it concerns (one for a number's change)
    received_at: float  # the receiver's wall clock

    @property
    def shard_key(self) -> str:
        """`metadata.phone_number_id` when the change names one, else the WABA id."""
        metadata = self.value.get("metadata")
        if isinstance(metadata, dict):
            phone = metadata.get("phone_number_id")
            if isinstance(phone, str) and phone:
                return phone
        return self.waba_id

    @property
    def change_id(self) -> str:
        """A stable id of the change's content (the AMQP message id): Meta's retry of one
        webhook yields the same ids, so logs and the broker show which copies are one."""
        digest = hashlib.sha256(
            json.dumps([self.app_id, self.waba_id, self.field, self.value], sort_keys=True).encode()
        ).hexdigest()
        return digest[:32]


def dump_change(change: Change) -> bytes:
    return json.dumps(
        {
            "format": FORMAT,
            "appId": change.app_id,
            "wabaId": change.waba_id,
            "field": change.field,
            "value": change.value,
            "routes": [r.model_dump(mode="json") for r in change.routes],
            "receivedAt": change.received_at,
        },
        separators=(",", ":"),
    ).encode()


def parse_change(data: bytes) -> Change | None:
    """The change in `data`, or None when it is not one (dead-lettered by the processor)."""
    try:
        body = json.loads(data)
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            return None
        app_id, waba_id, field = body["appId"], body["wabaId"], body["field"]
        value, routes, received = body["value"], body["routes"], body["receivedAt"]
        if not (
            isinstance(app_id, str) and isinstance(waba_id, str) and isinstance(field, str)
            and isinstance(value, dict) and isinstance(routes, list)
            and isinstance(received, int | float)
        ):  # fmt: skip
            return None
        return Change(
            app_id=app_id,
            waba_id=waba_id,
            field=field,
            value=value,
            routes=tuple(NumberEntry.model_validate(r, strict=False) for r in routes),
            received_at=float(received),
        )
    except (ValueError, KeyError, TypeError):
        return None
