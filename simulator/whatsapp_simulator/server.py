"""The simulator's Graph API: aiohttp routes that answer like Meta's WhatsApp Cloud API.

Every route goes through `graph_route`, which reads the caller's credentials, serves the
path's version (versions.py), applies latency, fault rules and call counting, and stamps
Meta's `facebook-api-version` header (the version a call was served with; Graph sends it on
every answer, https://developers.facebook.com/docs/graph-api/guides/versioning). The handlers
check tokens, grants and limits and build Meta's bodies.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from whatsapp_simulator import oauth
from whatsapp_simulator.admin import admin_app
from whatsapp_simulator.app_node import app_node, is_app_token
from whatsapp_simulator.auth import Call, authenticate, credentials, require
from whatsapp_simulator.enforcement import send_block
from whatsapp_simulator.faults import FaultRule, GraphError, inject
from whatsapp_simulator.nodes import (
    DEFAULT_LIST_FIELDS,
    DEFAULT_PHONE_FIELDS,
    FieldContext,
    page,
    phone_view,
    select,
    wanted_fields,
)
from whatsapp_simulator.numbers import wa_id_for
from whatsapp_simulator.params import required
from whatsapp_simulator.sends import check_read, check_send
from whatsapp_simulator.state import Phone, SimState, Token, fingerprint
from whatsapp_simulator.versions import ServedVersion, resolve, today_of, unknown_path
from whatsapp_simulator.webhooks import WEBHOOKS_KEY, install

STATE_KEY = web.AppKey("graph_state", SimState)
MESSAGING = "whatsapp_business_messaging"
MANAGEMENT = "whatsapp_business_management"
WHATSAPP_KINDS = frozenset({"messages", "phone", "phone_numbers", "subscribed_apps", "register"})
VERSION_HEADER = "facebook-api-version"

GraphFn = Callable[[web.Request, SimState, Call], Awaitable[dict[str, Any]]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


def manage(state: SimState, token: Token, waba_id: str) -> None:
    if not state.admit_management(token.app_id, waba_id):
        raise GraphError(80007, status=state.config.throttle_http_status)


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.text() or "{}")
    except ValueError:
        raise GraphError(100, message="(#100) Invalid JSON in the request body") from None
    if not isinstance(body, dict):
        raise GraphError(100, message="(#100) The request body must be a JSON object")
    return body


async def send_message(request: web.Request, state: SimState, call: Call) -> dict[str, Any]:
    """https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages"""
    token = authenticate(state, call)
    phone = find_phone(request, state)
    if MESSAGING not in token.scopes:
        raise GraphError(10)
    require(token, phone.waba_id, MESSAGING)
    body = await json_body(request)
    if "status" in body:  # mark as read / typing indicator share the endpoint
        check_read(body)
        return {"success": True}
    send = check_send(body, strict_keys=state.config.strict_top_level_keys)
    if state.config.require_registered_sender and not phone.registered:
        raise GraphError(133010)
    wa_id = wa_id_for(send.to, phone.display_phone_number)
    blocked = send_block(phone, state.wabas.get(phone.waba_id), wa_id)
    if blocked is not None:
        raise blocked
    throttled = state.admit_message(phone, wa_id)
    if throttled is not None:
        raise GraphError(throttled, status=state.config.throttle_http_status)
    message = state.record_message(phone.id, send.to, body, token.fingerprint, wa_id)
    # status webhooks (sent, delivered, ...) are queued, never awaited here (webhooks.py)
    request.config_dict[WEBHOOKS_KEY].message_accepted(phone, message)
    accepted: dict[str, Any] = {"id": message.wamid}
    if send.kind == "template":  # `message_status` on template sends: accepted, or held
        # (https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/template-pacing)
        held = body["template"]["name"] in state.config.held_templates
        accepted["message_status"] = "held_for_quality_assessment" if held else "accepted"
    return {
        "messaging_product": "whatsapp",
        "contacts": [{"input": body["to"], "wa_id": wa_id}],
        "messages": [accepted],
    }


def field_context(state: SimState, call: Call, token: Token, waba_id: str) -> FieldContext:
    return FieldContext(version=call.version, app_id=token.app_id, waba=state.wabas.get(waba_id))


async def get_phone(request: web.Request, state: SimState, call: Call) -> dict[str, Any]:
    if is_app_token(call.token):  # the app node, asked with an app access token (app_node.py)
        return app_node(request, state, call.token)
    token = authenticate(state, call)
    phone = find_phone(request, state)
    require(token, phone.waba_id, MANAGEMENT, MESSAGING)
    fields = wanted_fields(request.query, DEFAULT_PHONE_FIELDS, call.version)
    manage(state, token, phone.waba_id)
    return phone_view(phone, fields, field_context(state, call, token, phone.waba_id))


def owned_waba(request: web.Request, state: SimState, token: Token) -> str:
    node = request.match_info["node"]
    if node not in state.wabas:
        raise unsupported(request.method, node)
    require(token, node, MANAGEMENT)
    manage(state, token, node)
    return node


async def phone_numbers(request: web.Request, state: SimState, call: Call) -> dict[str, Any]:
    """The WABA's phone_numbers edge, paged by `limit`/`after`/`before` cursors.
    https://developers.facebook.com/docs/graph-api/reference/whats-app-business-account/phone_numbers/"""
    token = authenticate(state, call)
    waba_id = owned_waba(request, state, token)
    fields = wanted_fields(request.query, DEFAULT_LIST_FIELDS, call.version)
    owned = [p for p in state.phones.values() if p.waba_id == waba_id]
    ids = [p.id for p in select(owned, request.query)]
    chosen, paging = page(ids, request.query, lambda q: str(request.url.with_query(q)))
    context = field_context(state, call, token, waba_id)
    out: dict[str, Any] = {"data": [phone_view(state.phones[i], fields, context) for i in chosen]}
    if paging:
        out["paging"] = paging
    return out


