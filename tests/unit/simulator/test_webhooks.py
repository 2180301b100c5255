"""The simulator sends webhooks as Meta does: counted at a receiver in this process (the
independent point), and in the simulator's delivery log (GET /_sim/webhooks)."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from webhook_world import APP, PHONE, SECRET, WABA, configure, log, send

from whatsapp_simulator import RunningSimulator, SimState
from whatsapp_simulator.webhook_recorder import Recorder


@pytest.fixture
def sim_state(subscribed_sim_state: SimState) -> SimState:
    """The seeded world with the app's callback URL set and the WABA subscribed to it."""
    return subscribed_sim_state


# --- statuses -----------------------------------------------------------------------------


async def test_every_accepted_send_gets_sent_then_delivered_signed(
    http: httpx.AsyncClient, admin: httpx.AsyncClient, recorder: Recorder
) -> None:
    wamids = [await send(http, biz_opaque_callback_data=f"wo1:m-{i}|") for i in range(3)]
    await recorder.wait_for(lambda r: len(r.posts) >= 6)
    await asyncio.sleep(0.1)
    assert len(recorder.posts) == 6
    assert all(p.signed_by(SECRET) for p in recorder.posts)
    assert all(p.headers["Content-Type"] == "application/json" for p in recorder.posts)
    for i, wamid in enumerate(wamids):
        got = [s for w, s in recorder.statuses() if w == wamid]
        assert got == ["sent", "delivered"]
        for post in recorder.posts:
            value = post.payload["entry"][0]["changes"][0]["value"]
            item = value["statuses"][0]
            if item["id"] == wamid:
                assert item["biz_opaque_callback_data"] == f"wo1:m-{i}|"
    first = recorder.posts[0].payload
    assert first["object"] == "whatsapp_business_account"
    assert first["entry"][0]["id"] == WABA
    change = first["entry"][0]["changes"][0]
    assert change["field"] == "messages"
    assert change["value"]["metadata"] == {
        "display_phone_number": "15550100",
        "phone_number_id": PHONE,
    }
    item = change["value"]["statuses"][0]
    assert item["recipient_id"] == "15550001111"
    assert isinstance(item["timestamp"], str)
    assert item["timestamp"].isdigit()
    assert item["pricing"]["category"] == "service"
    entries = await log(admin, kind="status")
    assert len(entries) == 6
    assert all(e["delivered"] and e["attempts"] == 1 and e["last_code"] == 200 for e in entries)


async def test_no_opaque_data_no_echo(http: httpx.AsyncClient, recorder: Recorder) -> None:
    await send(http)
    await recorder.wait_for(lambda r: len(r.posts) >= 2)
    for post in recorder.posts:
        assert (
            "biz_opaque_callback_data"
            not in post.payload["entry"][0]["changes"][0]["value"]["statuses"][0]
        )


async def test_a_500_is_retried_until_200(
    http: httpx.AsyncClient, admin: httpx.AsyncClient, recorder: Recorder
) -> None:
    await configure(admin, delivered_delay_ms=1000)  # the retries come before `delivered`
    recorder.answers.extend([500, 503])
    wamid = await send(http)
    await recorder.wait_for(lambda r: len(r.posts) >= 4)
    sent = (await log(admin, wamid=wamid, status="sent"))[0]
    assert sent["answers"] == [500, 503, 200]
    assert sent["attempts"] == 3
    assert sent["delivered"]
    assert sent["first_attempt_at"] < sent["last_attempt_at"]
    bodies = {p.body for p in recorder.posts if b'"sent"' in p.body}
    assert len(bodies) == 1  # a retry sends the same bytes
    summary = (await admin.get("/stats")).json()["webhooks"]
    assert summary["failed_attempts"] == 2
    assert summary["delivered"] == 2


async def test_delivery_gives_up_after_max_age(
    http: httpx.AsyncClient, admin: httpx.AsyncClient, recorder: Recorder
) -> None:
    await configure(admin, max_age_seconds=0.15)
    recorder.answers.extend([500] * 100)
    await send(http)
    drained = (await admin.post("/webhooks/drain", json={"timeout": 5})).json()
    assert drained["idle"]
    assert drained["summary"]["gave_up"] == 2
    assert drained["summary"]["delivered"] == 0
    entries = await log(admin)
    assert all(e["gave_up"] and e["attempts"] >= 2 for e in entries)


