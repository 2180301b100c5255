"""The sender with what the receiver tells (issue 18), against a fake Meta (httpx.MockTransport)
and fake broker objects: every send carries its message id in biz_opaque_callback_data; a send
that timed out, or a redelivery the journal calls uncertain, is settled from its status webhook
instead of sent again; a free-form message outside the 24-hour window is dead-lettered unsent.
Meta's calls are counted at the fake Meta."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from test_send_journal import FakeJournal
from test_sender_orphaned import Delivery, Exchange

from whatsapp_contract.resolved import TenantConfig, tenant_config
from whatsapp_graph.client import GraphClient
from whatsapp_worker.delivery import H_REASON
from whatsapp_worker.journal import OUTCOME_UNKNOWN, SETTLED, Verdict
from whatsapp_worker.limits import Limiter
from whatsapp_worker.metrics import WorkerMetrics
from whatsapp_worker.policy import RetryPolicy
from whatsapp_worker.sender import Sender
from whatsapp_worker.statuses import H_UNANSWERED, Seen, StatusRecord, unanswered
from whatsapp_worker.topology import PoolTopology
from whatsapp_worker.webhooks import Webhooks

NOW = 1_700_000_000.0
TENANT = tenant_config(
    token="EAAGwebhookstoken0123456789", tenant_id="acme", waba_id="1001",
    phone_number_id="2002", graph_api_version="v25.0", throughput_level="HIGH",
    webhook_app_id="777",
)  # fmt: skip
WITHOUT_RECEIVER = TenantConfig.model_validate({**dict(TENANT), "webhook_app_id": None})


class Tail:
    """A stream tail that has read everything (`sync` may bring a record in meanwhile)."""

    def __init__(self, *, caught_up: bool = True, on_sync: Callable[[], None] | None = None):
        self.caught_up = asyncio.Event()
        if caught_up:
            self.caught_up.set()
        self.on_sync = on_sync
        self.syncs = 0

    async def sync(self, within: float) -> bool:
        self.syncs += 1
        if self.on_sync is not None:
            self.on_sync()
        return self.caught_up.is_set()

    async def close(self) -> None:
        pass


def timeout_then_accept(request: httpx.Request, calls: int) -> httpx.Response:
    if calls == 1:
        raise httpx.ReadTimeout("timed out", request=request)
    return httpx.Response(200, json={"messages": [{"id": f"wamid.{calls}"}]})


def accept(request: httpx.Request, calls: int) -> httpx.Response:
    return httpx.Response(200, json={"messages": [{"id": f"wamid.{calls}"}]})


@dataclass
class World:
    answer: Callable[[httpx.Request, int], httpx.Response] = accept
    tenant: TenantConfig = TENANT
    status_wait: float = 5.0
    statuses_caught_up: bool = True
    posts: list[dict[str, Any]] = field(default_factory=list)
    publisher: Exchange = field(default_factory=Exchange)
    results: Exchange = field(default_factory=Exchange)
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)
    windows_tail: Tail = field(default_factory=Tail)

    def __post_init__(self) -> None:
        self.webhooks = Webhooks(
            pool="p", metrics=self.metrics, status_wait=self.status_wait, status_lookback=120,
            window_check="auto", clock=lambda: NOW,
        )  # fmt: skip
        self.webhooks._tails = {  # as if both streams were read (no broker here)
            "statuses": Tail(caught_up=self.statuses_caught_up),  # type: ignore[dict-item]
            "windows": self.windows_tail,  # type: ignore[dict-item]
        }
        self.webhooks.windows.record("2002", "34600000001", int(NOW) - 60)  # the customer wrote

    def get(self, tenant_id: str) -> TenantConfig | None:
        return self.tenant if tenant_id == self.tenant.tenant_id else None

    def reload(self) -> None:
        pass

    def meta(self, request: httpx.Request) -> httpx.Response:
        self.posts.append(json.loads(request.content))
        return self.answer(request, len(self.posts))

    async def handle(self, delivery: Delivery, journal: FakeJournal | None = None) -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(self.meta)) as http:
            sender = Sender(
                topology=PoolTopology("p"), store=self, graphs=[GraphClient(http)],  # type: ignore[arg-type]
                limiter=Limiter(), policy=RetryPolicy(base_delay=0.01), publisher=self.publisher,  # type: ignore[arg-type]
                results=self.results, metrics=self.metrics, concurrency=4, inline_wait=2.0,  # type: ignore[arg-type]
                clock=lambda: NOW, journal=journal, webhooks=self.webhooks,  # type: ignore[arg-type]
            )  # fmt: skip
            await sender.handle(delivery, 0)  # type: ignore[arg-type]

    def status_later(self, message_id: str, wamid: str, after: float = 0.05) -> None:
        """The receiver's status for the message arrives `after` seconds from now."""
        record = StatusRecord(message_id, "2002", Seen("sent", wamid), int(NOW))
        asyncio.get_running_loop().call_later(after, self.webhooks.statuses.add, record)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(m.body) for m, _ in self.results.published]

    def dead(self) -> list[dict[str, Any]]:
        return [dict(m.headers) for m, q in self.publisher.published if q.endswith(".dead")]

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, {"pool": "p", **labels})
        return value or 0.0