async def subscribed_apps(request: web.Request, state: SimState, call: Call) -> dict[str, Any]:
    token = authenticate(state, call)
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


async def register(request: web.Request, state: SimState, call: Call) -> dict[str, Any]:
    """https://developers.facebook.com/docs/whatsapp/cloud-api/reference/registration"""
    token = authenticate(state, call)
    phone = find_phone(request, state)
    require(token, phone.waba_id, MANAGEMENT)
    body = await json_body(request)
    if body.get("messaging_product") != "whatsapp":
        raise required("messaging_product")
    deregister = request.path.endswith("/deregister")
    pin = str(body.get("pin", ""))
    if not deregister and (len(pin) != 6 or not pin.isdigit()):
        raise GraphError(100, message="(#100) Param pin must be 6 digits")
    if not state.admit_register(phone.id):
        raise GraphError(133016)
    phone.registered = not deregister
    return {"success": True}


def path_parts(request: web.Request) -> tuple[str, str]:
    """The first path segment (the version) and the rest of the path."""
    segment, _, rest = request.path.lstrip("/").partition("/")
    return segment, "/" + rest if rest else ""


async def unknown_route(request: web.Request, state: SimState, call: Call) -> dict[str, Any]:
    """A path no route serves: Graph's 2500 with the components after the node."""
    _, rest = path_parts(request)
    _, _, after_node = rest.lstrip("/").partition("/")
    raise unknown_path("/" + after_node if after_node else rest)


def serve_version(request: web.Request, state: SimState) -> ServedVersion:
    segment, rest = path_parts(request)
    return resolve(segment, rest, today_of(state.now()))


