"""The receiver's forward-only, de-duplicating memory (whatsapp_webhook/status_memory.py)."""

from __future__ import annotations

import pytest

from whatsapp_webhook.status_memory import SEEN, StatusMemory, inbound_key, merged


@pytest.mark.parametrize(
    ("previous", "new", "expected"),
    [
        pytest.param(None, "sent", "sent", id="nothing known: the first status is kept"),
        pytest.param(None, "failed", "failed", id="nothing known: failed is kept"),
        pytest.param("sent", "delivered", "delivered", id="sent then delivered moves forward"),
        pytest.param("sent", "read", "read", id="delivered skipped (Meta may): read kept"),
        pytest.param("delivered", "failed", "failed", id="failed after delivered is kept"),
        pytest.param("sent", "sent", None, id="a duplicate changes nothing"),
        pytest.param("delivered", "sent", None, id="a late sent changes nothing"),
        pytest.param("read", "delivered", None, id="a late delivered changes nothing"),
        pytest.param("failed", "read", None, id="failed is final"),
        pytest.param(None, SEEN, SEEN, id="an inbound mark is set"),
        pytest.param(SEEN, SEEN, None, id="an inbound mark set once"),
    ],
)
def test_merge(previous: str | None, new: str, expected: str | None) -> None:
    assert merged(previous, new) == expected


@pytest.mark.parametrize(
    ("arrivals", "published"),
    [
        pytest.param(["sent", "delivered", "read"], ["sent", "delivered", "read"], id="in order"),
        pytest.param(
            ["sent", "sent", "delivered", "delivered"], ["sent", "delivered"], id="duplicates"
        ),
        pytest.param(["delivered", "sent"], ["delivered"], id="reordered: the late sent dropped"),
        pytest.param(["read", "delivered", "sent"], ["read"], id="reversed: read only"),
        pytest.param(["sent", "failed", "delivered"], ["sent", "failed"], id="failed is final"),
        pytest.param(["deleted", "sent"], ["sent"], id="a status that is not ours: never"),
    ],
)
def test_each_status_published_once_and_forward_only(
    arrivals: list[str], published: list[str]
) -> None:
    memory = StatusMemory()
    out = []
    for status in arrivals:
        if memory.publishes("wamid.A", status):
            memory.learn("wamid.A", status)
            out.append(status)
    assert out == published


def test_learning_from_the_log_never_moves_back() -> None:
    memory = StatusMemory()
    assert memory.learn("w", "read")
    assert not memory.learn("w", "sent")  # another replica's older event, read later
    assert memory.last("w") == "read"


def test_least_recently_used_entries_go_first() -> None:
    memory = StatusMemory(max_entries=2)
    memory.learn("a", "sent")
    memory.learn("b", "sent")
    memory.last("a")  # a used again: b is now the oldest
    memory.learn("c", "sent")
    assert (memory.last("a"), memory.last("b"), memory.last("c")) == ("sent", None, "sent")
    assert len(memory) == 2
    assert memory.evicted == 1


def test_a_duplicate_refreshes_its_entry() -> None:
    memory = StatusMemory(max_entries=2)
    memory.learn("a", "delivered")
    memory.learn("b", "sent")
    memory.learn("a", "sent")  # late: no change, but a is recent now
    memory.learn("c", "sent")
    assert memory.last("a") == "delivered"
    assert memory.last("b") is None


def test_inbound_keys_never_meet_wamids() -> None:
    memory = StatusMemory()
    memory.learn(inbound_key("wamid.X"), SEEN)
    assert memory.last("wamid.X") is None
    assert memory.last(inbound_key("wamid.X")) == SEEN


def test_a_memory_holds_at_least_one_entry() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        StatusMemory(0)