def delivery(body: dict[str, Any] | None = None, **options: Any) -> Delivery:
    d = Delivery("open", **options)
    if body is not None:
        loaded = json.loads(d.body)
        loaded["wabaPayload"] = body
        d.body = json.dumps(loaded).encode()
    return d


TEXT = {"type": "text", "to": "34600000001", "text": {"body": "hi"}}


async def test_every_send_carries_its_message_id_in_the_callback_data() -> None:
    world = World()
    await world.handle(delivery({**TEXT, "biz_opaque_callback_data": "ref-7"}))
    await world.handle(delivery(message_id="m-2"))
    await world.handle(delivery(message_id=""))  # no id at all: as the producer wrote it
    assert [p.get("biz_opaque_callback_data") for p in world.posts] == [
        "wo1:m-1|ref-7", "wo1:m-2|", None,
    ]  # fmt: skip


async def test_a_callback_value_that_no_longer_fits_is_dead_lettered_unsent() -> None:
    world = World()
    await world.handle(delivery({**TEXT, "biz_opaque_callback_data": "d" * 510}))
    assert world.posts == []
    [headers] = world.dead()
    assert headers[H_REASON] == "invalid_payload"
    assert "510 characters" in headers["x-whatsapp-detail"]
    [event] = world.events()
    assert (event["status"], event["reason"], event["tenantId"]) == (
        "failed", "invalid_payload", "acme",
    )  # fmt: skip


@pytest.mark.parametrize("before", [True, False], ids=["status already in", "status comes later"])
async def test_a_timed_out_send_meta_accepted_is_settled_from_its_status(before: bool) -> None:
    world = World(answer=timeout_then_accept)
    if before:
        world.webhooks.statuses.add(
            StatusRecord("m-1", "2002", Seen("delivered", "wamid.MET"), None)
        )
    else:
        world.status_later("m-1", "wamid.MET")
    await world.handle(delivery())
    assert len(world.posts) == 1  # not sent again
    [event] = world.events()
    assert (event["status"], event["wamid"], event["resolvedBy"]) == (
        "accepted", "wamid.MET", "webhook",
    )  # fmt: skip
    assert "possibleDuplicate" not in event
    assert world.metric("whatsapp_worker_status_waits_total", case="timeout", outcome="found") == 1
    assert world.metric("whatsapp_worker_possible_duplicates_total") == 0


@pytest.mark.parametrize(
    ("world", "outcome"),
    [
        pytest.param(
            World(answer=timeout_then_accept, status_wait=0.05),
            "quiet",
            id="no status while caught up: sent again",
        ),
        pytest.param(
            World(answer=timeout_then_accept, status_wait=0.05, statuses_caught_up=False),
            "unknown",
            id="statuses not read up to now: as before (retried)",
        ),
        pytest.param(
            World(answer=timeout_then_accept, tenant=WITHOUT_RECEIVER),
            None,
            id="no receiver for the tenant: no wait",
        ),
        pytest.param(
            World(answer=timeout_then_accept, status_wait=0), None, id="status_wait 0: no wait"
        ),
    ],
)
async def test_without_a_status_a_timed_out_send_is_retried(
    world: World, outcome: str | None
) -> None:
    await world.handle(delivery())
    assert len(world.posts) == 2
    [event] = world.events()
    assert (event["status"], event["wamid"]) == ("accepted", "wamid.2")
    assert "resolvedBy" not in event
    assert world.metric("whatsapp_worker_possible_duplicates_total") == 1
    waits = world.metric(
        "whatsapp_worker_status_waits_total", case="timeout", outcome=outcome or ""
    )
    assert waits == (1 if outcome else 0)


