"""The admin API of the simulator's webhooks, under /_sim/ (docs/simulator.md, "Webhooks"):

    POST   /_sim/apps/{id}/webhook        {"callback_url", "verify_token", "verify": true}
    DELETE /_sim/apps/{id}/webhook
    POST   /_sim/wabas/{id}/subscribed_apps   {"app_id"}   (no token needed)
    DELETE /_sim/wabas/{id}/subscribed_apps/{app_id}
    GET    /_sim/webhooks   ?app_id= &field= &kind= &wamid= &status= &delivered= &since_id=
                            &payload=1  -> {"deliveries": [...], "summary": {...}}
    GET    /_sim/webhooks/summary   (also in GET /_sim/stats as "webhooks")
    GET    /_sim/webhooks/config ; PUT /_sim/webhooks/config {knob: value}
    POST   /_sim/webhooks/inbound  {"phone_number_id", "from", "name"?, "type"?, ...}
    POST   /_sim/webhooks/notices  {"field", "waba_id" | "phone_number_id", ...}
    POST   /_sim/webhooks/statuses {"wamid", "status", "error_code"?}
    POST   /_sim/webhooks/drain    {"timeout": 10}  -> waits until nothing is pending

Handlers find the sender through `request.config_dict` (the main application holds it).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from whatsapp_simulator.admin_http import json_object, not_found
from whatsapp_simulator.seed import apply_webhooks
from whatsapp_simulator.webhook_model import Delivery
from whatsapp_simulator.webhooks import WEBHOOKS_KEY, Webhooks


def _hooks(request: web.Request) -> Webhooks:
    return request.config_dict[WEBHOOKS_KEY]


async def set_webhook(request: web.Request) -> web.Response:
    """Subscribe an app's callback URL; with `verify` (default) only if the receiver answers
    the verification GET with the challenge. 400 with the reason otherwise."""
    hooks, app_id = _hooks(request), request.match_info["id"]
    if app_id not in hooks.state.apps:
        raise not_found("app")
    body = await json_object(request)
    ok, why = await hooks.subscribe(
        app_id,
        str(body["callback_url"]),
        str(body.get("verify_token") or ""),
        verify=bool(body.get("verify", True)),
    )
    if not ok:
        return web.json_response({"error": why, "verified": False}, status=400)
    url = hooks.state.apps[app_id].callback_url
    return web.json_response({"app_id": app_id, "callback_url": url, "verified": True})


async def remove_webhook(request: web.Request) -> web.Response:
    app = _hooks(request).state.apps.get(request.match_info["id"])
    if app is None:
        raise not_found("app")
    app.callback_url, app.verify_token = "", ""
    return web.json_response({"app_id": app.id, "callback_url": ""})


async def subscribe_app(request: web.Request) -> web.Response:
    """What `POST /{waba-id}/subscribed_apps` does with the app's token, without one."""
    state = _hooks(request).state
    waba = state.wabas.get(request.match_info["id"])
    if waba is None:
        raise not_found("waba")
    if request.method == "POST":
        app_id = str((await json_object(request))["app_id"])
        if app_id not in waba.subscribed_apps:
            waba.subscribed_apps.append(app_id)
    else:
        app_id = request.match_info["app_id"]
        waba.subscribed_apps = [a for a in waba.subscribed_apps if a != app_id]
    return web.json_response({"id": waba.id, "subscribed_apps": waba.subscribed_apps})


def _matches(delivery: Delivery, query: Any) -> bool:
    for key in ("app_id", "field", "kind", "wamid", "status", "phone_number_id", "waba_id"):
        if key in query and getattr(delivery, key) != query[key]:
            return False
    if "delivered" in query and delivery.delivered != (query["delivered"] in ("1", "true")):
        return False
    return "since_id" not in query or delivery.id > int(query["since_id"])


async def list_deliveries(request: web.Request) -> web.Response:
    book, query = _hooks(request).book, request.query
    payload = query.get("payload") in ("1", "true")
    found = [d.describe(payload=payload) for d in book.deliveries.values() if _matches(d, query)]
    return web.json_response({"deliveries": found, "summary": book.summary()})


async def summary(request: web.Request) -> web.Response:
    return web.json_response(_hooks(request).book.summary())


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(_hooks(request).book.config.describe())


async def put_config(request: web.Request) -> web.Response:
    hooks = _hooks(request)
    apply_webhooks(hooks.state, await json_object(request))
    return web.json_response(hooks.book.config.describe())


async def inbound(request: web.Request) -> web.Response:
    return web.json_response(_hooks(request).inject_inbound(await json_object(request)))


async def notices(request: web.Request) -> web.Response:
    return web.json_response(_hooks(request).inject_notice(await json_object(request)))


async def statuses(request: web.Request) -> web.Response:
    return web.json_response(_hooks(request).inject_status(await json_object(request)))


async def drain(request: web.Request) -> web.Response:
    """Wait until no delivery is pending (delivered or given up), at most `timeout` s."""
    hooks = _hooks(request)
    timeout = float((await json_object(request)).get("timeout", 10.0))
    deadline = time.monotonic() + timeout
    while any(d.pending for d in hooks.book.deliveries.values()):
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.02)
    summary = hooks.book.summary()
    return web.json_response({"idle": summary["pending"] == 0, "summary": summary})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/apps/{id}/webhook", set_webhook)
    router.add_delete("/apps/{id}/webhook", remove_webhook)
    router.add_post("/wabas/{id}/subscribed_apps", subscribe_app)
    router.add_delete("/wabas/{id}/subscribed_apps/{app_id}", subscribe_app)
    router.add_get("/webhooks", list_deliveries)
    router.add_get("/webhooks/summary", summary)
    router.add_get("/webhooks/config", get_config)
    router.add_put("/webhooks/config", put_config)
    router.add_post("/webhooks/inbound", inbound)
    router.add_post("/webhooks/notices", notices)
    router.add_post("/webhooks/statuses", statuses)
    router.add_post("/webhooks/drain", drain)
