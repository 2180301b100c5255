"""The 24-hour customer service window (issue 18): the book of customers' last messages and the
decision, table-driven, on an injected clock."""

from __future__ import annotations

import pytest

from whatsapp_contract.webhook import SERVICE_WINDOW_SECONDS, parse_window_record, window_record
from whatsapp_worker.message_types import MESSAGE_TYPES
from whatsapp_worker.windows import (
    META_CODE,
    OUTSIDE_SERVICE_WINDOW,
    Window,
    WindowBook,
    WindowCheck,
    outside,
    window_verdict,
)

NOW = 1_700_000_000
DAY = SERVICE_WINDOW_SECONDS


def verdict(
    *,
    check: WindowCheck = "auto",
    app: str | None = "123",
    kind: str = "text",
    caught_up: bool = True,
    last: int | None = None,
) -> Window:
    return window_verdict(
        check=check, webhook_app_id=app, message_type=kind, caught_up=caught_up,
        last_message=last, now=NOW,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param({"last": NOW - 60}, Window.SEND, id="text, customer wrote a minute ago"),
        pytest.param({"last": NOW - DAY + 1}, Window.SEND, id="text, 1 s before the window closes"),
        pytest.param({"last": NOW - DAY}, Window.OUTSIDE, id="text, exactly 24 h: closed"),
        pytest.param({"last": None}, Window.OUTSIDE, id="text, the customer never wrote"),
        pytest.param({"kind": "template"}, Window.SEND, id="a template: allowed outside"),
        pytest.param({"kind": "reaction"}, Window.OUTSIDE, id="a reaction is free-form"),
        pytest.param({"kind": "interactive"}, Window.OUTSIDE, id="interactive is free-form"),
        pytest.param({"kind": "image", "last": NOW - 10}, Window.SEND, id="media, window open"),
        pytest.param({"check": "off"}, Window.UNCHECKED, id="service_window_check off"),
        pytest.param({"app": None}, Window.UNCHECKED, id="no receiver for the tenant"),
        pytest.param({"caught_up": False}, Window.UNCHECKED, id="windows not read up to now"),
        pytest.param(
            {"kind": "template", "caught_up": False},
            Window.UNCHECKED,
            id="not caught up: nothing checked",
        ),
    ],
)
def test_the_window_decides(case: dict[str, object], expected: Window) -> None:
    assert verdict(**case) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", sorted(MESSAGE_TYPES))
def test_every_type_but_templates_needs_an_open_window(kind: str) -> None:
    expected = Window.SEND if kind == "template" else Window.OUTSIDE
    assert verdict(kind=kind) is expected


def test_the_book_keeps_the_latest_message_per_number_and_customer() -> None:
    book = WindowBook(lambda: NOW)
    book.record("2002", "34600000001", NOW - 100)
    book.record("2002", "+34 600 000 001", NOW - 500)  # older, and written otherwise
    book.record("3003", "34600000001", NOW - 5)  # another business number
    assert book.last("2002", "+34600000001") == NOW - 100
    assert book.last("3003", "+34600000001") == NOW - 5
    assert book.last("2002", "+34600000002") is None


def test_records_round_trip_from_the_receiver() -> None:
    record = parse_window_record(window_record(pool="p", phone_number_id="2002",
                                               wa_id="34600000001", timestamp=NOW))  # fmt: skip
    assert record is not None
    book = WindowBook(lambda: NOW)
    book.record(*record)
    assert book.last("2002", "+34600000001") == NOW


def test_closed_windows_are_forgotten() -> None:
    now = [float(NOW)]
    book = WindowBook(lambda: now[0])
    book.record("2002", "1", NOW - DAY - 1)
    book.record("2002", "2", NOW - 10)
    now[0] += 5
    book.prune()
    assert (book.last("2002", "1"), book.last("2002", "2")) == (None, NOW - 10)
    assert len(book) == 1


def test_a_wa_id_learned_from_metas_answer_counts() -> None:
    """Meta may know the customer by another id than the number written (contacts[].wa_id):
    the customer writes from that id."""
    book = WindowBook(lambda: NOW)
    book.record("2002", "5511987654321", NOW - 60)
    assert book.last("2002", "+551187654321") is None
    book.alias("+551187654321", "5511987654321")
    assert book.last("2002", "+551187654321") == NOW - 60
    book.alias("+34600000001", "34600000001")  # the same: nothing to learn
    assert len(book._aliases) == 1


def test_the_dead_letter_names_the_reason_and_metas_code_never_the_number() -> None:
    failure = outside("text", NOW - DAY - 3600, NOW)
    assert (failure.reason, failure.code, failure.error_class) == (
        OUTSIDE_SERVICE_WINDOW,
        META_CODE,
        "permanent",
    )
    assert "25.0 h ago" in failure.detail
    assert "template" in failure.detail
    never = outside("image", None, NOW)
    assert "no message from this customer" in never.detail
    assert "34600" not in failure.detail + never.detail
