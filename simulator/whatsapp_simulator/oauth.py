"""Token endpoints: `debug_token`, `oauth/access_token` (code and token exchange), `oauth/revoke`.

- debug_token: https://developers.facebook.com/docs/graph-api/reference/debug_token/ ; the
  answer's shape follows Meta's Embedded Signup example (`data.app_id, type, application,
  data_access_expires_at, expires_at, is_valid, issued_at, scopes, granular_scopes
  [{scope, target_ids}], user_id`), https://developers.facebook.com/docs/whatsapp/embedded-signup/manage-accounts
  `type` is USER, SYSTEM_USER, PAGE or APP. A granular scope lists `target_ids` only when it
  is limited to some assets (admin system users and some business tokens have none).
  Permissions that are not granular (`public_profile`, `email`) appear in `scopes` only.
- Code exchange: https://developers.facebook.com/docs/whatsapp/embedded-signup/implementation
- Token exchange/refresh: https://developers.facebook.com/docs/facebook-login/guides/access-tokens/get-long-lived
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from whatsapp_simulator.auth import Call, authenticate_caller, working
from whatsapp_simulator.faults import UNPARSEABLE, GraphError, token_error
from whatsapp_simulator.params import required
from whatsapp_simulator.state import SimState, Token

TOKEN_TYPES = frozenset({"USER", "SYSTEM_USER", "PAGE", "APP"})
NOT_GRANULAR = frozenset({"public_profile", "email"})


def token_view(state: SimState, token: Token) -> dict[str, Any]:
    app = state.apps.get(token.app_id)
    data: dict[str, Any] = {
        "app_id": token.app_id,
        "type": token.type,
        "application": (app.name or app.id) if app else token.app_id,
        "data_access_expires_at": token.data_access_expires_at,
        "expires_at": token.expires_at,
        "is_valid": True,
        "issued_at": token.issued_at,
        "scopes": list(token.scopes),
        "granular_scopes": [
            {"scope": s, "target_ids": list(token.targets[s])}
            if token.targets.get(s)
            else {"scope": s}
            for s in token.scopes
            if s not in NOT_GRANULAR
        ],
        "user_id": token.user_id,
    }
    if token.type == "USER":
        del data["issued_at"]  # Meta's Embedded Signup example of a USER token has none
    subcode = token.failure(state.now())
    if subcode is not None:
        err = token_error(subcode, token.expires_at, state.now(), token.app_id)
        data["is_valid"] = False
        data["error"] = {"code": 190, "subcode": subcode, "message": err.message}
    return data


async def debug_token(request: web.Request, state: SimState, call: Call) -> dict[str, Any]:
    authenticate_caller(state, call)
    input_token = request.query.get("input_token", "")
    if not input_token:
        raise required("input_token")
    token = state.tokens.get(input_token)
    if token is None:
        unknown = {"code": 190, "message": UNPARSEABLE}
        return {"data": {"error": unknown, "is_valid": False, "scopes": []}}
    return {"data": token_view(state, token)}


def check_client(state: SimState, request: web.Request) -> str:
    app = state.apps.get(request.query.get("client_id", ""))
    if app is None:
        raise GraphError(101)
    if request.query.get("client_secret") != app.secret:
        raise GraphError(1, message="Error validating client secret.")
    return app.id


def minted(token: Token) -> dict[str, Any]:
    out: dict[str, Any] = {"access_token": token.token, "token_type": "bearer"}
    if token.expires_at:
        out["expires_in"] = max(0, token.expires_at - token.issued_at)
    return out


def owned_token(state: SimState, value: str, app_id: str) -> Token:
    """A token named in a query parameter, which must exist and belong to `app_id`."""
    token = state.tokens.get(value)
    if token is None:
        raise GraphError(190, message=UNPARSEABLE)
    if token.app_id != app_id:
        raise GraphError(
            190, message=f"Error validating access token: token does not belong to app {app_id}"
        )
    return token


async def access_token(request: web.Request, state: SimState, call: Call) -> dict[str, Any]:
    query = request.query
    app_id = check_client(state, request)
    if query.get("grant_type") == "fb_exchange_token":
        old = owned_token(state, query.get("fb_exchange_token", ""), app_id)
        working(state, old)  # client_id and client_secret authenticate this call
        expiring = old.expires_at or query.get("set_token_expires_in_60_days") == "true"
        lifetime = state.config.exchanged_token_lifetime if expiring else None
        return minted(state.mint_token(old, app_id, lifetime))
    if "code" not in query:
        raise required("code")
    code = state.codes.get(query["code"])
    if code is None:
        raise GraphError(100, message="Invalid verification code format.")
    if code.template.app_id != app_id:
        raise GraphError(100, subcode=36008, message="Error validating verification code.")
    if code.used:
        raise GraphError(100, subcode=36009, message="This authorization code has been used.")
    if state.now() >= code.expires_at:
        raise GraphError(100, subcode=36007, message="This authorization code has expired.")
    code.used = True
    token = state.mint_token(code.template, app_id, None, code.template.token)
    token.expires_at = code.template.expires_at
    return minted(token)


async def revoke(request: web.Request, state: SimState, call: Call) -> dict[str, Any]:
    app_id = check_client(state, request)
    authenticate_caller(state, call)
    target = request.query.get("revoke_token", "")
    if not target:
        raise required("revoke_token")
    token = owned_token(state, target, app_id)
    if token.invalid_subcode is None:
        state.revoke_token(token)
    return {"success": True}
