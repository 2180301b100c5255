"""The simulator's Graph API: aiohttp routes that answer like Meta's WhatsApp Cloud API.

Every route goes through `graph_route`, which applies latency, fault rules and call
counting; the handlers only check tokens, grants and limits and build Meta's bodies.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from whatsapp_graph.simulator.admin import admin_app
from whatsapp_graph.simulator.faults import GraphError, inject, token_error
from whatsapp_graph.simulator.state import Phone, SimState, Token, fingerprint

STATE_KEY = web.AppKey("graph_state", SimState)
VERSION = r"{version:v\d+\.\d+}"
MESSAGING = "whatsapp_business_messaging"
MANAGEMENT = "whatsapp_business_management"
WHATSAPP_KINDS = frozenset({"messages", "phone", "phone_numbers", "subscribed_apps", "register"})
TEXT_LIMIT = 4096
PHONE_FIELDS: dict[str, Callable[[Phone], Any]] = {
    "id": lambda p: p.id,
    "display_phone_number": lambda p: p.display_phone_number,
    "verified_name": lambda p: p.verified_name,
    "quality_rating": lambda p: p.quality_rating,
    "code_verification_status": lambda p: p.code_verification_status,
    "name_status": lambda p: p.name_status,
    "throughput": lambda p: {"level": p.throughput_level},
    "platform_type": lambda p: p.platform_type,
    "whatsapp_business_manager_messaging_limit": lambda p: p.messaging_limit,
    "whatsapp_business_account": lambda p: {"id": p.waba_id},
    "status": lambda p: "CONNECTED" if p.registered else "PENDING",
}
DEFAULT_PHONE_FIELDS = ("id", "display_phone_number", "verified_name", "quality_rating")
DEFAULT_LIST_FIELDS = (*DEFAULT_PHONE_FIELDS, "code_verification_status", "throughput")

GraphFn = Callable[[web.Request, SimState, str], Awaitable[dict[str, Any]]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def caller_token(request: web.Request) -> str:
    """The caller's token: `Authorization: Bearer` (or `OAuth`) first, then `access_token`."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if value and scheme.lower() in ("bearer", "oauth"):
        return value.strip()
    return request.query.get("access_token", "")


def authenticate(state: SimState, raw: str) -> Token:
    if not raw:
        raise GraphError(104)
    token = state.tokens.get(raw)
    if token is None:
        raise GraphError(190)
    subcode = token.failure(state.now())
    if subcode is not None:
        raise token_error(subcode, token.expires_at, state.now())
    return token


def authenticate_caller(state: SimState, raw: str) -> None:
    """Accept a working token or an app token `{app_id}|{app_secret}`."""
    app_id, bar, secret = raw.partition("|")
    if bar:
        app = state.apps.get(app_id)
        if app is None or app.secret != secret:
            raise GraphError(190)
        return
    authenticate(state, raw)


def unsupported(method: str, node: str) -> GraphError:
    return GraphError(
        100,
        subcode=33,
        message=f"(#100) Unsupported {method.lower()} request. Object with ID '{node}' does "
        "not exist, cannot be loaded due to missing permissions, or does not support this "
        "operation. Please read the Graph API documentation at "
        "https://developers.facebook.com/docs/graph-api",
    )


def find_phone(request: web.Request, state: SimState) -> Phone:
    node = request.match_info["node"]
    phone = state.phones.get(node)
    if phone is None:
        raise unsupported(request.method, node)
    return phone


def require(token: Token, waba_id: str, *scopes: str) -> None:
    if not any(token.covers(scope, waba_id) for scope in scopes):
        raise GraphError(200)


def manage(state: SimState, token: Token, waba_id: str) -> None:
    if not state.admit_management(token.app_id, waba_id):
        raise GraphError(80007, status=state.config.throttle_http_status)


def wanted_fields(request: web.Request, default: tuple[str, ...]) -> list[str]:
    raw = request.query.get("fields", "")
    fields = [f.strip() for f in raw.split(",") if f.strip()] or list(default)
    for name in fields:
        if name not in PHONE_FIELDS:
            raise GraphError(
                100,
                message=f"(#100) Tried accessing nonexisting field ({name}) on node type "
                "(WhatsAppBusinessPhoneNumber)",
            )
    return fields


def phone_view(phone: Phone, fields: list[str]) -> dict[str, Any]:
    return {name: PHONE_FIELDS[name](phone) for name in fields}


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.text() or "{}")
    except ValueError:
        raise GraphError(100, message="(#100) Invalid JSON in the request body") from None
    if not isinstance(body, dict):
        raise GraphError(100, message="(#100) The request body must be a JSON object")
    return body


def missing(param: str) -> GraphError:
    return GraphError(100, message=f"(#100) The parameter {param} is required")