def graph_route(kind: str, fn: GraphFn) -> Handler:
    """Wrap a handler with versioning, latency, faults (before and after processing) and
    counting. Calls are counted per token fingerprint: the caller's, except for debug_token
    where it is the inspected `input_token`'s (fault token filters follow the same rule)."""
    whatsapp = kind in WHATSAPP_KINDS

    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE_KEY]
        raw, proof = await credentials(request)
        subject = request.query.get("input_token", "") if kind == "debug_token" else raw
        fp = fingerprint(subject) if subject else "-"
        delay = state.config.latency_for(kind)
        if delay > 0:
            await asyncio.sleep(delay)
        served: ServedVersion | None = None
        refused: GraphError | None = None
        try:
            served = serve_version(request, state)
        except GraphError as err:
            refused = err
        headers = {VERSION_HEADER: served.served.name} if served else {}
        node = request.match_info.get("node")
        faults = state.faults
        rule = faults.pick(kind, node, fp, after_accept=False) if faults.rules else None
        if rule is not None:
            response = await injected(state, (kind, fp), request, rule, None, whatsapp)
            response.headers.update(headers)
            return response
        try:
            if served is None:
                raise refused or unknown_path(request.path)
            state.versions[(served.requested, served.served.name)] += 1
            body = await fn(request, state, Call(raw, proof, served.served))
        except GraphError as err:
            state.count(kind, fp, str(err.code))
            return err.response(whatsapp, headers)
        response = web.json_response(body, headers=headers)
        rule = faults.pick(kind, node, fp, after_accept=True) if faults.rules else None
        if rule is None:
            state.count(kind, fp, "ok")
            return response
        return await injected(state, (kind, fp), request, rule, response, whatsapp)

    return handle


async def injected(
    state: SimState,
    counted_as: tuple[str, str],
    request: web.Request,
    rule: FaultRule,
    accepted: web.Response | None,
    whatsapp: bool,
) -> web.Response:
    """The fault's response, the call counted (kind, token fingerprint) with its outcome. A
    caller that hangs up during a fault's delay cancels the handler (handler_cancellation):
    it made the call all the same, so it is counted (as `timeout`, the only fault that
    waits), or the call log would miss exactly the calls a client gave up on."""
    try:
        response, outcome = await inject(request, rule, accepted, whatsapp)
    except asyncio.CancelledError:
        state.count(*counted_as, "timeout" if rule.action == "timeout" else "abandoned")
        raise
    state.count(*counted_as, outcome)
    return response


def build_app(state: SimState | None = None) -> web.Application:
    """The simulator as an aiohttp application: Graph routes, the admin API at /_sim/ and
    the webhook sender (webhooks.py)."""
    sim_state = state if state is not None else SimState()
    app = web.Application()
    app[STATE_KEY] = sim_state
    install(app, sim_state)  # the webhook sender, started and stopped with the app
    app.add_subapp("/_sim", admin_app(sim_state))
    routes = app.router
    version = "/{version}"
    routes.add_get(f"{version}/debug_token", graph_route("debug_token", oauth.debug_token))
    routes.add_get(f"{version}/oauth/access_token", graph_route("oauth", oauth.access_token))
    routes.add_get(f"{version}/oauth/revoke", graph_route("oauth", oauth.revoke))
    routes.add_post(f"{version}/{{node}}/messages", graph_route("messages", send_message))
    numbers = graph_route("phone_numbers", phone_numbers)
    routes.add_get(f"{version}/{{node}}/phone_numbers", numbers)
    subscribed = graph_route("subscribed_apps", subscribed_apps)
    for method in ("GET", "POST", "DELETE"):
        routes.add_route(method, f"{version}/{{node}}/subscribed_apps", subscribed)
    registration = graph_route("register", register)
    routes.add_post(f"{version}/{{node}}/register", registration)
    routes.add_post(f"{version}/{{node}}/deregister", registration)
    routes.add_get(f"{version}/{{node}}", graph_route("phone", get_phone))
    routes.add_route("*", "/{tail:.*}", graph_route("unknown", unknown_route))
    return app
