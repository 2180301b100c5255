"""The ingress's batching (whatsapp_webhook/batch.py): changes for one shard handed in during
one turn of the event loop share one confirmed message, in order; a message confirmed or
failed is so for every change in it; and the processor reads batches and single changes
alike (change.parse_changes)."""

from __future__ import annotations

import asyncio
import json

import pytest

from whatsapp_contract.webhook import NumberEntry
from whatsapp_webhook.batch import Batcher, ShuttingDown
from whatsapp_webhook.change import Change, batch_body, dump_change, parse_change, parse_changes

ROUTE = NumberEntry(
    phone_number_id="1065", waba_id="1022", tenant_id="acme", namespace="shop", name="acme",
    pool="eu", app_id="4242",
)  # fmt: skip


class Recorder:
    """A publish that records (routing key, the message's entries) once `gate` opens."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str]]] = []
        self.fail: set[str] = set()  # routing keys whose publish raises
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, routing_key: str, body: bytes) -> None:
        await self.gate.wait()
        if routing_key in self.fail:
            raise RuntimeError("nacked")
        parsed = json.loads(body)
        assert parsed["format"] == 2
        self.sent.append((routing_key, [entry["id"] for entry in parsed["changes"]]))


def entry(name: str, size: int = 0) -> bytes:
    return json.dumps({"id": name, "pad": "x" * size}).encode()


async def test_one_turn_one_message_per_shard_in_order() -> None:
    publish = Recorder()
    batcher = Batcher(publish)
    await asyncio.gather(*(batcher.publish(k, entry(f"{k}{i}")) for i in range(5) for k in "ab"))
    assert sorted(publish.sent) == [("a", ["a0", "a1", "a2", "a3", "a4"]),
                                    ("b", ["b0", "b1", "b2", "b3", "b4"])]  # fmt: skip
    assert batcher.batches == 2


async def test_a_later_turn_is_a_later_message() -> None:
    publish = Recorder()
    batcher = Batcher(publish)
    await batcher.publish("a", entry("first"))
    await batcher.publish("a", entry("second"))
    assert publish.sent == [("a", ["first"]), ("a", ["second"])]


@pytest.mark.parametrize(
    ("max_changes", "max_bytes", "sizes", "expected"),
    [
        pytest.param(3, 10**6, [0] * 7, [3, 3, 1], id="by count"),
        pytest.param(100, 300, [100] * 5, [2, 2, 1], id="by bytes"),
        pytest.param(100, 300, [10, 1000, 10], [1, 1, 1], id="a large change goes alone"),
        pytest.param(100, 10**6, [0] * 4, [4], id="under both limits"),
    ],
)
async def test_batches_stay_small_enough_to_redo(
    max_changes: int, max_bytes: int, sizes: list[int], expected: list[int]
) -> None:
    publish = Recorder()
    batcher = Batcher(publish, max_changes=max_changes, max_bytes=max_bytes)
    await asyncio.gather(*(batcher.publish("a", entry(str(i), n)) for i, n in enumerate(sizes)))
    assert [len(ids) for _, ids in publish.sent] == expected
    assert [i for _, ids in publish.sent for i in ids] == [str(i) for i in range(len(sizes))]


async def test_a_failed_message_fails_each_of_its_changes_and_no_other() -> None:
    publish = Recorder()
    publish.fail = {"b"}
    batcher = Batcher(publish)
    outcomes = await asyncio.gather(
        batcher.publish("a", entry("a0")), batcher.publish("b", entry("b0")),
        batcher.publish("b", entry("b1")), return_exceptions=True,
    )  # fmt: skip
    assert [type(o).__name__ for o in outcomes] == ["NoneType", "RuntimeError", "RuntimeError"]
    assert publish.sent == [("a", ["a0"])]


async def test_a_request_gone_meanwhile_does_not_break_the_others() -> None:
    publish = Recorder()
    publish.gate.clear()
    batcher = Batcher(publish)
    gone = asyncio.create_task(batcher.publish("a", entry("gone")))
    kept = asyncio.create_task(batcher.publish("a", entry("kept")))
    await asyncio.sleep(0.01)
    gone.cancel()
    publish.gate.set()
    await kept
    assert publish.sent == [("a", ["gone", "kept"])]  # published all the same: Meta retries


async def test_a_publish_cut_short_by_shutdown_answers_its_requests() -> None:
    publish = Recorder()
    publish.gate.clear()
    batcher = Batcher(publish)
    waiting = asyncio.create_task(batcher.publish("a", entry("x")))
    await asyncio.sleep(0.01)
    for task in list(batcher._tasks):
        task.cancel()
    with pytest.raises(ShuttingDown):
        await waiting
    await batcher.drain()


def change(wamid: str) -> Change:
    value = {"metadata": {"phone_number_id": ROUTE.phone_number_id},
             "statuses": [{"id": wamid, "status": "sent", "timestamp": "1"}]}  # fmt: skip
    return Change("4242", ROUTE.waba_id, "messages", value, (ROUTE,), 1.0)


@pytest.mark.parametrize(
    ("body", "wamids", "invalid"),
    [
        pytest.param(
            batch_body([dump_change(change("w1")), dump_change(change("w2"))]),
            ["w1", "w2"],
            0,
            id="a batch, in order",
        ),
        pytest.param(dump_change(change("w1")), ["w1"], 0, id="a single change"),
        pytest.param(
            batch_body([dump_change(change("w1")), b'{"format":1}', b"[]"]),
            ["w1"],
            2,
            id="a batch's bad entries only are dropped",
        ),
        pytest.param(b'{"format":2,"changes":{}}', [], 1, id="a batch that is not a list"),
        pytest.param(b'{"format":3}', [], 1, id="an unknown format"),
        pytest.param(b"not json", [], 1, id="not JSON"),
        pytest.param(b"\xff\xfe", [], 1, id="not UTF-8"),
    ],
)
def test_parse_changes(body: bytes, wamids: list[str], invalid: int) -> None:
    changes, bad = parse_changes(body)
    assert [c.value["statuses"][0]["id"] for c in changes] == wamids
    assert bad == invalid


def test_a_batch_entry_is_the_single_change_format() -> None:
    one = change("w1")
    (back,), _ = parse_changes(batch_body([dump_change(one)]))
    assert back == parse_change(dump_change(one)) == one


@pytest.mark.parametrize(
    ("max_in_flight", "expected"),
    [
        pytest.param(1, [["a0"], ["a1", "a2", "a3", "a4"]], id="one in flight"),
        pytest.param(2, [["a0"], ["a1"], ["a2", "a3", "a4"]], id="two in flight"),
    ],
)
async def test_changes_wait_for_a_confirm_and_then_go_together(
    max_in_flight: int, expected: list[list[str]]
) -> None:
    publish = Recorder()
    publish.gate.clear()  # no confirm comes back until the gate opens
    batcher = Batcher(publish, max_in_flight=max_in_flight)
    waiting = []
    for i in range(5):  # one change per turn of the loop
        waiting.append(asyncio.create_task(batcher.publish("a", entry(f"a{i}"))))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    assert batcher.batches == max_in_flight  # the rest wait for a confirm
    publish.gate.set()
    await asyncio.gather(*waiting)
    assert [ids for _, ids in publish.sent] == expected


async def test_an_idle_shard_sends_at_once_whatever_the_others_wait_for() -> None:
    publish = Recorder()
    publish.gate.clear()
    batcher = Batcher(publish, max_in_flight=1)
    busy = [asyncio.create_task(batcher.publish("a", entry("a0")))]
    await asyncio.sleep(0.01)
    busy.append(asyncio.create_task(batcher.publish("a", entry("a1"))))
    idle = asyncio.create_task(batcher.publish("b", entry("b0")))
    await asyncio.sleep(0.01)
    assert batcher.batches == 2  # a0 and b0 in flight; a1 waits for a0's confirm
    publish.gate.set()
    await asyncio.gather(idle, *busy)
    assert [ids for _, ids in publish.sent] == [["a0"], ["b0"], ["a1"]]


async def test_never_more_unconfirmed_messages_than_the_limit() -> None:
    publish = Recorder()
    publish.gate.clear()
    batcher = Batcher(publish, max_changes=2, max_in_flight=2)
    waiting = [asyncio.create_task(batcher.publish("a", entry(f"a{i}"))) for i in range(9)]
    await asyncio.sleep(0.01)
    assert batcher.batches == 2  # 5 messages' worth waiting: only 2 go before a confirm
    publish.gate.set()
    await asyncio.gather(*waiting)
    assert [ids for _, ids in publish.sent][:2] == [["a0", "a1"], ["a2", "a3"]]
    assert [i for _, ids in publish.sent for i in ids] == [f"a{i}" for i in range(9)]
    assert all(len(ids) <= 2 for _, ids in publish.sent)
