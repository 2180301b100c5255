"""What `kubectl whatsapp send` makes of the result events of its message. Pure.

The events are those of the results exchange `whatsapp.results` (docs/workers.md): the
worker's own outcome, `<pool>.accepted` (Meta answered 200 with a wamid) or `<pool>.failed`
(dead-lettered, with its reason, Meta's code and detail), and, when the webhook receiver
serves the tenant, Meta's delivery statuses `<pool>.sent|delivered|read|failed` (`"source":
"webhook"`, Meta's error code and title in `error`). Each event of the message makes a line;
the wait ends at the first final one: a failure, a `delivered` or `read`, or the worker's
`accepted` when no status will come (the tenant has no WhatsAppApp for the receiver).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DELIVERED = frozenset({"delivered", "read"})


@dataclass(frozen=True)
class Step:
    line: str
    final: bool
    ok: bool


def step(event: Mapping[str, Any], message_id: str, *, statuses: bool) -> Step | None:
    """The step an event makes for message `message_id` (None: another message's, or not a
    result event). `statuses`: Meta's delivery statuses are expected after `accepted`."""
    if event.get("messageId") != message_id:
        return None
    status = event.get("status")
    if event.get("source") == "webhook":
        return _webhook(event, status)
    if status == "accepted":
        line = f"accepted: Meta took it (wamid {event.get('wamid') or '?'})"
        if event.get("possibleDuplicate"):
            line += ", possibly sent twice (a send timed out after its request was written)"
        if event.get("resolvedBy") == "webhook":
            line += ", as its status webhook said"
        return Step(line, final=not statuses, ok=True)
    if status == "failed":
        reason = event.get("reason") or "unknown"
        code = event.get("code")
        meta = f" (Meta code {code})" if code not in (None, "") else ""
        detail = str(event.get("detail") or "").strip()
        return Step(
            f"dead-lettered: {reason}{meta}" + (f": {detail}" if detail else ""), True, False
        )
    return None


def _webhook(event: Mapping[str, Any], status: Any) -> Step | None:
    if status == "sent":
        return Step("sent: Meta sent it to WhatsApp", final=False, ok=True)
    if status in DELIVERED:
        return Step(f"{status}: on the recipient's phone", final=True, ok=True)
    if status == "failed":
        error = event.get("error") if isinstance(event.get("error"), Mapping) else {}
        assert isinstance(error, Mapping)
        code, title = error.get("code"), error.get("title")
        said = " ".join(str(x) for x in (code, title) if x not in (None, "")) or "no error given"
        line = f"failed: Meta code {said}" if code not in (None, "") else f"failed: {said}"
        details = str(error.get("details") or "").strip()
        return Step(line + (f" ({details})" if details else ""), final=True, ok=False)
    return None


def timed_out(seconds: float, seen: list[str], *, statuses: bool) -> str:
    """The error when the wait ends without a final event: what is known, and where to look."""
    last = seen[-1].split(":", 1)[0] if seen else None
    if last is None:
        return (
            f"no outcome within {seconds:g} s: the message is still queued or held (the pool's "
            "workers busy or down, or the tenant not Ready: see kubectl whatsapp status)"
        )
    if last == "accepted" and statuses:
        return (
            f"accepted, but no delivery status within {seconds:g} s: is the webhook receiver "
            "running (the operator's --webhook-receiver) and Meta's app subscribed to it?"
        )
    return f"{last}, but not delivered within {seconds:g} s (the recipient's phone may be off)"
