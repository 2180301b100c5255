"""`kubectl whatsapp send`'s reading of the result events of its message (outcome.py)."""

from __future__ import annotations

from typing import Any

import pytest

from whatsapp_kubectl.outcome import Step, step, timed_out

ID = "kubectl-0123456789abcdef"


def worker(status: str, **extra: Any) -> dict[str, Any]:
    return {"schemaVersion": 1, "pool": "p", "messageId": ID, "status": status, **extra}


def webhook(status: str, **extra: Any) -> dict[str, Any]:
    return {"source": "webhook", **worker(status, **extra)}


FAILED = webhook(
    "failed",
    error={"code": 131026, "title": "Message undeliverable", "details": "not on WhatsApp"},
)
CASES = [
    ("another message's event", {**worker("accepted"), "messageId": "other"}, False, None),
    ("not a result event", {"messageId": ID, "status": "held"}, False, None),
    ("accepted, no receiver: done", worker("accepted", wamid="wamid.A"), False,
     Step("accepted: Meta took it (wamid wamid.A)", final=True, ok=True)),
    ("accepted, statuses to come", worker("accepted", wamid="wamid.A"), True,
     Step("accepted: Meta took it (wamid wamid.A)", final=False, ok=True)),
    ("accepted, possibly twice", worker("accepted", wamid="w", possibleDuplicate=True), False,
     Step("accepted: Meta took it (wamid w), possibly sent twice (a send timed out after its "
          "request was written)", final=True, ok=True)),
    ("dead-lettered by the worker with Meta's code",
     worker("failed", reason="permanent_error", code="131008", detail="Required parameter"),
     True, Step("dead-lettered: permanent_error (Meta code 131008): Required parameter",
                final=True, ok=False)),
    ("dead-lettered without a code", worker("failed", reason="tenant_unavailable", code=""),
     False, Step("dead-lettered: tenant_unavailable", final=True, ok=False)),
    ("sent: keep waiting", webhook("sent"), True,
     Step("sent: Meta sent it to WhatsApp", final=False, ok=True)),
    ("delivered", webhook("delivered"), True,
     Step("delivered: on the recipient's phone", final=True, ok=True)),
    ("read", webhook("read"), True, Step("read: on the recipient's phone", final=True, ok=True)),
    ("failed at Meta: code and title", FAILED, True,
     Step("failed: Meta code 131026 Message undeliverable (not on WhatsApp)", True, False)),
    ("failed at Meta without an error", webhook("failed"), True,
     Step("failed: no error given", final=True, ok=False)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("event", "statuses", "expected"), [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_step(event: dict[str, Any], statuses: bool, expected: Step | None) -> None:
    assert step(event, ID, statuses=statuses) == expected


@pytest.mark.parametrize(
    ("seen", "statuses", "start"),
    [
        ([], False, "no outcome within 30 s: the message is still queued or held"),
        (["accepted: Meta took it (wamid w)"], True, "accepted, but no delivery status within"),
        (["accepted: x", "sent: Meta sent it"], True, "sent, but not delivered within 30 s"),
    ],
    ids=["nothing came", "accepted, the receiver silent", "sent, never delivered"],
)
def test_a_timeout_says_what_came_and_where_to_look(
    seen: list[str], statuses: bool, start: str
) -> None:
    assert timed_out(30, seen, statuses=statuses).startswith(start)