async def test_an_uncertain_redelivery_meta_has_is_settled_from_its_status() -> None:
    world = World()
    world.status_later("m-1", "wamid.KILLED")
    journal = FakeJournal(Verdict.UNCERTAIN)
    await world.handle(delivery(redelivered=True), journal)
    assert world.posts == []
    [event] = world.events()
    assert (event["status"], event["wamid"], event["resolvedBy"]) == (
        "accepted", "wamid.KILLED", "webhook",
    )  # fmt: skip
    assert [kind for _, _, kind in journal.entries] == [SETTLED]
    assert (
        world.metric("whatsapp_worker_status_waits_total", case="redelivery", outcome="found") == 1
    )


@pytest.mark.parametrize(
    ("caught_up", "sent", "dead"),
    [
        pytest.param(True, 1, [], id="no status while caught up: resent"),
        pytest.param(False, 0, [OUTCOME_UNKNOWN], id="statuses unread: outcome_unknown as before"),
    ],
)
async def test_an_uncertain_redelivery_without_a_status(
    caught_up: bool, sent: int, dead: list[str]
) -> None:
    world = World(status_wait=0.05, statuses_caught_up=caught_up)
    await world.handle(delivery(redelivered=True), FakeJournal(Verdict.UNCERTAIN))
    assert len(world.posts) == sent
    assert [h[H_REASON] for h in world.dead()] == dead
    [event] = world.events()
    assert event["possibleDuplicate"] is True


@pytest.mark.parametrize(
    ("payload", "tenant", "sent"),
    [
        pytest.param(TEXT, TENANT, True, id="text, the customer wrote a minute ago"),
        pytest.param({**TEXT, "to": "34600000002"}, TENANT, False, id="text, never wrote"),
        pytest.param(
            {
                "type": "reaction",
                "to": "34600000002",
                "reaction": {"message_id": "wamid.X", "emoji": "👍"},
            },
            TENANT,
            False,
            id="a reaction, never wrote",
        ),
        pytest.param(
            {
                "type": "template",
                "to": "34600000002",
                "template": {"name": "hello_world", "language": {"code": "en_US"}},
            },
            TENANT,
            True,
            id="a template: allowed outside the window",
        ),
        pytest.param(
            {**TEXT, "to": "34600000002"},
            WITHOUT_RECEIVER,
            True,
            id="no receiver for the tenant: not checked",
        ),
    ],
)
async def test_free_form_messages_need_an_open_window(
    payload: dict[str, Any], tenant: TenantConfig, sent: bool
) -> None:
    world = World(tenant=tenant)
    await world.handle(delivery(payload))
    assert len(world.posts) == int(sent)
    if not sent:
        [headers] = world.dead()
        assert (headers[H_REASON], headers["x-whatsapp-code"]) == ("outside_service_window", 131047)
        [event] = world.events()
        assert (event["status"], event["reason"], event["code"]) == (
            "failed", "outside_service_window", 131047,
        )  # fmt: skip
        assert world.windows_tail.syncs == 1  # read up to now before refusing


async def test_a_customer_message_that_just_came_in_is_seen_before_a_refusal() -> None:
    world = World()
    world.windows_tail.on_sync = lambda: world.webhooks.windows.record(
        "2002", "34600000002", int(NOW) - 1
    )
    await world.handle(delivery({**TEXT, "to": "34600000002"}))
    assert len(world.posts) == 1
    assert world.dead() == []