async def test_a_receiver_that_is_down_is_retried(
    sim: RunningSimulator, http: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    sim.state.apps[APP].callback_url = f"http://127.0.0.1:{port}/webhook"
    await configure(admin, max_attempts=3)
    await send(http)
    await admin.post("/webhooks/drain", json={"timeout": 5})
    entries = await log(admin)
    assert len(entries) == 2
    assert all(e["answers"] == [None, None, None] and e["gave_up"] for e in entries)
    assert all(e["last_error"] for e in entries)


async def test_duplicates_and_reordering(
    http: httpx.AsyncClient, admin: httpx.AsyncClient, recorder: Recorder
) -> None:
    await configure(admin, duplicate_ratio=1.0, reorder_ratio=1.0, delivered_delay_ms=100)
    wamid = await send(http)
    await recorder.wait_for(lambda r: len(r.posts) >= 4)
    assert recorder.statuses() == [(wamid, s) for s in ("delivered", "delivered", "sent", "sent")]
    entries = await log(admin)
    assert sorted(e["duplicate"] for e in entries) == [False, False, True, True]
    assert (await admin.get("/webhooks/summary")).json()["duplicates"] == 2


async def test_read_ratio(
    http: httpx.AsyncClient, admin: httpx.AsyncClient, recorder: Recorder
) -> None:
    await configure(admin, read_ratio=1.0)
    wamid = await send(http)
    await recorder.wait_for(lambda r: len(r.posts) >= 3)
    assert recorder.statuses() == [(wamid, s) for s in ("sent", "delivered", "read")]
    read = recorder.posts[2].payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert "pricing" not in read  # it rode on `delivered`


@pytest.mark.parametrize(
    ("code", "title"), [(131026, "Message Undeliverable"), (131047, "Re-engagement message")]
)
async def test_async_failure(
    http: httpx.AsyncClient, admin: httpx.AsyncClient, recorder: Recorder, code: int, title: str
) -> None:
    await configure(admin, failure_ratio=1.0, failure_code=code)
    wamid = await send(http, biz_opaque_callback_data="opaque")
    await recorder.wait_for(lambda r: len(r.posts) >= 1)
    await asyncio.sleep(0.1)
    assert recorder.statuses() == [(wamid, "failed")]
    item = recorder.posts[0].payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert item["errors"][0]["code"] == code
    assert item["errors"][0]["title"] == item["errors"][0]["message"] == title
    assert item["biz_opaque_callback_data"] == "opaque"
    assert "pricing" not in item


async def test_the_service_window(
    http: httpx.AsyncClient, admin: httpx.AsyncClient, recorder: Recorder
) -> None:
    await configure(admin, service_window=True)
    closed = await send(http)
    await recorder.wait_for(lambda r: len(r.posts) >= 1)
    inbound = await admin.post(
        "/webhooks/inbound", json={"phone_number_id": PHONE, "from": "+1 555 000 1111"}
    )
    assert inbound.json()["wa_id"] == "15550001111"
    opened = await send(http)
    await recorder.wait_for(lambda r: len(r.posts) >= 4)
    got = recorder.statuses()
    assert (closed, "failed") in got
    assert (closed, "delivered") not in got
    assert [s for w, s in got if w == opened] == ["sent", "delivered"]


async def test_inject_a_late_status(
    http: httpx.AsyncClient, admin: httpx.AsyncClient, recorder: Recorder
) -> None:
    wamid = await send(http, biz_opaque_callback_data="x")
    await recorder.wait_for(lambda r: len(r.posts) >= 2)
    answer = await admin.post("/webhooks/statuses", json={"wamid": wamid, "status": "read"})
    assert len(answer.json()["deliveries"]) == 1
    await recorder.wait_for(lambda r: len(r.posts) >= 3)
    item = recorder.posts[2].payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert (item["status"], item["biz_opaque_callback_data"]) == ("read", "x")
