"""Webhook subscriptions (the verification GET), who gets webhooks, and what tests inject:
counted at a receiver in this process and in the simulator's delivery log."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from aiohttp import web
from webhook_world import APP, PHONE, SECRET, WABA, configure, log, send

from whatsapp_simulator import (
    RunningSimulator,
    SimState,
    SimulatorAdmin,
    SimulatorThread,
    apply_seed,
)
from whatsapp_simulator.webhook_recorder import Recorder


@pytest.fixture
def sim_state(subscribed_sim_state: SimState) -> SimState:
    """The seeded world with the app's callback URL set and the WABA subscribed to it."""
    return subscribed_sim_state


# --- subscription -------------------------------------------------------------------------


async def test_subscribing_performs_the_verification_handshake(
    sim: RunningSimulator, admin: httpx.AsyncClient, recorder: Recorder
) -> None:
    sim.state.apps[APP].callback_url = ""
    body = {"callback_url": recorder.url, "verify_token": recorder.verify_token}
    answer = await admin.post(f"/apps/{APP}/webhook", json=body)
    assert answer.json() == {"app_id": APP, "callback_url": recorder.url, "verified": True}
    (get,) = recorder.gets
    assert get.query["hub.mode"] == "subscribe"
    assert get.query["hub.verify_token"] == recorder.verify_token
    assert get.query["hub.challenge"].isdigit()
    assert sim.state.apps[APP].callback_url == recorder.url


async def test_a_wrong_verify_token_is_not_subscribed(
    sim: RunningSimulator, admin: httpx.AsyncClient, recorder: Recorder
) -> None:
    sim.state.apps[APP].callback_url = ""
    body = {"callback_url": recorder.url, "verify_token": "wrong"}
    answer = await admin.post(f"/apps/{APP}/webhook", json=body)
    assert answer.status_code == 400
    assert answer.json() == {"error": "verification answered HTTP 403", "verified": False}
    assert "wrong" not in answer.text.replace('"wrong"', "")
    assert sim.state.apps[APP].callback_url == ""


