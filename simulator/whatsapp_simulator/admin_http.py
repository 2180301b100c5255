"""What the simulator's two admin APIs (`admin`, `webhook_admin`) read and answer alike: a
request's JSON object body, and the 404 for an id the world does not hold. Its own module
because `admin` imports `webhook_admin` (for its routes)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object: {} without a body, ValueError when it is not an object."""
    if not request.can_read_body:
        return {}
    data = await request.json()
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def not_found(what: str) -> web.HTTPNotFound:
    """404 `{"error": "no such <what>"}`."""
    text = json.dumps({"error": f"no such {what}"})
    return web.HTTPNotFound(text=text, content_type="application/json")
