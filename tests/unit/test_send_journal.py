"""The send journal: after a worker dies, a delivery given again is acked if its outcome was
published, dead-lettered (or resent, by the pool's choice) if it may have reached Meta, and
sent as usual otherwise. Pure decisions table-driven; the sender's use of them with fakes."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from unittest import mock

import aio_pika
import httpx
import pytest
from test_sender_orphaned import Delivery, Exchange, Store

from whatsapp_graph.client import GraphClient
from whatsapp_worker.delivery import H_COPY, H_REASON
from whatsapp_worker.journal import (
    ABANDONED,
    NOT_SENT,
    OUTCOME_UNKNOWN,
    SENT,
    SETTLED,
    Batch,
    Known,
    Outcomes,
    Recollection,
    Redelivery,
    UncertainSends,
    Verdict,
    decide,
    decode_batch,
    delivery_key,
    encode_batch,
)
from whatsapp_worker.journal_stream import JournalStream
from whatsapp_worker.limits import Limiter
from whatsapp_worker.metrics import WorkerMetrics
from whatsapp_worker.policy import RetryPolicy
from whatsapp_worker.sender import Sender
from whatsapp_worker.topology import PoolTopology


@pytest.mark.parametrize(
    ("verdict", "policy", "expected"),
    [
        (Verdict.SETTLED, "dead_letter", Redelivery.ACK),
        (Verdict.SETTLED, "resend", Redelivery.ACK),
        (Verdict.UNCERTAIN, "dead_letter", Redelivery.DEAD_LETTER),
        (Verdict.UNCERTAIN, "resend", Redelivery.RESEND),
        (Verdict.UNKNOWN, "dead_letter", Redelivery.SEND),
        (Verdict.UNKNOWN, "resend", Redelivery.SEND),
    ],
)
def test_what_a_redelivery_becomes(
    verdict: Verdict, policy: UncertainSends, expected: Redelivery
) -> None:
    assert decide(verdict, policy) is expected


@pytest.mark.parametrize(
    ("kinds", "verdict"),
    [
        ((), Verdict.UNKNOWN),  # only prefetched by the dead owner
        ((SENT,), Verdict.UNCERTAIN),  # killed while Meta had the request
        ((SENT, SETTLED), Verdict.SETTLED),  # killed after the result, before the ack
        ((SENT, ABANDONED), Verdict.UNKNOWN),  # recorded, then not sent after all
        ((SENT, SENT), Verdict.UNCERTAIN),  # an inline retry
        ((SETTLED,), Verdict.SETTLED),  # parked or dead-lettered without a send
        ((SENT, SETTLED, SENT), Verdict.UNCERTAIN),  # resent by the next owner, killed again
    ],
)
def test_the_last_entry_of_a_key_decides(kinds: tuple[str, ...], verdict: Verdict) -> None:
    recollection = Recollection()
    recollection.apply([(3, "k", kind) for kind in kinds])
    recollection.apply([(4, "k", SETTLED), (3, "other", SETTLED)])  # other shard, other key
    assert recollection.verdict(3, "k") is verdict


def test_keys_tell_copies_and_messages_apart() -> None:
    body = b'{"x": 1}'
    key = delivery_key(body, "m-1", {})
    assert delivery_key(body, "m-1", {"x-whatsapp-attempts": 0}) == key  # a redelivery
    assert delivery_key(body, "m-1", {H_COPY: "c1"}) != key  # a delay-queue copy
    assert delivery_key(body, "m-1", {H_COPY: "c1"}) != delivery_key(body, "m-1", {H_COPY: "c2"})
    assert delivery_key(body, "m-2", {}) != key
    assert delivery_key(b'{"x": 2}', "m-1", {}) != key
    assert "m-1" not in key
    assert len(key) == 32


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"v": 2, "e": []}', b'{"v": 1}', b'{"v": 1, "e": "x"}', b"\xff"],
)
def test_anything_else_in_the_stream_is_skipped(body: bytes) -> None:
    assert decode_batch(body) is None


def test_batches_round_trip_and_drop_malformed_entries() -> None:
    body = encode_batch("w-1", [(0, "a", SENT), (1, "b", SETTLED)], marker="m")
    assert decode_batch(body) == Batch("w-1", ((0, "a", SENT), (1, "b", SETTLED)), "m")
    mixed = json.dumps({"v": 1, "w": "w", "e": [[0, "a", "s"], [True, "b", "s"], [0, "c", "z"]]})
    assert decode_batch(mixed.encode()) == Batch("w", ((0, "a", SENT),), None)


class FakeJournal:
    lookback = 60.0

    def __init__(self, verdict: Verdict = Verdict.UNKNOWN, *, close: Any = None) -> None:
        self.entries: list[tuple[int, str, str]] = []
        self._verdict = verdict
        self._close = close  # called when SENT is recorded (a channel closing meanwhile)

    async def record(self, shard: int, key: str, kind: str) -> None:
        self.entries.append((shard, key, kind))
        if kind == SENT and self._close is not None:
            self._close()

    async def verdict(self, shard: int, key: str) -> Verdict:
        return self._verdict


class BrokenExchange(Exchange):
    """The broker connection went away: nothing can be published (or acked)."""

    async def publish(self, message: aio_pika.Message, routing_key: str, **_: Any) -> None:
        raise aio_pika.exceptions.ChannelInvalidStateError("closed")


async def run(
    delivery: Delivery,
    journal: FakeJournal,
    policy: UncertainSends = "dead_letter",
    *,
    outcomes: Outcomes | None = None,
    broken: bool = False,
    refuse: bool = False,
    throttle_first: bool = False,
) -> dict[str, Any]:
    posts: list[list[str]] = []

    def meta(request: httpx.Request) -> httpx.Response:
        posts.append([kind for _, _, kind in journal.entries])  # what was journalled by then
        if throttle_first and len(posts) == 1:  # the number's throughput: retried in memory
            error = {"message": "(#130429) Rate limit hit", "type": "OAuthException",
                     "code": 130429, "fbtrace_id": "x"}  # fmt: skip
            return httpx.Response(400, json={"error": error})
        if refuse:  # a permanent error: Meta did not send it
            error = {"message": "(#131026) Message undeliverable", "type": "OAuthException",
                     "code": 131026, "fbtrace_id": "x"}  # fmt: skip
            return httpx.Response(400, json={"error": error})
        return httpx.Response(200, json={"messages": [{"id": "wamid.1"}]})

    results = BrokenExchange() if broken else Exchange()
    publisher = BrokenExchange() if broken else Exchange()
    metrics = WorkerMetrics()
    now = [1_000_000.0]
    async with httpx.AsyncClient(transport=httpx.MockTransport(meta)) as http:
        sender = Sender(
            topology=PoolTopology("p"), store=Store(), graphs=[GraphClient(http)],  # type: ignore[arg-type]
            limiter=Limiter(), policy=RetryPolicy(base_delay=0.01), publisher=publisher,  # type: ignore[arg-type]
            results=results, metrics=metrics, concurrency=4, inline_wait=2.0,  # type: ignore[arg-type]
            journal=journal, uncertain_sends=policy, outcomes=outcomes,  # type: ignore[arg-type]
            clock=lambda: now[0],
        )  # fmt: skip
        sender_sleep = asyncio.sleep

        async def no_pause(delay: float) -> None:  # waits pass at once, on the sender's clock
            now[0] += delay
            await sender_sleep(0)

        with mock.patch("whatsapp_worker.sender.asyncio.sleep", no_pause):
            await sender.handle(delivery, 2)  # type: ignore[arg-type]
        assert sender.settler.keys == {}  # nothing left behind
    return {
        "posts": posts,
        "kinds": [kind for _, _, kind in journal.entries],
        "results": [json.loads(m.body) for m, _ in results.published],
        "dead": [(m, q) for m, q in publisher.published if q.endswith(".dead")],
        "acked": delivery.acked,
        "metrics": metrics,
    }


async def test_a_send_is_journalled_before_it_goes_out_and_settled_before_its_ack() -> None:
    out = await run(Delivery("open"), FakeJournal())
    assert out["posts"] == [[SENT]]  # the request left after SENT was confirmed
    assert out["kinds"] == [SENT, SETTLED]
    assert [r["status"] for r in out["results"]] == ["accepted"]
    assert out["acked"] == 1
    assert "possibleDuplicate" not in out["results"][0]


async def test_a_redelivery_whose_outcome_was_published_is_acked_unsent() -> None:
    out = await run(Delivery("open", redelivered=True), FakeJournal(Verdict.SETTLED))
    assert (out["posts"], out["results"], out["acked"]) == ([], [], 1)
    assert out["metrics"].redeliveries.labels("p", "settled")._value.get() == 1


async def test_an_uncertain_redelivery_is_dead_lettered_with_the_reason() -> None:
    out = await run(Delivery("open", redelivered=True), FakeJournal(Verdict.UNCERTAIN))
    assert out["posts"] == []
    assert out["acked"] == 1
    [(message, _)] = out["dead"]
    assert isinstance(message, aio_pika.Message)
    assert message.headers[H_REASON] == OUTCOME_UNKNOWN
    assert "may or may not have delivered it" in message.headers["x-whatsapp-detail"]
    [result] = out["results"]
    assert (result["status"], result["reason"]) == ("failed", OUTCOME_UNKNOWN)
    assert result["possibleDuplicate"] is True
    assert result["messageId"] == "m-1"
    assert out["kinds"] == [SETTLED]


async def test_an_uncertain_redelivery_is_resent_when_the_pool_says_so() -> None:
    out = await run(Delivery("open", redelivered=True), FakeJournal(Verdict.UNCERTAIN), "resend")
    assert len(out["posts"]) == 1
    assert out["acked"] == 1
    [result] = out["results"]
    assert result["status"] == "accepted"
    assert result["possibleDuplicate"] is True
    assert out["metrics"].possible_duplicates.labels("p")._value.get() == 1


async def test_a_redelivery_nothing_was_sent_for_is_sent() -> None:
    out = await run(Delivery("open", redelivered=True), FakeJournal(Verdict.UNKNOWN))
    assert len(out["posts"]) == 1
    assert out["kinds"] == [SENT, SETTLED]
    assert "possibleDuplicate" not in out["results"][0]


async def test_a_message_without_an_id_is_not_journalled() -> None:
    out = await run(Delivery("open", redelivered=True, message_id=""), FakeJournal(Verdict.SETTLED))
    assert len(out["posts"]) == 1
    assert out["kinds"] == []
    assert out["acked"] == 1


async def test_a_channel_closed_while_the_send_is_journalled_takes_the_entry_back() -> None:
    delivery = Delivery("open")

    def close() -> None:
        delivery._channel = "closed"

    out = await run(delivery, FakeJournal(close=close))
    assert (out["posts"], out["acked"]) == ([], 0)
    assert out["kinds"] == [SENT, ABANDONED]


async def test_an_unsettled_send_is_settled_from_memory_when_it_comes_back() -> None:
    outcomes = Outcomes()
    lost = await run(Delivery("open"), FakeJournal(), outcomes=outcomes, broken=True)
    assert len(lost["posts"]) == 1
    assert lost["acked"] == 0  # the broker connection went away before the result and ack
    [(_, known)] = outcomes.known.items()
    assert (known.accepted, known.wamid) == (True, "wamid.1")
    # RabbitMQ gives it back after the reconnect; the journal alone would call it uncertain
    again = await run(Delivery("open", redelivered=True), FakeJournal(Verdict.UNCERTAIN),
                      outcomes=outcomes)  # fmt: skip
    assert again["posts"] == []  # not sent twice
    [result] = again["results"]
    assert (result["status"], result["wamid"]) == ("accepted", "wamid.1")
    assert "possibleDuplicate" not in result
    assert again["acked"] == 1
    assert again["metrics"].redeliveries.labels("p", "remembered")._value.get() == 1
    assert outcomes.known == {}


async def test_a_send_meta_refused_is_not_taken_for_an_uncertain_one() -> None:
    outcomes = Outcomes()
    await run(Delivery("open"), FakeJournal(), outcomes=outcomes, broken=True, refuse=True)
    assert list(outcomes.known.values()) == [NOT_SENT]
    again = await run(Delivery("open", redelivered=True), FakeJournal(Verdict.UNCERTAIN),
                      outcomes=outcomes)  # fmt: skip
    assert len(again["posts"]) == 1  # sent as usual, not dead-lettered as outcome_unknown
    assert again["dead"] == [] or again["dead"][0][0].headers[H_REASON] != OUTCOME_UNKNOWN


def test_outcomes_are_bounded_oldest_first() -> None:
    outcomes = Outcomes(limit=2)
    for key in ("a", "b", "c"):
        outcomes.remember(key, Known(accepted=True, wamid=key))
    assert list(outcomes.known) == ["b", "c"]
    assert outcomes.take("a") is None
    assert outcomes.take("b") == Known(accepted=True, wamid="b")
    assert outcomes.take("b") is None


async def test_every_attempt_of_a_delivery_is_journalled_under_its_own_key() -> None:
    journal = FakeJournal()
    out = await run(Delivery("open"), journal, throttle_first=True)
    assert len(out["posts"]) == 2
    assert out["kinds"] == [SENT, SENT, SETTLED]
    assert len({key for _, key, _ in journal.entries}) == 1  # not the throttle's scope key


async def test_one_journal_read_serves_a_hand_over_and_a_later_claim_reads_again() -> None:
    stream = JournalStream(None, PoolTopology("p"), "w", lookback=60)  # type: ignore[arg-type]
    reads = 0

    async def read() -> Recollection:
        nonlocal reads
        reads += 1
        recollection = Recollection()
        recollection.apply([(1, "k", SETTLED), (5, "k", SENT)])
        return recollection

    stream._read = read  # type: ignore[method-assign]
    for shard in (1, 3, 5):  # one rebalance
        stream.claimed(shard)
    assert reads == 0  # read only once a delivery comes again
    assert await stream.verdict(1, "k") is Verdict.SETTLED
    assert await stream.verdict(5, "k") is Verdict.UNCERTAIN
    assert await stream.verdict(3, "other") is Verdict.UNKNOWN
    assert reads == 1
    await asyncio.sleep(0.01)
    stream.claimed(7)  # a later hand-over: its previous owner may have written since
    assert await stream.verdict(7, "k") is Verdict.UNKNOWN
    assert reads == 2