async def test_an_answer_other_than_the_challenge_is_not_subscribed(
    sim: RunningSimulator, admin: httpx.AsyncClient
) -> None:
    async def sloppy(request: web.Request) -> web.Response:
        return web.Response(text=request.query["hub.challenge"] + "\n")

    app = web.Application()
    app.router.add_get("/hook", sloppy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        answer = await admin.post(f"/apps/{APP}/webhook", json={"callback_url": url})
        assert answer.status_code == 400
        assert answer.json()["error"] == "verification answer is not the challenge"
    finally:
        await runner.cleanup()


async def test_verify_false_sets_the_url_without_a_request(
    sim: RunningSimulator, admin: httpx.AsyncClient, recorder: Recorder
) -> None:
    url = "http://127.0.0.1:9/not-up-yet"
    body = {"callback_url": url, "verify_token": "t", "verify": False}
    assert (await admin.post(f"/apps/{APP}/webhook", json=body)).status_code == 200
    assert sim.state.apps[APP].callback_url == url
    assert recorder.requests == []
    assert (await admin.delete(f"/apps/{APP}/webhook")).status_code == 200
    assert sim.state.apps[APP].callback_url == ""


# --- who gets them ------------------------------------------------------------------------


async def test_no_subscription_no_webhooks(
    sim: RunningSimulator, http: httpx.AsyncClient, admin: httpx.AsyncClient, recorder: Recorder
) -> None:
    sim.state.wabas[WABA].subscribed_apps = []
    await send(http)
    await asyncio.sleep(0.2)
    assert recorder.posts == []
    assert (await admin.get("/webhooks/summary")).json()["total"] == 0


async def test_each_subscribed_app_gets_its_own_signed_copy(
    sim: RunningSimulator, http: httpx.AsyncClient, admin: httpx.AsyncClient, recorder: Recorder
) -> None:
    await admin.post("/apps", json={"id": "2222", "secret": "second-secret"})
    body = {"callback_url": recorder.url, "verify_token": recorder.verify_token}
    assert (await admin.post("/apps/2222/webhook", json=body)).status_code == 200
    subscribed = await admin.post(f"/wabas/{WABA}/subscribed_apps", json={"app_id": "2222"})
    assert subscribed.json()["subscribed_apps"] == [APP, "2222"]
    await send(http)
    await recorder.wait_for(lambda r: len(r.posts) >= 4)
    assert sum(p.signed_by(SECRET) for p in recorder.posts) == 2
    assert sum(p.signed_by("second-secret") for p in recorder.posts) == 2
    await admin.delete(f"/wabas/{WABA}/subscribed_apps/2222")
    assert sim.state.wabas[WABA].subscribed_apps == [APP]


async def test_sending_never_waits_for_the_receiver(
    http: httpx.AsyncClient, admin: httpx.AsyncClient, recorder: Recorder
) -> None:
    recorder.delay = 5.0  # every POST hangs for 5 s
    await configure(admin, concurrency=2)
    started = time.monotonic()
    for _ in range(5):
        await send(http)
    assert time.monotonic() - started < 2.5
    await recorder.wait_for(lambda r: len(r.posts) == 2)  # two in flight, the rest queued
    summary = (await admin.get("/webhooks/summary")).json()
    assert summary["total"] == 10
    assert summary["delivered"] == 0


async def test_reset_drops_what_is_queued(
    sim: RunningSimulator, http: httpx.AsyncClient, admin: httpx.AsyncClient, recorder: Recorder
) -> None:
    await configure(admin, sent_delay_ms=1000)
    await send(http)
    await admin.post("/reset")
    await asyncio.sleep(1.3)
    assert recorder.posts == []
    assert (await admin.get("/stats")).json()["webhooks"]["total"] == 0


# --- injected webhooks --------------------------------------------------------------------


async def test_inject_a_customer_message(admin: httpx.AsyncClient, recorder: Recorder) -> None:
    body = {"phone_number_id": PHONE, "from": "16505551234", "name": "Sheena Nelson",
            "type": "text", "text": {"body": "Does it come in another color?"}}  # fmt: skip
    answer = (await admin.post("/webhooks/inbound", json=body)).json()
    await recorder.wait_for(lambda r: len(r.posts) >= 1)
    (post,) = recorder.posts
    assert post.signed_by(SECRET)
    value = post.payload["entry"][0]["changes"][0]["value"]
    assert value["contacts"] == [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}]
    (message,) = value["messages"]
    assert message["from"] == "16505551234"
    assert message["id"] == answer["id"]
    assert message["type"] == "text"
    assert message["text"] == body["text"]
    assert isinstance(message["timestamp"], str)
    (entry,) = await log(admin, kind="message")
    assert entry["wamid"] == answer["id"]
    assert entry["delivered"]


NOTICES: list[dict[str, Any]] = [
    {"field": "phone_number_quality_update", "phone_number_id": PHONE, "event": "FLAGGED",
     "current_limit": "TIER_2K"},
    {"field": "phone_number_name_update", "phone_number_id": PHONE, "decision": "REJECTED",
     "rejection_reason": "NAME_FORMAT_UNACCEPTABLE"},
    {"field": "account_update", "waba_id": WABA, "event": "DISABLED_UPDATE",
     "ban_info": {"waba_ban_state": "DISABLE", "waba_ban_date": "April 17, 2025"}},
    {"field": "business_capability_update", "waba_id": WABA,
     "max_daily_conversations_per_business": 2000, "max_phone_numbers_per_waba": 25},
    {"field": "message_template_status_update", "waba_id": WABA, "event": "REJECTED",
     "message_template_name": "abandoned_cart", "reason": "INVALID_FORMAT"},
]  # fmt: skip