def number_status(world: World, timestamp: float, after: float = 0.05) -> None:
    """A status of another message of the same number, stamped by Meta at `timestamp`."""
    record = StatusRecord("other", "2002", Seen("delivered", "wamid.O"), int(timestamp))
    asyncio.get_running_loop().call_later(after, world.webhooks.statuses.add, record)


async def test_a_later_status_of_its_number_ends_the_wait_early() -> None:
    """Meta stamped a status of the number after the wait began, and this message's did not
    come first: Meta never had it, so it is sent again without waiting out status_wait."""
    world = World(answer=timeout_then_accept, status_wait=10.0)
    number_status(world, NOW + 3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await world.handle(delivery())
    assert loop.time() - started < 2.0
    assert len(world.posts) == 2
    assert world.metric("whatsapp_worker_status_waits_total", case="timeout", outcome="past") == 1


def keep_lagging(world: World, count: int = 12) -> None:
    """Statuses of the number keep coming, all stamped before the wait: the webhooks lag."""
    for i in range(count):
        number_status(world, NOW - 1, after=0.05 * i)


PARKING = PoolTopology("p").delay_queue(0, 10)


def parked(world: World) -> list[dict[str, Any]]:
    return [dict(m.headers) for m, q in world.publisher.published if q == PARKING]


@pytest.mark.parametrize(
    ("journal", "case"),
    [
        pytest.param(FakeJournal(Verdict.UNCERTAIN), "redelivery", id="a killed worker's send"),
        pytest.param(None, "timeout", id="a timed-out request"),
    ],
)
async def test_while_the_webhooks_lag_an_unanswered_send_is_parked_not_guessed(
    journal: FakeJournal | None, case: str
) -> None:
    """The absence of its status says nothing yet: it waits in the delay queue, marked."""
    world = World(status_wait=0.4, answer=timeout_then_accept)
    keep_lagging(world)
    await world.handle(delivery(redelivered=journal is not None), journal)
    assert len(world.posts) == (1 if case == "timeout" else 0)
    assert world.dead() == []
    assert world.events() == []
    [headers] = parked(world)
    assert headers[H_UNANSWERED] == unanswered(case, NOW)  # type: ignore[arg-type]
    assert world.metric("whatsapp_worker_status_waits_total", case=case, outcome="lagging") == 1


@pytest.mark.parametrize(
    ("back_after", "status", "latest", "expected"),
    [
        pytest.param(20.0, True, None, "settled", id="its status came meanwhile: settled"),
        pytest.param(20.0, False, NOW + 30, "sent", id="its number is past it: sent again"),
        pytest.param(20.0, False, NOW - 1, "parked", id="still lagging: parked again"),
        pytest.param(400.0, False, NOW - 1, "dead", id="lagging past status_lookback"),
    ],
)
async def test_a_parked_copy_is_looked_at_again_when_it_is_back(
    back_after: float, status: bool, latest: float, expected: str
) -> None:
    world = World(status_wait=0.1)
    world.webhooks.clock = lambda: NOW + back_after
    world.webhooks.status_lookback = 300.0
    if status:
        world.webhooks.statuses.add(StatusRecord("m-1", "2002", Seen("sent", "wamid.L"), None))
    if latest is not None:
        world.webhooks.statuses.add(
            StatusRecord("other", "2002", Seen("sent", "wamid.O"), int(latest))
        )
    copy = delivery()
    copy.headers = {H_UNANSWERED: unanswered("redelivery", NOW), "x-whatsapp-copy": "c1"}
    await world.handle(copy)
    outcome = {
        "settled": ([], [("accepted", "webhook")], []),
        "sent": ([1], [("accepted", None)], []),
        "parked": ([], [], []),
        "dead": ([], [("failed", None)], [OUTCOME_UNKNOWN]),
    }[expected]
    events = [(e["status"], e.get("resolvedBy")) for e in world.events()]
    assert ([1] * len(world.posts), events, [h[H_REASON] for h in world.dead()]) == outcome
    if expected == "sent":
        assert world.events()[0]["possibleDuplicate"] is True
    if expected == "parked":
        [headers] = parked(world)
        assert headers[H_UNANSWERED] == unanswered("redelivery", NOW)
