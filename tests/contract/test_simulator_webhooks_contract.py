"""The simulator's webhooks against Meta's documented payloads (fixtures_webhooks.py).

Each case builds Meta's example world (the pages' WABA, number, display number, verified
name), makes the simulator emit the documented kind of webhook to a receiver in this process
and compares what arrived with the page's example: the same keys and value types
recursively (`shape`), and the same values wherever the simulator was given the page's
inputs (whole payload for customers' messages and notices; statuses mint their own wamid
and times). Every POST must carry Meta's signature over its raw bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from whatsapp_simulator import ManualClock, SimState, apply_seed, run_simulator
from whatsapp_simulator.webhook_recorder import Received, Recorder, run_recorder

from .corpus import PHONE_NUMBER_ID, WABA_ID
from .fixtures_webhooks import (
    BUSINESS_DISPLAY_NUMBER,
    BY_NAME,
    CUSTOMER,
    EXAMPLES,
    WebhookExample,
)

APP_ID, APP_SECRET = "634974688087057", "contract-app-secret"
TOKEN = "EAAJBcontractWEBHOOKtoken0123456789"
SCOPES = ["whatsapp_business_management", "whatsapp_business_messaging"]
FAST = {"sent_delay_ms": 0, "delivered_delay_ms": 20, "read_delay_ms": 20, "concurrency": 1}
NOTICE_EXAMPLES = [e for e in EXAMPLES if e.field != "messages"]
NUMBER_FIELDS = {"phone_number_quality_update", "phone_number_name_update"}
# keys the simulator fills in from the number (webhook_notices.py)
FROM_THE_NUMBER = {"display_phone_number", "requested_verified_name", "rejection_reason"}


def shape(value: Any) -> Any:
    """Keys and value types, recursively (list items each)."""
    if isinstance(value, Mapping):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def seed(recorder: Recorder) -> dict[str, Any]:
    wabas = [WABA_ID, "524126980791429"]  # the capability page's example uses another WABA
    return {
        "apps": [{"id": APP_ID, "secret": APP_SECRET, "callback_url": recorder.url}],
        "wabas": [{"id": w, "subscribed_apps": [APP_ID]} for w in wabas],
        "phones": [
            {
                "id": PHONE_NUMBER_ID,
                "waba_id": WABA_ID,
                "display_phone_number": BUSINESS_DISPLAY_NUMBER,
                "verified_name": "Lucky Shrub",
                "pair_limit": False,
            }
        ],
        "tokens": [{"token": TOKEN, "app_id": APP_ID, "scopes": SCOPES}],
        "webhooks": FAST,
    }


@dataclass
class World:
    state: SimState
    recorder: Recorder
    url: str  # the simulator's


@asynccontextmanager
async def world(now: float = 1_750_030_073.0) -> AsyncIterator[World]:
    async with run_recorder() as recorder:
        state = apply_seed(SimState(clock=ManualClock(now)), seed(recorder))
        async with run_simulator(state=state) as sim:
            yield World(state, recorder, sim.url)


async def admin_post(w: World, path: str, body: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=w.url + "/_sim", timeout=10.0) as client:
        answer = await client.post(path, json=body)
    assert answer.status_code == 200, answer.text


def signed(post: Received) -> bool:
    digest = hmac.new(APP_SECRET.encode(), post.body, hashlib.sha256).hexdigest()
    return post.headers.get("X-Hub-Signature-256") == f"sha256={digest}"


async def send(w: World, body: dict[str, Any]) -> str:
    # v23.0: released on the simulator's clock, which shows the status page's June 2025
    url = f"{w.url}/v23.0/{PHONE_NUMBER_ID}/messages"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(timeout=10.0) as client:
        answer = await client.post(
            url, json={"messaging_product": "whatsapp", **body}, headers=headers
        )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["messages"][0]["id"])


async def status_post(recorder: Recorder, status: str) -> dict[str, Any]:
    """The first POST carrying a status `status` (waits for it)."""

    def found(r: Recorder) -> bool:
        return any(s == status for _, s in r.statuses())

    await recorder.wait_for(found)
    for post in recorder.posts:
        assert signed(post), "X-Hub-Signature-256 is not HMAC-SHA256(app secret, raw body)"
        assert post.headers["Content-Type"] == "application/json"
        payload: dict[str, Any] = post.payload
        if payload["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] == status:
            return payload
    raise AssertionError(f"no {status} status")


def first_status(payload: Mapping[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    return item


def same_envelope(got: Mapping[str, Any], want: Mapping[str, Any]) -> None:
    """Shape everywhere; and the values the simulator was seeded with (ids, metadata)."""
    assert shape(got) == shape(want), f"keys/types differ:\n{got}\nvs documented\n{want}"
    assert got["entry"][0]["id"] == want["entry"][0]["id"]
    got_value, want_value = got["entry"][0]["changes"][0], want["entry"][0]["changes"][0]
    assert got_value["field"] == want_value["field"]
    assert got_value["value"]["metadata"] == want_value["value"]["metadata"]


TEMPLATE = {"type": "template", "template": {"name": "promo", "language": {"code": "en_US"}}}
TEXT = {"type": "text", "text": {"body": "hi"}}


async def test_sent_with_conversation_and_pricing() -> None:
    example = BY_NAME["status_sent_with_conversation_and_pricing"]
    async with world() as w:
        apply_seed(w.state, {"webhooks": {"include_conversation": True}})
        await send(w, {"to": "+" + CUSTOMER, **TEMPLATE})
        got = await status_post(w.recorder, "sent")
    same_envelope(got, example.payload)
    item, want = first_status(got), first_status(example.payload)
    assert item["recipient_id"] == want["recipient_id"]
    assert item["pricing"] == want["pricing"]
    assert item["conversation"]["origin"] == want["conversation"]["origin"]


async def test_v24_status_has_neither_conversation_nor_pricing_once_priced() -> None:
    example = BY_NAME["status_v24_without_conversation_or_pricing"]
    async with world() as w:
        apply_seed(w.state, {"webhooks": {"read_ratio": 1.0}})
        await send(w, {"to": "+" + CUSTOMER, **TEXT})
        got = await status_post(w.recorder, "read")
    same_envelope(got, example.payload)


async def test_failed_status_carries_meta_error() -> None:
    example = BY_NAME["status_failed_131049"]
    async with world() as w:
        apply_seed(w.state, {"webhooks": {"failure_ratio": 1.0, "failure_code": 131049}})
        await send(w, {"to": "+" + CUSTOMER, **TEMPLATE})
        got = await status_post(w.recorder, "failed")
    same_envelope(got, example.payload)
    assert first_status(got)["errors"] == first_status(example.payload)["errors"]


async def test_status_echoes_biz_opaque_callback_data() -> None:
    example = BY_NAME["status_with_biz_opaque_callback_data"]
    async with world() as w:
        apply_seed(w.state, {"webhooks": {"read_ratio": 1.0}})
        opaque = first_status(example.payload)["biz_opaque_callback_data"]
        await send(w, {"to": "+" + CUSTOMER, **TEXT, "biz_opaque_callback_data": opaque})
        got = await status_post(w.recorder, "read")
    same_envelope(got, example.payload)
    assert first_status(got)["biz_opaque_callback_data"] == opaque


async def test_inbound_text_is_meta_example() -> None:
    example = BY_NAME["inbound_text"]
    message = example.value["messages"][0]
    body = {
        "phone_number_id": PHONE_NUMBER_ID,
        "from": message["from"],
        "name": example.value["contacts"][0]["profile"]["name"],
        "id": message["id"],
        "timestamp": int(message["timestamp"]),
        "type": "text",
        "text": message["text"],
    }
    async with world() as w:
        await admin_post(w, "/webhooks/inbound", body)
        await w.recorder.wait_for(lambda r: len(r.posts) == 1)
    (post,) = w.recorder.posts
    assert signed(post)
    assert post.payload == example.payload


@pytest.mark.parametrize("example", NOTICE_EXAMPLES, ids=lambda e: e.name)
async def test_notice_is_meta_example(example: WebhookExample) -> None:
    body: dict[str, Any] = {"field": example.field}
    if example.field in NUMBER_FIELDS:
        body["phone_number_id"] = PHONE_NUMBER_ID
        body.update({k: v for k, v in example.value.items() if k not in FROM_THE_NUMBER})
    else:
        body["waba_id"] = example.payload["entry"][0]["id"]
        body.update(example.value)
    async with world(now=float(example.time or 0)) as w:
        await admin_post(w, "/webhooks/notices", body)
        await w.recorder.wait_for(lambda r: len(r.posts) == 1)
    (post,) = w.recorder.posts
    assert signed(post)
    assert shape(post.payload) == shape(example.payload)
    assert post.payload == example.payload