def check_message(body: dict[str, Any]) -> tuple[str, str]:
    """Meta's light checks on a send: product, recipient, type and its object."""
    product = body.get("messaging_product")
    if product != "whatsapp":
        if product is None:
            raise missing("messaging_product")
        raise GraphError(
            100,
            message="(#100) Param messaging_product must be one of {WHATSAPP} - got "
            f'"{product}".',
        )
    to, kind = body.get("to"), body.get("type")
    if not isinstance(to, str) or not to:
        raise missing("to")
    if not isinstance(kind, str) or not kind:
        raise missing("type")
    content = body.get(kind)
    if kind == "contacts":  # Meta's one type whose object is a list
        if not (isinstance(content, list) and content):
            raise missing(kind)
    elif not isinstance(content, dict):
        raise missing(kind)
    if kind == "text" and isinstance(content, dict):
        text = content.get("body")
        if not isinstance(text, str) or not text:
            raise missing("text['body']")
        if len(text) > TEXT_LIMIT:
            raise GraphError(
                100,
                message=f"(#100) Param text['body'] must be at most {TEXT_LIMIT} characters long.",
            )
    return to, kind


async def send_message(request: web.Request, state: SimState, raw: str) -> dict[str, Any]:
    token = authenticate(state, raw)
    phone = find_phone(request, state)
    if MESSAGING not in token.scopes:
        raise GraphError(10)
    require(token, phone.waba_id, MESSAGING)
    body = await json_body(request)
    to, _ = check_message(body)
    wa_id = "".join(c for c in to if c.isdigit())
    throttled = state.admit_message(phone, wa_id)
    if throttled is not None:
        raise GraphError(throttled, status=state.config.throttle_http_status)
    message = state.record_message(phone.id, to, body, token.fingerprint)
    return {
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": wa_id}],
        "messages": [{"id": message.wamid}],
    }


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
        ],
        "user_id": token.user_id,
    }
    subcode = token.failure(state.now())
    if subcode is not None:
        err = token_error(subcode, token.expires_at, state.now())
        data["is_valid"] = False
        data["error"] = {"code": 190, "subcode": subcode, "message": err.message}
    return data


async def debug_token(request: web.Request, state: SimState, raw: str) -> dict[str, Any]:
    authenticate_caller(state, raw)
    input_token = request.query.get("input_token", "")
    if not input_token:
        raise missing("input_token")
    token = state.tokens.get(input_token)
    if token is None:
        unknown = {"code": 190, "message": GraphError(190).message}
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
        raise GraphError(190)
    if token.app_id != app_id:
        raise GraphError(
            190, message=f"Error validating access token: token does not belong to app {app_id}"
        )
    return token


async def access_token(request: web.Request, state: SimState, raw: str) -> dict[str, Any]:
    query = request.query
    app_id = check_client(state, request)
    if query.get("grant_type") == "fb_exchange_token":
        old = owned_token(state, query.get("fb_exchange_token", ""), app_id)
        authenticate(state, old.token)
        expiring = old.expires_at or query.get("set_token_expires_in_60_days") == "true"
        lifetime = state.config.exchanged_token_lifetime if expiring else None
        return minted(state.mint_token(old, app_id, lifetime))
    if "code" not in query:
        raise missing("code")
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


async def revoke(request: web.Request, state: SimState, raw: str) -> dict[str, Any]:
    app_id = check_client(state, request)
    authenticate_caller(state, raw)
    target = request.query.get("revoke_token", "")
    if not target:
        raise missing("revoke_token")
    token = owned_token(state, target, app_id)
    if token.invalid_subcode is None:
        state.revoke_token(token)
    return {"success": True}


async def get_phone(request: web.Request, state: SimState, raw: str) -> dict[str, Any]:
    token = authenticate(state, raw)
    phone = find_phone(request, state)
    require(token, phone.waba_id, MANAGEMENT, MESSAGING)
    fields = wanted_fields(request, DEFAULT_PHONE_FIELDS)
    manage(state, token, phone.waba_id)
    return phone_view(phone, fields)


def owned_waba(request: web.Request, state: SimState, token: Token) -> str:
    node = request.match_info["node"]
    if node not in state.wabas:
        raise unsupported(request.method, node)
    require(token, node, MANAGEMENT)
    manage(state, token, node)
    return node


