"""`GET /{v}/{app-id}` with an app access token: what a platform's shared app is checked by.

Meta: "Access Tokens", app access tokens
(https://developers.facebook.com/docs/facebook-login/guides/access-tokens#apptokens): an app
access token is generated from the app secret with a server-to-server call, or the app id and
secret are passed together as `access_token={app-id}|{app-secret}` (the "alternate method"
Meta's Threads page spells out the same way:
https://developers.facebook.com/documentation/threads/get-started/app-access-tokens). The
app node answers the requested fields (`id`, `name`).

Refusals, as users saw them (UNCONFIRMED beyond that, docs/simulator.md):
- a secret that does not match: code 190 `Invalid OAuth access token signature.`, type
  OAuthException, HTTP 400 (amachang/facebook-node-sdk#10;
  oddbit/flutter_facebook_app_events#323 shows the HTTP 400);
- an app id Meta does not know: code 101 `Error validating application. Invalid
  application ID.` (codes.py);
- UNCONFIRMED: an app token of app A reading app B's node is refused here with 190, where Meta
  may answer B's public fields.
Other tokens on `GET /{node}` are the phone-number node's (server.get_phone).
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from whatsapp_simulator.faults import GraphError
from whatsapp_simulator.state import SimState

APP_FIELDS = ("id", "name")
BAD_SIGNATURE = "Invalid OAuth access token signature."


def is_app_token(raw: str) -> bool:
    app_id, bar, secret = raw.partition("|")
    return bool(bar and app_id.isdigit() and secret)


def app_node(request: web.Request, state: SimState, raw: str) -> dict[str, Any]:
    node = request.match_info["node"]
    app_id, _, secret = raw.partition("|")
    app = state.apps.get(app_id)
    if app is None:
        raise GraphError(101)
    if not hmac.compare_digest(app.secret.encode(), secret.encode()) or app_id != node:
        raise GraphError(190, message=BAD_SIGNATURE, status=400)
    asked = [f for f in (request.query.get("fields") or "id,name").split(",") if f]
    unknown = [f for f in asked if f not in APP_FIELDS]
    if unknown:
        raise GraphError(
            100, message=f"(#100) Tried accessing nonexisting field ({unknown[0]}) on node type "
            "(Application)",
        )  # fmt: skip
    values = {"id": app.id, "name": app.name}
    return {f: values[f] for f in asked}
