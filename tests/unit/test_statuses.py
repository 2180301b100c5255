"""Unknown outcomes resolved from Meta's status webhooks (issue 18): which events count, the
bounded memory and its waiters, and the decisions, table-driven."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from whatsapp_contract.webhook import status_event
from whatsapp_worker.journal import Redelivery, UncertainSends, Verdict
from whatsapp_worker.statuses import (
    H_UNANSWERED,
    MARGIN,
    QUIET,
    Case,
    Next,
    Resolution,
    Seen,
    StatusBook,
    StatusRecord,
    after_wait,
    at_deadline,
    on_return,
    parse_status_event,
    read_unanswered,
    redelivery,
    resolve,
    unanswered,
    watched,
)


def event(**changes: Any) -> bytes:
    body = status_event(
        pool="p", tenant_id="acme", phone_number_id="2002", status="sent", wamid="wamid.A",
        recipient="34600000001", timestamp=1_700_000_000, message_id="m-1", at=1.0,
    )  # fmt: skip
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


def record(status: str, *, mid: str | None = "m-1", ts: int | None = 1_700_000_000) -> StatusRecord:
    return StatusRecord(mid, "2002", Seen(status, "wamid.A"), ts)


def add(book: StatusBook, mid: str | None, status: str = "sent", wamid: str = "w",
        phone: str = "2002", ts: int | None = None) -> None:  # fmt: skip
    book.add(StatusRecord(mid, phone, Seen(status, wamid), ts))


WORKER_FAILED = json.dumps(
    {"schemaVersion": 1, "pool": "p", "messageId": "m-1", "status": "failed", "attempts": 1,
     "at": 1.0, "reason": "permanent_error", "wamid": "wamid.A"}
).encode()  # fmt: skip


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(event(), record("sent"), id="the receiver's sent"),
        pytest.param(event(status="delivered"), record("delivered"), id="delivered"),
        pytest.param(event(status="read"), record("read"), id="read"),
        pytest.param(
            event(status="failed", errors=[{"code": 131026}]),
            record("failed"),
            id="failed at Meta: it had the message",
        ),
        pytest.param(WORKER_FAILED, None, id="the worker's own failed result: not a status"),
        pytest.param(event(source="worker"), None, id="another source"),
        pytest.param(event(source=...), None, id="no source"),
        pytest.param(event(pool="other"), None, id="another pool"),
        pytest.param(event(status="accepted"), None, id="not a webhook status"),
        pytest.param(
            event(messageId=None),
            record("sent", mid=None),
            id="no message id (not ours): counts for its number",
        ),
        pytest.param(event(timestamp=None), record("sent", ts=None), id="no timestamp"),
        pytest.param(event(phoneNumberId=None), None, id="no number"),
        pytest.param(event(wamid=""), None, id="no wamid"),
        pytest.param(event(messageId=7), None, id="a message id that is not a string"),
        pytest.param(b"not json webhook", None, id="not JSON"),
        pytest.param(b'["webhook"]', None, id="not an object"),
    ],
)
def test_which_events_are_statuses(body: bytes, expected: StatusRecord | None) -> None:
    assert parse_status_event(body, "p") == expected


def test_the_book_keeps_the_first_wamid_and_the_last_status() -> None:
    book = StatusBook(limit=3)
    add(book, "m-1", "delivered", "wamid.A")
    add(book, "m-1", "read", "wamid.B")
    assert book.get("2002", "m-1") == Seen("read", "wamid.A")


def test_the_book_forgets_the_oldest_past_its_limit() -> None:
    book = StatusBook(limit=3)
    for i in range(5):
        add(book, f"m-{i}", wamid=f"w{i}")
    assert len(book) == 3
    assert [book.get("2002", f"m-{i}") is None for i in range(5)] == [
        True,
        True,
        False,
        False,
        False,
    ]
    add(book, "m-2", "delivered", "w2")  # seen again: the newest now
    add(book, "m-5", wamid="w5")
    assert book.get("2002", "m-2") is not None
    assert book.get("2002", "m-3") is None


async def test_a_wait_ends_when_the_status_comes() -> None:
    book = StatusBook()
    waiting = asyncio.create_task(book.wait("2002", "m-1", 5.0))
    other = asyncio.create_task(book.wait("2002", "m-1", 5.0))  # two waiters of one message
    await asyncio.sleep(0)
    add(book, "m-2", wamid="w2")
    assert not waiting.done()
    add(book, "m-1", wamid="w1")
    assert await waiting == Seen("sent", "w1")
    assert await other == Seen("sent", "w1")
    assert book._waiters == {}


async def test_a_known_status_is_returned_at_once_and_a_missing_one_after_the_wait() -> None:
    book = StatusBook()
    add(book, "m-1", wamid="w1")
    assert await book.wait("2002", "m-1", 0) == Seen("sent", "w1")
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await book.wait("2002", "m-2", 0.05) is None
    assert loop.time() - started >= 0.04
    assert await book.wait("2002", "m-3", 0) is None  # 0: no wait at all
    assert book._waiters == {}


@pytest.mark.parametrize(
    ("app", "mid", "wait", "expected"),
    [
        pytest.param("123", "m-1", 20.0, True, id="receiver, id, wait on"),
        pytest.param(None, "m-1", 20.0, False, id="no receiver for the tenant"),
        pytest.param("123", None, 20.0, False, id="no id to join by"),
        pytest.param("123", "m-1", 0.0, False, id="status_wait 0: off"),
    ],
)
def test_when_an_uncertain_send_waits(
    app: str | None, mid: str | None, wait: float, expected: bool
) -> None:
    assert watched(webhook_app_id=app, message_id=mid, status_wait=wait) is expected


def test_the_book_follows_each_numbers_progress() -> None:
    now = [100.0]
    book = StatusBook(clock=lambda: now[0])
    assert (book.latest("2002"), book.idle()) == (None, None)
    add(book, None, ts=1_700_000_005)  # a status of a message without an id counts too
    add(book, "m-1", ts=1_700_000_001)  # older: the latest stays
    add(book, "m-2", phone="3003", ts=1_700_000_009)
    now[0] = 103.0
    assert (book.latest("2002"), book.idle()) == (1_700_000_005, 3.0)
    assert book.latest("3003") == 1_700_000_009
    assert len(book) == 2  # m-1 and m-2: a status without an id is not remembered


SINCE = 1_700_000_000.0
LATER = int(SINCE + MARGIN)  # Meta stamped it after the wait began (with the margin)
EARLIER = int(SINCE)


@pytest.mark.parametrize(
    ("seen", "caught_up", "latest", "expected"),
    [
        pytest.param(
            Seen("sent", "w"), True, None, Resolution.ACCEPTED, id="a status: Meta has it"
        ),
        pytest.param(
            Seen("failed", "w"),
            False,
            None,
            Resolution.ACCEPTED,
            id="a status while catching up counts too",
        ),
        pytest.param(
            None,
            True,
            LATER,
            Resolution.RESEND,
            id="a later status of its number came: Meta is past it",
        ),
        pytest.param(None, True, EARLIER, None, id="its number's statuses from before: wait"),
        pytest.param(None, True, None, None, id="nothing of its number yet: wait"),
        pytest.param(None, False, LATER, None, id="not caught up: wait"),
    ],
)
def test_what_a_wait_decides_while_it_lasts(
    seen: Seen | None, caught_up: bool, latest: int | None, expected: Resolution | None
) -> None:
    assert resolve(seen, caught_up=caught_up, latest=latest, since=SINCE) is expected


@pytest.mark.parametrize(
    ("caught_up", "latest", "idle", "unheard", "expected"),
    [
        pytest.param(True, None, None, None, Resolution.QUIET, id="no status read ever"),
        pytest.param(
            True, EARLIER, QUIET, None, Resolution.QUIET, id="the pool quiet: nothing on its way"
        ),
        pytest.param(
            True,
            EARLIER,
            QUIET,
            QUIET - 1,
            Resolution.QUIET,
            id="the pool quiet, a send of a moment ago not due yet",
        ),
        pytest.param(
            True,
            EARLIER,
            QUIET,
            QUIET,
            Resolution.LAGGING,
            id="silent while statuses are due: the webhooks stalled",
        ),
        pytest.param(
            True,
            None,
            None,
            QUIET + 1,
            Resolution.LAGGING,
            id="never a status, while sends are due",
        ),
        pytest.param(True, LATER, 0.1, None, Resolution.RESEND, id="its number past it"),
        pytest.param(
            True,
            EARLIER,
            0.5,
            None,
            Resolution.LAGGING,
            id="its number's statuses still come, all older: the webhooks lag",
        ),
        pytest.param(False, None, None, None, Resolution.AS_BEFORE, id="not caught up"),
    ],
)
def test_what_the_end_of_a_wait_decides(
    caught_up: bool,
    latest: int | None,
    idle: float | None,
    unheard: float | None,
    expected: Resolution,
) -> None:
    found = at_deadline(caught_up=caught_up, latest=latest, idle=idle, unheard=unheard,
                        since=SINCE)  # fmt: skip
    assert found is expected


@pytest.mark.parametrize(
    ("verdict", "policy", "is_watched", "expected"),
    [
        (Verdict.UNCERTAIN, "dead_letter", True, None),
        (Verdict.UNCERTAIN, "resend", True, None),
        (Verdict.UNCERTAIN, "dead_letter", False, Redelivery.DEAD_LETTER),
        (Verdict.UNCERTAIN, "resend", False, Redelivery.RESEND),
        (Verdict.SETTLED, "dead_letter", True, Redelivery.ACK),
        (Verdict.UNKNOWN, "dead_letter", True, Redelivery.SEND),
    ],
)
def test_only_an_uncertain_redelivery_waits(
    verdict: Verdict, policy: UncertainSends, is_watched: bool, expected: Redelivery | None
) -> None:
    assert redelivery(verdict, policy, watched=is_watched) is expected


@pytest.mark.parametrize(
    ("resolution", "case", "policy", "expected"),
    [
        (Resolution.ACCEPTED, "redelivery", "dead_letter", Next.SETTLE),
        (Resolution.ACCEPTED, "timeout", "dead_letter", Next.SETTLE),
        (Resolution.RESEND, "redelivery", "dead_letter", Next.SEND),
        (Resolution.RESEND, "timeout", "resend", Next.SEND),
        (Resolution.LAGGING, "redelivery", "dead_letter", Next.PARK),
        (Resolution.LAGGING, "timeout", "dead_letter", Next.PARK),
        (Resolution.AS_BEFORE, "redelivery", "dead_letter", Next.DEAD_LETTER),
        (Resolution.AS_BEFORE, "redelivery", "resend", Next.SEND),
        (Resolution.AS_BEFORE, "timeout", "dead_letter", Next.SEND),  # retried, as before
    ],
)
def test_what_follows_a_wait(
    resolution: Resolution, case: Case, policy: UncertainSends, expected: Next
) -> None:
    assert after_wait(resolution, case, policy) is expected


@pytest.mark.parametrize(
    ("seen", "latest", "idle", "waited", "expected"),
    [
        pytest.param(
            Seen("sent", "w"),
            None,
            None,
            500.0,
            Resolution.ACCEPTED,
            id="its status came meanwhile",
        ),
        pytest.param(None, LATER, 0.1, 30.0, Resolution.RESEND, id="its number is past it"),
        pytest.param(
            None,
            EARLIER,
            0.1,
            30.0,
            Resolution.LAGGING,
            id="still lagging, within patience: parked again",
        ),
        pytest.param(
            None,
            EARLIER,
            0.1,
            300.0,
            Resolution.AS_BEFORE,
            id="still lagging after patience: as before",
        ),
        pytest.param(
            None, EARLIER, QUIET, 300.0, Resolution.QUIET, id="after patience, the pool quiet"
        ),
    ],
)
def test_what_a_parked_copy_finds_when_it_is_back(
    seen: Seen | None, latest: int | None, idle: float | None, waited: float,
    expected: Resolution,
) -> None:  # fmt: skip
    found = on_return(seen, caught_up=True, latest=latest, idle=idle, unheard=None, since=SINCE,
                      now=SINCE + waited, patience=300.0)  # fmt: skip
    assert found is expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({H_UNANSWERED: unanswered("timeout", SINCE)}, ("timeout", SINCE)),
        ({H_UNANSWERED: unanswered("redelivery", 1.5).encode()}, ("redelivery", 1.5)),
        ({}, None),
        ({H_UNANSWERED: "other:1"}, None),
        ({H_UNANSWERED: "timeout:nan"}, None),
        ({H_UNANSWERED: "timeout:soon"}, None),
        ({H_UNANSWERED: 7}, None),
    ],
)
def test_the_parked_header_round_trips(headers: dict[str, object], expected: object) -> None:
    assert read_unanswered(headers) == expected


def test_the_book_knows_when_statuses_are_due() -> None:
    now = [100.0]
    book = StatusBook(clock=lambda: now[0])
    assert book.unheard() is None
    book.sent()
    now[0] = 102.0
    book.sent()  # the first unheard send counts
    now[0] = 106.0
    assert book.unheard() == 6.0
    add(book, "m-1")  # a status: what was due may have come
    assert book.unheard() is None


def test_a_status_settles_only_its_own_numbers_message() -> None:
    """Message ids are the producers': another tenant's message with the same id, sent from
    another number, never settles this one's send (which would then be lost)."""
    book = StatusBook()
    add(book, "order-42", wamid="wamid.OTHER", phone="3003")
    assert book.get("2002", "order-42") is None
    assert book.get("3003", "order-42") == Seen("sent", "wamid.OTHER")