def cursor(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


async def phone_numbers(request: web.Request, state: SimState, raw: str) -> dict[str, Any]:
    waba_id = owned_waba(request, state, authenticate(state, raw))
    fields = wanted_fields(request, DEFAULT_LIST_FIELDS)
    data = [phone_view(p, fields) for p in state.phones.values() if p.waba_id == waba_id]
    out: dict[str, Any] = {"data": data}
    if data:
        ids = [p.id for p in state.phones.values() if p.waba_id == waba_id]
        out["paging"] = {"cursors": {"before": cursor(ids[0]), "after": cursor(ids[-1])}}
    return out


async def subscribed_apps(request: web.Request, state: SimState, raw: str) -> dict[str, Any]:
    token = authenticate(state, raw)
    waba = state.wabas[owned_waba(request, state, token)]
    if request.method == "POST":
        if token.app_id not in waba.subscribed_apps:
            waba.subscribed_apps.append(token.app_id)
        return {"success": True}
    if request.method == "DELETE":
        waba.subscribed_apps = [a for a in waba.subscribed_apps if a != token.app_id]
        return {"success": True}
    names = {a: state.apps[a].name if a in state.apps else a for a in waba.subscribed_apps}
    apps = [{"whatsapp_business_api_data": {"id": a, "name": n}} for a, n in names.items()]
    return {"data": apps}


async def register(request: web.Request, state: SimState, raw: str) -> dict[str, Any]:
    token = authenticate(state, raw)
    phone = find_phone(request, state)
    require(token, phone.waba_id, MANAGEMENT)
    body = await json_body(request)
    if body.get("messaging_product") != "whatsapp":
        raise missing("messaging_product")
    deregister = request.path.endswith("/deregister")
    pin = str(body.get("pin", ""))
    if not deregister and (len(pin) != 6 or not pin.isdigit()):
        raise GraphError(100, message="(#100) Param pin must be 6 digits")
    if not state.admit_register(phone.id):
        raise GraphError(133016)
    phone.registered = not deregister
    return {"success": True}


async def unknown_path(request: web.Request, state: SimState, raw: str) -> dict[str, Any]:
    raise GraphError(100, message=f"Unknown path components: {request.path}")


def graph_route(kind: str, fn: GraphFn) -> Handler:
    """Wrap a handler with latency, faults (before and after processing) and counting.

    Calls are counted per token fingerprint: the caller's, except for debug_token where it
    is the inspected `input_token`'s (fault token filters follow the same rule).
    """
    whatsapp = kind in WHATSAPP_KINDS

    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE_KEY]
        raw = caller_token(request)
        subject = request.query.get("input_token", "") if kind == "debug_token" else raw
        fp = fingerprint(subject) if subject else "-"
        delay = state.config.latency_for(kind)
        if delay > 0:
            await asyncio.sleep(delay)
        node = request.match_info.get("node")
        faults = state.faults
        rule = faults.pick(kind, node, fp, after_accept=False) if faults.rules else None
        if rule is not None:
            response, outcome = await inject(request, rule, None, whatsapp)
            state.count(kind, fp, outcome)
            return response
        try:
            body = await fn(request, state, raw)
        except GraphError as err:
            state.count(kind, fp, str(err.code))
            return err.response(whatsapp)
        response = web.json_response(body)
        rule = faults.pick(kind, node, fp, after_accept=True) if faults.rules else None
        if rule is None:
            state.count(kind, fp, "ok")
            return response
        response, outcome = await inject(request, rule, response, whatsapp)
        state.count(kind, fp, outcome)
        return response

    return handle


def build_app(state: SimState | None = None) -> web.Application:
    """The simulator as an aiohttp application: Graph routes plus the admin API at /_sim/."""
    sim_state = state if state is not None else SimState()
    app = web.Application()
    app[STATE_KEY] = sim_state
    app.add_subapp("/_sim", admin_app(sim_state))
    routes = app.router
    routes.add_get(f"/{VERSION}/debug_token", graph_route("debug_token", debug_token))
    routes.add_get(f"/{VERSION}/oauth/access_token", graph_route("oauth", access_token))
    routes.add_get(f"/{VERSION}/oauth/revoke", graph_route("oauth", revoke))
    routes.add_post(f"/{VERSION}/{{node}}/messages", graph_route("messages", send_message))
    routes.add_get(
        f"/{VERSION}/{{node}}/phone_numbers", graph_route("phone_numbers", phone_numbers)
    )
    subscribed = graph_route("subscribed_apps", subscribed_apps)
    for method in ("GET", "POST", "DELETE"):
        routes.add_route(method, f"/{VERSION}/{{node}}/subscribed_apps", subscribed)
    registration = graph_route("register", register)
    routes.add_post(f"/{VERSION}/{{node}}/register", registration)
    routes.add_post(f"/{VERSION}/{{node}}/deregister", registration)
    routes.add_get(f"/{VERSION}/{{node}}", graph_route("phone", get_phone))
    routes.add_route("*", "/{tail:.*}", graph_route("unknown", unknown_path))
    return app
