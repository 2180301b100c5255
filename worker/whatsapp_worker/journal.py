"""The send journal: what a shard's owner had started and settled, so that the next owner can
tell, for a delivery RabbitMQ gives it again, whether Meta may already have it. Pure: keys,
entries, verdicts and the decision; `journal_stream.py` does the I/O.

Meta's send endpoint has no idempotency key, so a process killed between a request reaching
Meta and its delivery's ack left, before this journal, a message that the next owner sent a
second time. Now each owner records, in a RabbitMQ stream (`whatsapp.<pool>.journal`, kept a
few minutes), before each request the delivery's key as *sent*, and before each ack the key as
*settled* (its result, delay-queue copy or dead letter is already published). Both wait for
the broker's confirm. For a redelivered delivery the next owner reads the journal once and:

- *settled*: its outcome is already published; ack it, send nothing (no duplicate);
- *sent*, never settled: Meta may or may not have it. The pool's `uncertain_sends` decides:
  `dead_letter` (default: reason `outcome_unknown`, the producer decides) or `resend` (at
  least once: the result says `possibleDuplicate`);
- anything else (it was only prefetched, or the request was abandoned): sent as usual.

Keys are hashes (body, message id, copy id), never content. Only messages with an id are
journalled (`metadata.messageId`, the AMQP `message_id` or a Celery task id).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from .delivery import H_COPY, SendAnswer

SENT = "s"  # the request is about to go out (confirmed before it does)
SETTLED = "d"  # the outcome is published elsewhere; the ack follows
ABANDONED = "a"  # recorded as sent, then not sent after all (the channel closed first)
KINDS = frozenset({SENT, SETTLED, ABANDONED})
OUTCOME_UNKNOWN = "outcome_unknown"
MAX_LOOKBACK = 600.0  # seconds; the stream keeps 15 minutes (journal_stream.STREAM_ARGUMENTS)
UncertainSends = Literal["dead_letter", "resend"]


class Verdict(Enum):
    SETTLED = "settled"
    UNCERTAIN = "uncertain"
    UNKNOWN = "unknown"


class Redelivery(Enum):
    """What to do with a delivery RabbitMQ gives again."""

    ACK = "ack"  # already settled by the previous owner
    DEAD_LETTER = "dead_letter"  # uncertain, and the pool does not resend those
    RESEND = "resend"  # uncertain, sent again as a possible duplicate
    SEND = "send"  # nothing was sent for it: as usual


def decide(verdict: Verdict, uncertain_sends: UncertainSends) -> Redelivery:
    if verdict is Verdict.SETTLED:
        return Redelivery.ACK
    if verdict is Verdict.UNCERTAIN:
        return Redelivery.RESEND if uncertain_sends == "resend" else Redelivery.DEAD_LETTER
    return Redelivery.SEND


def delivery_key(body: bytes, identity: str, headers: Mapping[str, Any]) -> str:
    """Names one copy of a message: a redelivery has the same key; a copy this worker made
    (a delay-queue round, a dead letter) has its own `x-whatsapp-copy` id and so its own key.
    `identity` is the producer's message id: without one, two messages with the same content
    could not be told apart, and such messages are not journalled (sent at least once)."""
    digest = hashlib.blake2b(body, digest_size=16)
    digest.update(b"\0" + identity.encode())
    digest.update(b"\0" + str(headers.get(H_COPY, "")).encode())
    return digest.hexdigest()


Entry = tuple[int, str, str]  # shard, key, kind


def encode_batch(worker: str, entries: Iterable[Entry], marker: str | None = None) -> bytes:
    """One stream message: a batch of entries of one process (or a reader's end marker)."""
    body: dict[str, Any] = {"v": 1, "w": worker, "e": [list(e) for e in entries]}
    if marker is not None:
        body["m"] = marker
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Batch:
    worker: str
    entries: tuple[Entry, ...]
    marker: str | None = None


def decode_batch(body: bytes) -> Batch | None:
    """A batch, or None for anything that is not one (skipped: the journal only ever helps)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("v") != 1 or not isinstance(data.get("e"), list):
        return None
    entries: list[Entry] = []
    for item in data["e"]:
        if (
            isinstance(item, list)
            and len(item) == 3
            and isinstance(item[0], int)
            and not isinstance(item[0], bool)
            and isinstance(item[1], str)
            and item[2] in KINDS
        ):
            entries.append((item[0], item[1], item[2]))
    marker = data.get("m")
    return Batch(
        str(data.get("w", "")), tuple(entries), marker if isinstance(marker, str) else None
    )


@dataclass
class Recollection:
    """The last kind recorded for each (shard, key), in journal order."""

    last: dict[tuple[int, str], str] = field(default_factory=dict)

    def apply(self, entries: Iterable[Entry]) -> None:
        for shard, key, kind in entries:
            self.last[(shard, key)] = kind

    def verdict(self, shard: int, key: str) -> Verdict:
        kind = self.last.get((shard, key))
        if kind == SETTLED:
            return Verdict.SETTLED
        if kind == SENT:
            return Verdict.UNCERTAIN
        return Verdict.UNKNOWN


def uncertain_detail(lookback: float) -> str:
    return (
        "the worker sending this message stopped before Meta's answer was recorded: Meta may "
        "or may not have delivered it (the Graph API has no idempotency key). It was not sent "
        "again; publish it again only if a duplicate is acceptable. (found in the send "
        f"journal's last {lookback:.0f} s)"
    )


@dataclass(frozen=True)
class Known:
    """What this process itself learned of a send whose delivery it could not settle (its
    broker connection went away): accepted by Meta (with the wamid), or not sent at all."""

    accepted: bool
    wamid: str | None = None
    attempt: Any = None  # policy.Attempt of the accepted send
    answer: SendAnswer | None = None  # Meta's answer to the accepted send


NOT_SENT = Known(accepted=False)


@dataclass
class Outcomes:
    """Known outcomes by journal key, kept across broker sessions so that a delivery given
    back to this process after a reconnect is settled from what it knows, not sent again;
    bounded (the oldest go first)."""

    limit: int = 10_000
    known: dict[str, Known] = field(default_factory=dict)

    def remember(self, key: str, outcome: Known) -> None:
        self.known.pop(key, None)
        self.known[key] = outcome
        while len(self.known) > self.limit:
            del self.known[next(iter(self.known))]

    def take(self, key: str) -> Known | None:
        return self.known.pop(key, None)
