"""What the simulator's webhook tests (test_webhooks.py, test_webhook_admin.py) share: the
seed's app, WABA and number, webhook timings fast enough for a unit test, and the calls they
make. The world itself is conftest's `subscribed_sim_state`."""

from __future__ import annotations

from typing import Any

import httpx

APP, SECRET = "1111111111", "demo-app-secret"  # the seed's app
WABA, PHONE = "102290129340398", "106540352242922"
FAST = {
    "sent_delay_ms": 0,
    "delivered_delay_ms": 30,
    "read_delay_ms": 30,
    "duplicate_delay_ms": 10,
    "retry_base_ms": 20,
    "retry_max_ms": 50,
    "concurrency": 1,
    "seed": 1,
}


async def send(http: httpx.AsyncClient, **extra: Any) -> str:
    """A text message from PHONE (the body's fields overridden by `extra`); its wamid."""
    body: dict[str, Any] = {"messaging_product": "whatsapp", "to": "+15550001111"}
    body.update(type="text", text={"body": "hi"})
    response = await http.post(f"/{PHONE}/messages", json={**body, **extra})
    assert response.status_code == 200, response.text
    return str(response.json()["messages"][0]["id"])


async def log(admin: httpx.AsyncClient, **query: str) -> list[dict[str, Any]]:
    """The simulator's delivery log (GET /_sim/webhooks) filtered by `query`."""
    deliveries: list[dict[str, Any]] = (await admin.get("/webhooks", params=query)).json()[
        "deliveries"
    ]
    return deliveries


async def configure(admin: httpx.AsyncClient, **knobs: Any) -> None:
    response = await admin.put("/webhooks/config", json=knobs)
    assert response.status_code == 200, response.text
