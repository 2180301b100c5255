"""The simulator's admin API under /_sim/: set up the world, inject faults, read results.

JSON in and out. Bad input answers 400 `{"error": "..."}`; unknown ids 404.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from whatsapp_simulator import enforcement, webhook_admin
from whatsapp_simulator.admin_http import json_object, not_found
from whatsapp_simulator.seed import (
    app_from,
    apply_config,
    apply_latency,
    apply_seed,
    apply_webhooks,
    code_from,
    fault_data,
    patch_app,
    patch_phone,
    phone_from,
    token_from,
    waba_from,
)
from whatsapp_simulator.state import REVOKED_SUBCODE, SimState, Token

log = logging.getLogger(__name__)
ADMIN_STATE = web.AppKey("admin_state", SimState)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def bad_input(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)


def _state(request: web.Request) -> SimState:
    return request.app[ADMIN_STATE]


def _token(state: SimState, key: str) -> Token:
    token = state.find_token(key)
    if token is None:
        raise not_found("token")
    return token


def call_summary(state: SimState) -> dict[str, Any]:
    """Request counts by endpoint kind, token fingerprint, outcome, and pairs of them."""
    by_kind: Counter[str] = Counter()
    by_token: Counter[str] = Counter()
    by_outcome: Counter[str] = Counter()
    kind_token: dict[str, Counter[str]] = {}
    kind_outcome: dict[str, Counter[str]] = {}
    for (kind, fp, outcome), n in state.calls.items():
        by_kind[kind] += n
        by_token[fp] += n
        by_outcome[outcome] += n
        kind_token.setdefault(kind, Counter())[fp] += n
        kind_outcome.setdefault(kind, Counter())[outcome] += n
    return {
        "total": by_kind.total(),
        "by_kind": dict(by_kind),
        "by_token": dict(by_token),
        "by_outcome": dict(by_outcome),
        "by_kind_token": {k: dict(v) for k, v in kind_token.items()},
        "by_kind_outcome": {k: dict(v) for k, v in kind_outcome.items()},
    }


def stats(state: SimState) -> dict[str, Any]:
    totals: Counter[str] = Counter()
    by_phone: dict[str, dict[str, int]] = {}
    for (phone_id, code), n in state.throttled.items():
        totals[str(code)] += n
        by_phone.setdefault(phone_id, {})[str(code)] = n
    versions: dict[str, dict[str, int]] = {}
    for (requested, served), n in state.versions.items():
        versions.setdefault(requested, {})[served] = n
    return {
        "messages": state.accepted,
        "throttled": {"130429": totals["130429"], "131056": totals["131056"], "by_phone": by_phone},
        # calls per version asked for, by the version Meta served them with (versions.py)
        "versions": versions,
        # the most send attempts to one number in any 1-s window (those refused included)
        "peak_window": dict(state.peak_window),
        "faults_applied": state.faults.applied,
        "faults_active": len(state.faults.rules),
        # the webhook delivery log's counts (GET /_sim/webhooks lists the deliveries)
        "webhooks": state.webhooks.summary(),
    }


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def reset(request: web.Request) -> web.Response:
    _state(request).reset()
    return web.json_response({"ok": True})


async def seed(request: web.Request) -> web.Response:
    apply_seed(_state(request), await json_object(request))
    return web.json_response({"ok": True})


async def add_app(request: web.Request) -> web.Response:
    app = _state(request).add_app(app_from(await json_object(request)))
    return web.json_response({"id": app.id})


async def change_app(request: web.Request) -> web.Response:
    app = _state(request).apps.get(request.match_info["id"])
    if app is None:
        raise not_found("app")
    patch_app(app, await json_object(request))
    return web.json_response(
        {"id": app.id, "name": app.name, "require_app_secret_proof": app.require_app_secret_proof}
    )


async def add_token(request: web.Request) -> web.Response:
    state = _state(request)
    token = state.add_token(token_from(await json_object(request), state.now()))
    log.info("token %s added for app %s", token.fingerprint, token.app_id)
    return web.json_response(token.describe())


async def list_tokens(request: web.Request) -> web.Response:
    tokens = _state(request).tokens.values()
    return web.json_response({"tokens": [t.describe() for t in tokens]})


async def get_token(request: web.Request) -> web.Response:
    return web.json_response(_token(_state(request), request.match_info["key"]).describe())


async def revoke_token(request: web.Request) -> web.Response:
    state, body = _state(request), await json_object(request)
    token = _token(state, str(body["token"]))
    state.revoke_token(token, int(body.get("subcode") or REVOKED_SUBCODE))
    log.info("token %s invalidated (subcode %s)", token.fingerprint, token.invalid_subcode)
    return web.json_response(token.describe())


async def expire_token(request: web.Request) -> web.Response:
    state, body = _state(request), await json_object(request)
    token = _token(state, str(body["token"]))
    state.expire_token(token)
    log.info("token %s expired", token.fingerprint)
    return web.json_response(token.describe())


async def add_waba(request: web.Request) -> web.Response:
    waba = _state(request).add_waba(waba_from(await json_object(request)))
    return web.json_response({"id": waba.id, "name": waba.name})


async def add_phone(request: web.Request) -> web.Response:
    phone = _state(request).add_phone(phone_from(await json_object(request)))
    return web.json_response(phone.describe())


async def change_phone(request: web.Request) -> web.Response:
    phone = _state(request).phones.get(request.match_info["id"])
    if phone is None:
        raise not_found("phone")
    return web.json_response(patch_phone(phone, await json_object(request)).describe())


async def set_enforcement(request: web.Request) -> web.Response:
    """PUT sets a Meta enforcement state on a number or WABA, DELETE clears it."""
    state, kind, node = _state(request), request.match_info["kind"], request.match_info["id"]
    target = state.phones.get(node) if kind == "phones" else state.wabas.get(node)
    if target is None:
        raise not_found(kind[:-1])
    body = await json_object(request) if request.method == "PUT" else None
    target.enforcement = enforcement.parse(body)
    log.info("%s %s enforcement: %s", kind[:-1], node, target.enforcement)
    return web.json_response({"id": node, "enforcement": body})


async def add_code(request: web.Request) -> web.Response:
    state = _state(request)
    code = state.add_code(code_from(await json_object(request), state.now(), state.config.code_ttl))
    return web.json_response({"code": code.code, "expires_at": code.expires_at})


async def add_fault(request: web.Request) -> web.Response:
    rule = _state(request).faults.add(fault_data(await json_object(request)))
    return web.json_response({"id": rule.id, "rule": rule.describe()})


async def list_faults(request: web.Request) -> web.Response:
    rules = _state(request).faults.rules
    return web.json_response({"faults": [r.describe() for r in rules]})


async def clear_faults(request: web.Request) -> web.Response:
    _state(request).faults.clear()
    return web.json_response({"ok": True})


async def remove_fault(request: web.Request) -> web.Response:
    removed = _state(request).faults.remove(request.match_info["id"])
    return web.json_response({"removed": removed}, status=200 if removed else 404)


async def set_latency(request: web.Request) -> web.Response:
    config = apply_latency(_state(request).config, await json_object(request))
    return web.json_response(
        {"default_ms": config.default_latency_ms, "per_endpoint": config.latency_ms}
    )


async def set_config(request: web.Request) -> web.Response:
    state, body = _state(request), await json_object(request)
    if "rng_seed" in body:
        state.faults.seed(body["rng_seed"])
    apply_webhooks(state, body.get("webhooks") or {})
    return web.json_response(apply_config(state.config, body).describe())


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(_state(request).config.describe())


async def advance_clock(request: web.Request) -> web.Response:
    state, body = _state(request), await json_object(request)
    state.clock_offset += float(body["seconds"])
    return web.json_response({"now": state.now(), "offset": state.clock_offset})


async def messages(request: web.Request) -> web.Response:
    state, query = _state(request), request.query
    since = int(query.get("since_index", "0"))
    phone_id, to, wa_id = query.get("phone_number_id"), query.get("to"), query.get("wa_id")
    found = [
        m.describe()
        for m in state.messages_since(since)
        if (phone_id is None or m.phone_number_id == phone_id)
        and (to is None or m.to == to)
        and (wa_id is None or m.wa_id == wa_id)
    ]
    return web.json_response({"messages": found, "next_index": state.accepted})


async def calls(request: web.Request) -> web.Response:
    return web.json_response(call_summary(_state(request)))


async def get_stats(request: web.Request) -> web.Response:
    return web.json_response(stats(_state(request)))


def admin_app(state: SimState) -> web.Application:
    """The admin API as a sub-application, to mount at /_sim/."""
    app = web.Application(middlewares=[bad_input])
    app[ADMIN_STATE] = state
    r = app.router
    r.add_get("/healthz", healthz)
    r.add_post("/reset", reset)
    r.add_post("/seed", seed)
    r.add_post("/apps", add_app)
    r.add_patch("/apps/{id}", change_app)
    r.add_post("/tokens", add_token)
    r.add_get("/tokens", list_tokens)
    r.add_post("/tokens/revoke", revoke_token)
    r.add_post("/tokens/expire", expire_token)
    r.add_get("/tokens/{key}", get_token)
    r.add_post("/wabas", add_waba)
    r.add_post("/phones", add_phone)
    r.add_patch("/phones/{id}", change_phone)
    for kind in ("phones", "wabas"):
        r.add_put(f"/{{kind:{kind}}}/{{id}}/enforcement", set_enforcement)
        r.add_delete(f"/{{kind:{kind}}}/{{id}}/enforcement", set_enforcement)
    r.add_post("/codes", add_code)
    r.add_post("/faults", add_fault)
    r.add_get("/faults", list_faults)
    r.add_delete("/faults", clear_faults)
    r.add_delete("/faults/{id}", remove_fault)
    r.add_put("/latency", set_latency)
    r.add_put("/config", set_config)
    r.add_get("/config", get_config)
    r.add_post("/clock", advance_clock)
    r.add_get("/messages", messages)
    r.add_get("/calls", calls)
    r.add_get("/stats", get_stats)
    webhook_admin.add_routes(r)
    return app
