"""The JSON both AMQP messages of the contract travel as (heartbeats, tenant signals):
compact on the way out, and on the way in an object or nothing."""

from __future__ import annotations

import json
from typing import Any


def dump(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def load_object(data: bytes) -> dict[str, Any] | None:
    """The JSON object in `data`, or None if `data` is not one."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None
