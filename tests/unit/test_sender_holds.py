"""The sender with a fake Meta (httpx.MockTransport) and a fake broker: a number Meta blocked
is paused and its messages held (never dead-lettered within `blocked_hold_window`), the
operator is signalled (debounced), the config's `blocked_code` holds every message, clearing
it resumes them; a refused token is signalled; `appsecret_proof` goes with every send; the
result event carries Meta's `message_status` and `wa_id` (issue 16)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aio_pika import DeliveryMode
from pydantic import SecretStr
from test_sender_orphaned import Delivery, Exchange

from whatsapp_contract.resolved import TenantConfig, tenant_config
from whatsapp_contract.signals import parse_signal
from whatsapp_graph.client import GraphClient, appsecret_proof
from whatsapp_worker.delivery import H_CODE, H_REASON
from whatsapp_worker.holds import Holds
from whatsapp_worker.limits import Limiter
from whatsapp_worker.metrics import WorkerMetrics
from whatsapp_worker.policy import RetryPolicy
from whatsapp_worker.sender import Sender
from whatsapp_worker.topology import PoolTopology

TOKEN = "EAAGholdstoken0123456789abcdef"
SECRET = "app-secret-0123456789"
PROOF = appsecret_proof(TOKEN, SECRET)
POOL = PoolTopology("p")
BASE = tenant_config(
    token=TOKEN, tenant_id="acme", waba_id="1001", phone_number_id="2002",
    graph_api_version="v25.0", throughput_level="HIGH",
)  # fmt: skip


def with_(**changes: Any) -> TenantConfig:
    """BASE with `changes`, validated like a loaded config."""
    return TenantConfig.model_validate({**dict(BASE), **changes})


def blocked(code: int = 131048) -> httpx.Response:
    return httpx.Response(
        400, json={"error": {"message": "(#131048) Spam rate limit hit", "code": code,
                             "type": "OAuthException", "fbtrace_id": "A"}},
    )  # fmt: skip


def refused() -> httpx.Response:
    return httpx.Response(
        401, json={"error": {"message": f"Error validating access token {TOKEN}", "code": 190,
                             "error_subcode": 463, "type": "OAuthException"}},
    )  # fmt: skip


def accepted(request: httpx.Request) -> httpx.Response:
    to = json.loads(request.content)["to"]
    return httpx.Response(
        200,
        json={"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to[1:]}],
              "messages": [{"id": "wamid.OK", "message_status": "accepted"}]},
    )  # fmt: skip


@dataclass
class World:
    """A Sender, its fake Meta (`answer` decides each response) and what it published."""

    answer: Callable[[httpx.Request], httpx.Response] = accepted
    tenant: TenantConfig = BASE
    now: float = 1_000_000.0
    posts: list[httpx.Request] = field(default_factory=list)
    delayed: Exchange = field(default_factory=Exchange)  # delay queues and dead letters
    results: Exchange = field(default_factory=Exchange)
    signals: Exchange = field(default_factory=Exchange)
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)

    def get(self, tenant_id: str) -> TenantConfig | None:  # the ConfigStore's one read
        return self.tenant if tenant_id == self.tenant.tenant_id else None

    def reload(self) -> None:  # the sender re-reads the mount after a refused token
        pass

    def meta(self, request: httpx.Request) -> httpx.Response:
        self.posts.append(request)
        return self.answer(request)

    async def send(self, n: int = 1, *, mid: str = "m") -> None:
        holds = getattr(self, "_holds", None)
        if holds is None:
            holds = self._holds = Holds(
                pool="p", worker="w-1", metrics=self.metrics, probe_interval=300.0,
                clock=lambda: self.now,
            )  # fmt: skip
            holds.signaller.exchange = self.signals  # type: ignore[assignment]
        async with httpx.AsyncClient(transport=httpx.MockTransport(self.meta)) as http:
            sender = Sender(
                topology=POOL, store=self, graphs=[GraphClient(http)],  # type: ignore[arg-type]
                limiter=Limiter(), policy=RetryPolicy(hold_recheck=30.0),
                publisher=self.delayed, results=self.results,  # type: ignore[arg-type]
                metrics=self.metrics, concurrency=4, inline_wait=2.0, clock=lambda: self.now,
                holds=holds,
            )  # fmt: skip
            for i in range(n):
                await sender.handle(Delivery("open", message_id=f"{mid}-{i}"), 0)  # type: ignore[arg-type]

    def routing_keys(self) -> list[str]:
        return [key for _, key in self.delayed.published]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(m.body) for m, _ in self.results.published]

    def sent_signals(self) -> list[Any]:
        return [parse_signal(m.body) for m, _ in self.signals.published]

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, {"pool": "p", **labels})
        return value or 0.0


DELAY_30 = POOL.delay_queue(0, 30)


async def test_accepted_send_carries_proof_plus_and_metas_answer() -> None:
    world = World(tenant=with_(appsecret_proof=SecretStr(PROOF)))
    await world.send()
    (request,) = world.posts
    assert request.url.params["appsecret_proof"] == PROOF
    assert json.loads(request.content)["to"] == "+34600000001"
    (event,) = world.events()
    assert (event["status"], event["to"], event["wamid"]) == (
        "accepted",
        "+34600000001",
        "wamid.OK",
    )
    assert (event["messageStatus"], event["waId"]) == ("accepted", "34600000001")


async def test_no_proof_without_one_in_the_config() -> None:
    world = World()
    await world.send()
    assert "appsecret_proof" not in world.posts[0].url.params


async def test_a_block_pauses_the_number_and_holds_its_messages_without_calling_meta() -> None:
    world = World(answer=lambda request: blocked())
    await world.send(3)
    assert len(world.posts) == 1  # the first answer paused the number: the others never went
    assert world.routing_keys() == [DELAY_30] * 3  # held, not dead-lettered
    assert world.events() == []
    assert world.metric("whatsapp_worker_paused_numbers") == 1
    assert world.metric("whatsapp_worker_holds_total", reason="tenant_blocked") == 3
    (signal,) = world.sent_signals()
    assert signal is not None
    assert (signal.kind, signal.tenant_id, signal.phone_number_id, signal.code) == (
        "sending_blocked", "acme", "2002", 131048,
    )  # fmt: skip
    assert (signal.pool, signal.worker, signal.token_fingerprint) == (
        "p", "w-1", BASE.token_fingerprint,
    )  # fmt: skip
    assert TOKEN not in world.signals.published[0][0].body.decode()
    assert world.signals.published[0][0].delivery_mode is DeliveryMode.NOT_PERSISTENT
    assert world.signals.published[0][1] == "p"  # the pool is the routing key


async def test_sending_blocked_signals_are_debounced_per_tenant_and_code() -> None:
    world = World(answer=lambda request: blocked())
    await world.send()  # blocked: paused, signalled
    world.now += 301  # a probe is due; it is blocked again: a signal (over 30 s later)
    await world.send(mid="a")
    world.now += 10  # the next probe is 300 s away: held, no call, no signal
    await world.send(mid="b")
    assert len(world.posts) == 2  # the first send and one probe
    assert [s.code for s in world.sent_signals() if s] == [131048, 131048]
    holds: Holds = world._holds  # type: ignore[attr-defined]
    world.answer = lambda request: blocked(368)
    holds.pauses.lift("2002")  # as if a send had been accepted meanwhile
    world.now += 5
    await world.send(mid="c")  # another code: a signal of its own at once
    assert [s.code for s in world.sent_signals() if s] == [131048, 131048, 368]
    holds.pauses.lift("2002")
    world.now += 5
    await world.send(mid="d")  # the same code within 30 s: no second signal
    assert len(world.posts) == 4
    assert len(world.sent_signals()) == 3


async def test_the_configs_blocked_code_holds_and_clearing_it_resumes() -> None:
    world = World(tenant=with_(blocked_code=131048))
    await world.send(2)
    assert world.posts == []
    assert world.routing_keys() == [DELAY_30] * 2
    world.tenant = BASE  # the operator found the number healthy
    await world.send(2, mid="later")
    assert len(world.posts) == 2
    assert [e["status"] for e in world.events()] == ["accepted", "accepted"]


async def test_a_pause_the_operator_confirmed_ends_when_the_config_is_cleared() -> None:
    world = World(answer=lambda request: blocked())
    await world.send()
    world.tenant = with_(blocked_code=131048)  # the operator took it up
    world.now += 1000
    await world.send(mid="confirmed")  # held: no probe while the operator holds it
    assert len(world.posts) == 1
    world.tenant = BASE
    world.answer = accepted
    await world.send(mid="cleared")
    assert len(world.posts) == 2
    assert world.metric("whatsapp_worker_paused_numbers") == 0


async def test_an_unconfirmed_pause_probes_one_message_and_resumes_on_acceptance() -> None:
    world = World(answer=lambda request: blocked())
    await world.send()
    world.answer = accepted
    world.now += 299
    await world.send(mid="early")
    assert len(world.posts) == 1
    world.now += 1
    await world.send(2, mid="probe")  # the first probes; accepted, the second goes too
    assert len(world.posts) == 3
    assert world.metric("whatsapp_worker_paused_numbers") == 0


async def test_held_for_block_is_dead_lettered_only_after_the_blocked_window() -> None:
    world = World(answer=lambda request: blocked())
    await world.send()
    for delivery_time in (900.0, 86_399.0):  # past the credential window: still held
        world.now = 1_000_000.0 + delivery_time
        await _redeliver_held(world)
    assert H_REASON not in (world.delayed.published[-1][0].headers or {})
    world.now = 1_000_000.0 + 86_400.0
    await _redeliver_held(world)
    message, key = world.delayed.published[-1]
    assert key == POOL.dead_queue
    assert (message.headers or {})[H_REASON] == "tenant_blocked"
    assert (message.headers or {})[H_CODE] == 131048
    assert world.events()[-1]["reason"] == "tenant_blocked"


async def _redeliver_held(world: World) -> None:
    """The held copy comes back from its delay queue (with the hold's headers)."""
    last = world.delayed.published[-1][0]
    delivery = Delivery("open", message_id="m-0")
    delivery.headers = dict(last.headers or {})
    async with httpx.AsyncClient(transport=httpx.MockTransport(world.meta)) as http:
        sender = Sender(
            topology=POOL, store=world, graphs=[GraphClient(http)],  # type: ignore[arg-type]
            limiter=Limiter(), policy=RetryPolicy(), publisher=world.delayed,  # type: ignore[arg-type]
            results=world.results, metrics=world.metrics, concurrency=4,  # type: ignore[arg-type]
            inline_wait=2.0, clock=lambda: world.now, holds=world._holds,  # type: ignore[attr-defined]
        )  # fmt: skip
        await sender.handle(delivery, 0)  # type: ignore[arg-type]


async def test_a_refused_token_is_held_and_signalled_at_most_every_10_s() -> None:
    world = World(answer=lambda request: refused())
    await world.send(2)
    world.now += 10
    await world.send(mid="later")
    assert world.routing_keys() == [DELAY_30] * 3
    kinds = [(s.kind, s.code, s.subcode) for s in world.sent_signals() if s]
    assert kinds == [("credential_rejected", 190, 463)] * 2
    assert all(TOKEN not in m.body.decode() for m, _ in world.signals.published)
    assert world.metric("whatsapp_worker_signals_total", kind="credential_rejected") == 2
    assert world.metric("whatsapp_worker_holds_total", reason="credential_rejected") == 3


@pytest.mark.parametrize("code", [368, 130497, 131031, 131037, 131042, 131045, 131064, 133010])
async def test_every_block_code_pauses(code: int) -> None:
    world = World(answer=lambda request: blocked(code))
    await world.send(2)
    assert len(world.posts) == 1
    assert [s.code for s in world.sent_signals() if s] == [code]
