"""Who is calling: the access token, `appsecret_proof`, and the checks Graph makes on them.

- Token: `Authorization: Bearer` (or `OAuth`), else `access_token` in the query or the body.
  https://developers.facebook.com/docs/graph-api/overview#access-tokens
- `appsecret_proof` = hex HMAC-SHA256(key=app secret, msg=access token), in the query or the
  body. A wrong proof is refused whenever one is sent; a missing one only when the app has
  "Require App Secret" on. Both answer code 100, type GraphMethodException, HTTP 400, with
  the exact texts users saw ("API calls from the server require an appsecret_proof argument",
  thephpleague/oauth2-facebook#17; "Invalid appsecret_proof provided in the API argument",
  facebook/facebook-python-business-sdk#528).
  https://developers.facebook.com/docs/graph-api/securing-requests#appsecret_proof
- App tokens (`{app-id}|{app-secret}`) need no proof.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from urllib.parse import parse_qs

from aiohttp import web

from whatsapp_simulator.codes import GRAPH_METHOD
from whatsapp_simulator.faults import UNPARSEABLE, GraphError, token_error
from whatsapp_simulator.state import SimState, Token
from whatsapp_simulator.versions import GraphVersion

MISSING_PROOF = "API calls from the server require an appsecret_proof argument"
INVALID_PROOF = "Invalid appsecret_proof provided in the API argument"


@dataclass(frozen=True)
class Call:
    """One Graph call's credentials and the version it is served with."""

    token: str
    proof: str
    version: GraphVersion


def appsecret_proof(secret: str, token: str) -> str:
    return hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()


async def body_params(request: web.Request) -> dict[str, str]:
    """Top-level string parameters of a JSON or form body (Graph reads both)."""
    if not request.can_read_body:
        return {}
    text = await request.text()  # aiohttp caches the body; handlers read it again
    if request.content_type == "application/x-www-form-urlencoded":
        return {k: v[0] for k, v in parse_qs(text).items()}
    if "access_token" not in text and "appsecret_proof" not in text:
        return {}  # the common case: no need to parse a send twice
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)}


async def credentials(request: web.Request) -> tuple[str, str]:
    """The caller's token and `appsecret_proof` ("" when absent)."""
    query = request.query
    body = await body_params(request) if request.method in ("POST", "DELETE") else {}
    token = ""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if value and scheme.lower() in ("bearer", "oauth"):
        token = value.strip()
    token = token or query.get("access_token", "") or body.get("access_token", "")
    return token, query.get("appsecret_proof", "") or body.get("appsecret_proof", "")


def check_proof(state: SimState, token: Token, proof: str) -> None:
    app = state.apps.get(token.app_id)
    if app is None:
        return
    if not proof:
        if app.require_app_secret_proof:
            raise GraphError(100, message=MISSING_PROOF, kind=GRAPH_METHOD)
        return
    if not hmac.compare_digest(proof.lower(), appsecret_proof(app.secret, token.token)):
        raise GraphError(100, message=INVALID_PROOF, kind=GRAPH_METHOD)


def authenticate(state: SimState, call: Call) -> Token:
    """A working user or system-user token with a good proof, or Meta's error."""
    if not call.token:
        raise GraphError(104)
    token = state.tokens.get(call.token)
    if token is None:
        raise GraphError(190, message=UNPARSEABLE)
    working(state, token)
    check_proof(state, token, call.proof)
    return token


def working(state: SimState, token: Token) -> None:
    """Code 190 with the subcode of a token that stopped working (expired, revoked...)."""
    subcode = token.failure(state.now())
    if subcode is not None:
        raise token_error(subcode, token.expires_at, state.now(), token.app_id)


def authenticate_caller(state: SimState, call: Call) -> None:
    """Accept a working token or an app token `{app_id}|{app_secret}`."""
    app_id, bar, secret = call.token.partition("|")
    if bar:
        app = state.apps.get(app_id)
        if app is None or not hmac.compare_digest(app.secret, secret):
            raise GraphError(190, message=UNPARSEABLE)
        return
    authenticate(state, call)


def require(token: Token, waba_id: str, *scopes: str) -> None:
    """Error 200 (HTTP 403) unless one of `scopes` is granted for `waba_id`."""
    if not any(token.covers(scope, waba_id) for scope in scopes):
        raise GraphError(200)
