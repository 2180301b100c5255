"""One routed change: what the receiver's HTTP side hands to its processing side.

Meta's payload is `{"object": "whatsapp_business_account", "entry": [{"id": <WABA id>,
"changes": [{"field": ..., "value": {...}}]}]}` (Webhooks overview,
https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components). The ingress
splits it into changes, routes each to the tenant(s) it concerns, and publishes them as
persistent messages on `whatsapp.webhooks` (key: the shard): a batch of the changes bound for
one shard in one turn of the event loop (`batch.py`), `{"format": 2, "changes": [<change>,
...]}`, each change `dump_change`'s object (`"format": 1`). The processor reads a batch, or a
single change object, back with `parse_changes`. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from whatsapp_contract.webhook import NumberEntry

FORMAT = 1  # one change
BATCH_FORMAT = 2  # {"format": 2, "changes": [change, ...]}
_BATCH_HEAD = b'{"format":2,"changes":['


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


# One encoder for every change: json.dumps with any option builds a new one per call.
_encode = json.JSONEncoder(separators=(",", ":")).encode
# A route's JSON form, by the entry's id (entries live as long as the config that holds them;
# the identity check makes a reused id harmless). Bounded: cleared when a reload outgrew it.
_ROUTES: dict[int, tuple[NumberEntry, dict[str, Any]]] = {}
_ROUTES_MAX = 100_000


def _route(entry: NumberEntry) -> dict[str, Any]:
    cached = _ROUTES.get(id(entry))
    if cached is not None and cached[0] is entry:
        return cached[1]
    if len(_ROUTES) >= _ROUTES_MAX:
        _ROUTES.clear()
    dumped = entry.model_dump(mode="json")
    _ROUTES[id(entry)] = (entry, dumped)
    return dumped


def dump_change(change: Change) -> bytes:
    return _encode(
        {
            "format": FORMAT,
            "appId": change.app_id,
            "wabaId": change.waba_id,
            "field": change.field,
            "value": change.value,
            "routes": [_route(r) for r in change.routes],
            "receivedAt": change.received_at,
        }
    ).encode()


def batch_body(changes: list[bytes]) -> bytes:
    """One message holding `dump_change` outputs, in order (joined, not parsed again)."""
    return _BATCH_HEAD + b",".join(changes) + b"]}"


def parse_changes(data: bytes) -> tuple[list[Change], int]:
    """The changes in a message (a batch, or one change object), in order, and how many of
    its entries were not changes (dropped by the processor; never the whole batch for one)."""
    try:
        body = json.loads(data)
    except ValueError:
        return [], 1
    if isinstance(body, dict) and body.get("format") == BATCH_FORMAT:
        entries = body.get("changes")
        if not isinstance(entries, list):
            return [], 1
    else:
        entries = [body]
    changes = [c for c in map(_change, entries) if c is not None]
    return changes, len(entries) - len(changes)


def parse_change(data: bytes) -> Change | None:
    """The single change in `data`, or None when it is not one."""
    try:
        return _change(json.loads(data))
    except ValueError:
        return None


def _change(body: object) -> Change | None:
    try:
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
