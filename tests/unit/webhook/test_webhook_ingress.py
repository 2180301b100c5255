"""The HTTP side in-process (aiohttp's test server), with a fake broker that records what it
confirmed: every answer names its status and the metric it counts. The same cases run against
the real process and RabbitMQ in tests/integration/test_webhook_receiver.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import test_utils
from prometheus_client import CollectorRegistry

from conftest import APP_A, APP_B
from whatsapp_contract.webhook import INGRESS_EXCHANGE, ingress_shard
from whatsapp_testkit.webhook import body_of, envelope, status_payload, status_value
from whatsapp_webhook.broker import PublishFailed
from whatsapp_webhook.change import Change, parse_changes
from whatsapp_webhook.config import Index
from whatsapp_webhook.ingress import Ingress
from whatsapp_webhook.metrics import WebhookMetrics
from whatsapp_webhook.signature import SIGNATURE_HEADER

SHARDS = 4
LIMIT = 4096


@dataclass
class FakeBroker:
    connected: bool = True
    fail: set[str] = field(default_factory=set)  # phone number ids whose publish is not confirmed
    # (exchange, routing key, the changes of the message, mandatory)
    confirmed: list[tuple[str, str, list[Change], bool]] = field(default_factory=list)
    delay: float = 0.0

    def changes(self) -> list[Change]:
        return [change for *_, changes, _ in self.confirmed for change in changes]

    async def publish(
        self, exchange: str, routing_key: str, body: bytes, *, message_id: str | None = None,
        headers: Mapping[str, Any] | None = None, mandatory: bool = False,
    ) -> None:  # fmt: skip
        await asyncio.sleep(self.delay)
        changes, invalid = parse_changes(body)
        assert not invalid, body
        if not self.connected or any(change.shard_key in self.fail for change in changes):
            raise PublishFailed("not confirmed")
        self.confirmed.append((exchange, routing_key, changes, mandatory))


@dataclass
class Store:
    index: Index | None


@dataclass
class World:
    client: test_utils.TestClient[Any, Any]
    ingress: Ingress
    broker: FakeBroker
    store: Store

    def metric(self, name: str, **labels: str) -> float:
        value = self.ingress.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def rejected(self, reason: str) -> float:
        return self.metric("whatsapp_webhook_rejected_total", reason=reason)

    async def post(
        self, path: str, payload: Any, *, signer: Any = APP_A, header: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> tuple[int, str]:  # fmt: skip
        body = body_of(payload)
        headers = dict(extra or {})
        if header is not None:
            headers[SIGNATURE_HEADER] = header
        elif signer is not None:
            headers[SIGNATURE_HEADER] = signer.sign(body)
        response = await self.client.post(path, data=body, headers=headers)
        return response.status, await response.text()


@pytest.fixture
async def world(index: Index) -> AsyncIterator[World]:
    store = Store(index)
    ingress = Ingress(store, WebhookMetrics(CollectorRegistry()), shards=SHARDS,
                      max_body_bytes=LIMIT, clock=lambda: 1_750_000_000.0)  # fmt: skip
    broker = FakeBroker()
    ingress.broker = broker
    async with test_utils.TestClient(test_utils.TestServer(ingress.application())) as client:
        yield World(client, ingress, broker, store)


STATUS = status_payload("3001", "2001", "wamid.1")


async def test_a_signed_status_is_confirmed_before_its_200(world: World) -> None:
    assert await world.post("/webhooks/1001", STATUS) == (200, "ok")
    ((exchange, key, (change,), mandatory),) = world.broker.confirmed
    assert [r.tenant_id for r in change.routes] == ["t2001"]
    assert (exchange, key) == (INGRESS_EXCHANGE, str(ingress_shard("2001", SHARDS)))
    assert mandatory
    assert world.metric("whatsapp_webhook_requests_total", route="/webhooks/{app_id}",
                        code="200") == 1  # fmt: skip
    assert world.metric("whatsapp_webhook_ingress_changes_total", field="messages") == 1


async def test_the_app_less_route_finds_the_signing_app(world: World) -> None:
    payload = envelope("3002", ("messages", status_value("2003", "wamid.b")))
    assert await world.post("/webhook", payload, signer=APP_B) == (200, "ok")
    (change,) = world.broker.changes()
    assert change.app_id == "1002"


@pytest.mark.parametrize(
    ("path", "signer", "header", "payload", "status", "reason"),
    [
        pytest.param("/webhooks/1001", None, None, STATUS, 401, "unsigned", id="unsigned"),
        pytest.param("/webhooks/1001", None, "", STATUS, 401, "unsigned", id="empty signature"),
        pytest.param("/webhooks/1001", APP_B, None, STATUS, 403, "bad_signature",
                     id="signed by another app"),
        pytest.param("/webhooks/1001", None, "sha256=" + "0" * 64, STATUS, 403, "bad_signature",
                     id="a wrong signature"),
        pytest.param("/webhooks/1001", None, "garbage", STATUS, 403, "bad_signature",
                     id="not a signature"),
        pytest.param("/webhook", None, "sha256=" + "0" * 64, STATUS, 403, "bad_signature",
                     id="app-less route: no app's signature"),
        pytest.param("/webhooks/9999", APP_A, None, STATUS, 404, "unknown_app",
                     id="an app not configured"),
        pytest.param("/webhooks/1001", APP_A, None, b"{not json", 400, "not_json", id="not JSON"),
        pytest.param("/webhooks/1001", APP_A, None, b"\xff\xfe", 400, "not_json",
                     id="not UTF-8"),
        pytest.param("/webhooks/1001", APP_A, None, {"object": "whatsapp_business_account"}, 400,
                     "bad_shape", id="not Meta's shape"),
        pytest.param("/webhooks/1001", APP_A, None, b"x" * (LIMIT + 1), 413, "too_large",
                     id="larger than the limit"),
    ],
)  # fmt: skip
async def test_rejections(
    world: World, path: str, signer: Any, header: str | None, payload: Any, status: int,
    reason: str,
) -> None:  # fmt: skip
    got, _ = await world.post(path, payload, signer=signer, header=header)
    assert got == status
    assert world.rejected(reason) == 1
    assert world.broker.confirmed == []
    route = "/webhook" if path == "/webhook" else "/webhooks/{app_id}"
    assert world.metric("whatsapp_webhook_requests_total", route=route, code=str(status)) == 1


async def test_a_chunked_body_is_cut_off_at_the_limit(world: World) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(LIMIT // 1024 + 2):
            yield b" " * 1024

    response = await world.client.post(
        "/webhooks/1001", data=chunks(), headers={SIGNATURE_HEADER: APP_A.sign(b"")}
    )
    assert response.status == 413
    assert world.rejected("too_large") == 1


async def test_a_body_exactly_at_the_limit_is_read(world: World) -> None:
    body = body_of(STATUS)
    padded = body + b" " * (LIMIT - len(body))
    assert await world.post("/webhooks/1001", padded) == (200, "ok")


async def test_an_unknown_number_is_answered_200_and_dropped(world: World) -> None:
    payload = status_payload("3001", "2999", "wamid.x")
    assert await world.post("/webhooks/1001", payload) == (200, "ok")
    assert world.broker.confirmed == []
    assert world.metric("whatsapp_webhook_dropped_total", reason="unknown_number") == 1


async def test_another_apps_number_is_dropped(world: World) -> None:
    payload = envelope("3002", ("messages", status_value("2003", "wamid.b")))
    assert await world.post("/webhooks/1001", payload) == (200, "ok")
    assert world.broker.confirmed == []
    assert world.metric("whatsapp_webhook_dropped_total", reason="app_mismatch") == 1


async def test_no_200_unless_every_change_is_confirmed(world: World) -> None:
    world.broker.fail = {"2002"}
    payload = envelope("3001", ("messages", status_value("2001", "w.1")),
                       ("messages", status_value("2002", "w.2")))  # fmt: skip
    status, _ = await world.post("/webhooks/1001", payload)
    assert status == 503
    assert world.metric("whatsapp_webhook_publish_failures_total") == 1
    assert len(world.broker.confirmed) == 1  # the other one: Meta's retry brings it again


async def test_broker_down_is_503(world: World) -> None:
    world.broker.connected = False
    assert (await world.post("/webhooks/1001", STATUS))[0] == 503
    assert world.metric("whatsapp_webhook_publish_failures_total") == 1


async def test_not_connected_yet_is_503(world: World) -> None:
    world.ingress.broker = None
    assert (await world.post("/webhooks/1001", STATUS))[0] == 503
    assert (await world.client.get("/readyz")).status == 503


async def test_changes_for_one_shard_share_one_confirmed_message(world: World) -> None:
    world.broker.delay = 0.2
    statuses = [("messages", status_value("2001", f"w.{i}")) for i in range(10)]
    payload = envelope("3001", *statuses, ("messages", status_value("2002", "w.x")))
    started = asyncio.get_running_loop().time()
    assert (await world.post("/webhooks/1001", payload))[0] == 200
    assert asyncio.get_running_loop().time() - started < 1.0  # not 11 x 0.2 s
    by_key = {key: [c.value["statuses"][0]["id"] for c in changes]
              for _, key, changes, _ in world.broker.confirmed}  # fmt: skip
    assert by_key == {
        str(ingress_shard("2001", SHARDS)): [f"w.{i}" for i in range(10)],  # in Meta's order
        str(ingress_shard("2002", SHARDS)): ["w.x"],
    }
    assert world.metric("whatsapp_webhook_ingress_batches_total") == 2
    assert world.metric("whatsapp_webhook_ingress_changes_total", field="messages") == 11


async def test_no_config_yet_is_503_and_not_ready(world: World) -> None:
    world.store.index = None
    assert (await world.post("/webhooks/1001", STATUS))[0] == 503
    assert world.rejected("not_ready") == 1
    response = await world.client.get("/readyz")
    assert response.status == 503
    assert "config" in await response.text()
    assert (await world.client.get("/healthz")).status == 200


async def test_ready_when_config_and_broker_are_there(world: World) -> None:
    assert (await world.client.get("/readyz")).status == 200
    world.ingress.stopping = True
    assert (await world.client.get("/readyz")).status == 503


@pytest.mark.parametrize(
    ("path", "token", "status", "text"),
    [
        pytest.param("/webhooks/1001", APP_A.verify_token, 200, "4242", id="the app's token"),
        pytest.param("/webhooks/1001", APP_B.verify_token, 403, "", id="another app's token"),
        pytest.param("/webhooks/1001", "wrong", 403, "", id="a wrong token"),
        pytest.param("/webhook", APP_B.verify_token, 200, "4242", id="app-less: any app's"),
        pytest.param("/webhook", "wrong", 403, "", id="app-less: a wrong token"),
        pytest.param("/webhooks/9999", APP_A.verify_token, 404, "", id="an unknown app"),
    ],
)
async def test_handshake(world: World, path: str, token: str, status: int, text: str) -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "4242"}
    response = await world.client.get(path, params=query)
    assert response.status == status
    if status == 200:
        assert await response.text() == text
        assert response.content_type == "text/plain"
    elif status == 403:
        assert world.rejected("handshake_failed") == 1


async def test_rejections_log_no_secret_and_are_throttled(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(30):
        await world.post("/webhooks/1001", STATUS, signer=APP_B)
    lines = [r for r in caplog.records if r.getMessage() == "webhook rejected"]
    assert 1 <= len(lines) <= 10
    assert world.rejected("bad_signature") == 30
    text = caplog.text + "".join(str(getattr(r, "fields", "")) for r in caplog.records)
    assert not any(s in text for s in (APP_A.secret, APP_B.secret, APP_B.sign(body_of(STATUS))))


async def test_a_bug_is_a_counted_500(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("whatsapp_webhook.ingress.route_payload", broken)
    assert (await world.post("/webhooks/1001", STATUS))[0] == 500
    assert world.metric("whatsapp_webhook_requests_total", route="/webhooks/{app_id}",
                        code="500") == 1  # fmt: skip
    assert world.broker.confirmed == []