@pytest.mark.parametrize("body", NOTICES, ids=lambda b: b["field"])
async def test_inject_a_notice(
    admin: httpx.AsyncClient, recorder: Recorder, body: dict[str, Any]
) -> None:
    answer = await admin.post("/webhooks/notices", json=body)
    assert answer.status_code == 200, answer.text
    await recorder.wait_for(lambda r: len(r.posts) >= 1)
    (post,) = recorder.posts
    assert post.signed_by(SECRET)
    (entry,) = post.payload["entry"]
    assert entry["id"] == WABA
    assert isinstance(entry["time"], int)
    (change,) = entry["changes"]
    assert change["field"] == body["field"]
    assert change["value"] == answer.json()["value"]
    for key, given in body.items():
        if key not in ("field", "waba_id", "phone_number_id"):
            assert change["value"][key] == given
    (logged,) = await log(admin, kind="notice")
    assert logged["field"] == body["field"]
    assert logged["delivered"]


async def test_bad_injections_are_refused(admin: httpx.AsyncClient) -> None:
    no_phone = await admin.post("/webhooks/inbound", json={"phone_number_id": "1", "from": "1"})
    assert no_phone.status_code == 400
    no_event = {"field": "account_update", "waba_id": WABA}
    assert (await admin.post("/webhooks/notices", json=no_event)).status_code == 400
    no_number = {"field": "phone_number_quality_update", "waba_id": WABA, "event": "FLAGGED"}
    assert (await admin.post("/webhooks/notices", json=no_number)).status_code == 400


# --- seed, config and the synchronous client ----------------------------------------------


def test_a_seed_sets_callback_urls_subscriptions_and_knobs() -> None:
    state = apply_seed(
        SimState(),
        {
            "apps": [{"id": "7", "secret": "s", "callback_url": "http://h/w", "verify_token": "t"}],
            "wabas": [{"id": "8", "subscribed_apps": ["7"]}],
            "webhooks": {"read_ratio": 0.5, "seed": 3},
            "config": {"webhooks": {"failure_code": 131047}},
        },
    )
    assert (state.apps["7"].callback_url, state.apps["7"].verify_token) == ("http://h/w", "t")
    assert state.wabas["8"].subscribed_apps == ["7"]
    knobs = state.config.webhooks
    assert (knobs.read_ratio, knobs.seed, knobs.failure_code) == (0.5, 3, 131047)


async def test_webhook_knobs_through_the_config_routes(admin: httpx.AsyncClient) -> None:
    answer = await admin.put("/config", json={"webhooks": {"duplicate_ratio": 0.25}})
    assert answer.json()["webhooks"]["duplicate_ratio"] == 0.25
    assert (await admin.get("/webhooks/config")).json()["duplicate_ratio"] == 0.25
    refused = await admin.put("/webhooks/config", json={"duplicate_ratio": 2})
    assert refused.status_code == 400


async def test_the_synchronous_client(recorder: Recorder) -> None:
    """SimulatorAdmin's webhook methods against a simulator on its own thread (the
    receiver answers the handshake on this loop, so the blocking calls run in a thread)."""
    seed = {
        "apps": [{"id": APP, "secret": SECRET}],
        "wabas": [{"id": WABA}],
        "phones": [{"id": PHONE, "waba_id": WABA, "display_phone_number": "+1 555-0100"}],
    }
    with (
        SimulatorThread(apply_seed(SimState(), seed)) as server,
        SimulatorAdmin(server.url) as client,
    ):
        call = asyncio.to_thread
        assert (await call(client.set_webhook, APP, recorder.url, recorder.verify_token))[
            "verified"
        ]
        assert await call(client.subscribe_app, WABA, APP) == [APP]
        await call(client.webhook_config, sent_delay_ms=0, delivered_delay_ms=0)
        sent = await call(client.inject_inbound, PHONE, "16505551234", "hi", name="S")
        await call(client.inject_notice, "account_update", waba_id=WABA, event="X")
        drained = await call(client.drain_webhooks, 5.0)
        assert drained["idle"]
        messages = await call(client.webhooks, kind="message", payload=True)
        assert [m["wamid"] for m in messages] == [sent["id"]]
        assert messages[0]["payload"]["entry"][0]["id"] == WABA
        summary = await call(client.webhook_summary)
        assert summary["delivered"] == 2
        assert summary["by_field"] == {"messages": 1, "account_update": 1}
    assert len(recorder.posts) == 2
