"""What a delivery given again needs, for `sender.py`: its send-journal key, the journal's
verdict and what follows from it (`journal.decide`), the *sent* entry before each request, and
what this process remembers of the sends it could not settle (its connection went away).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from .delivery import TASK_ID, Failure
from .journal import (
    ABANDONED,
    NOT_SENT,
    OUTCOME_UNKNOWN,
    SENT,
    Known,
    Outcomes,
    Redelivery,
    UncertainSends,
    decide,
    delivery_key,
    uncertain_detail,
)
from .journal_stream import JournalStream
from .messages import OutboundMessage
from .metrics import WorkerMetrics
from .policy import Attempt
from .settle import Settler


@dataclass
class Progress:
    """What is known of a delivery's send so far (None: it may be at Meta, unanswered)."""

    outcome: Known | None = NOT_SENT
    probe: bool = False  # the one message let through to test a paused number


class Recovery:
    def __init__(
        self,
        *,
        pool: str,
        journal: JournalStream | None,
        outcomes: Outcomes,
        uncertain_sends: UncertainSends,
        settler: Settler,
        metrics: WorkerMetrics,
    ) -> None:
        self.pool = pool
        self.journal = journal
        self.outcomes = outcomes
        self.uncertain_sends: UncertainSends = uncertain_sends
        self.settler = settler
        self.metrics = metrics

    def key(
        self, delivery: AbstractIncomingMessage, message: OutboundMessage, headers: dict[str, Any]
    ) -> str | None:
        """The delivery's send-journal key, or None when it is not journalled (no journal, or
        no message id to tell it from another message with the same content)."""
        if self.journal is None:
            return None
        identity = message.message_id or delivery.message_id or headers.get(TASK_ID)
        if not identity:
            return None
        return delivery_key(delivery.body, str(identity), headers)

    async def redelivered(
        self,
        delivery: AbstractIncomingMessage,
        shard: int,
        message: OutboundMessage,
        attempt: Attempt,
        headers: dict[str, Any],
        key: str,
    ) -> bool | None:
        """A journalled delivery RabbitMQ gives again: None once it is settled here (acked,
        settled from memory, or dead-lettered as outcome_unknown); else it is to be sent, and
        True means as a possible duplicate."""
        known = self.outcomes.take(key)
        if known is not None:  # this process sent it before its connection went away
            self.metrics.redeliveries.labels(self.pool, "remembered").inc()
            if not known.accepted:
                return False
            try:
                await self.settler.accepted(
                    delivery, shard, message, known.attempt, known.wamid, answer=known.answer
                )
            except Exception:  # gone again: still known for the next time
                self.outcomes.remember(key, known)
                raise
            return None
        if self.journal is None:
            return False
        verdict = await self.journal.verdict(shard, key)
        self.metrics.redeliveries.labels(self.pool, verdict.value).inc()
        redelivery = decide(verdict, self.uncertain_sends)
        if redelivery is Redelivery.ACK:  # its outcome is published already
            await delivery.ack()
            return None
        if redelivery is Redelivery.DEAD_LETTER:
            failure = Failure(
                reason=OUTCOME_UNKNOWN,
                detail=uncertain_detail(self.journal.lookback),
                possible_duplicate=True,
            )
            await self.settler.dead_letter(delivery, shard, message, failure, attempt, headers)
            return None
        if redelivery is Redelivery.RESEND:
            self.metrics.possible_duplicates.labels(self.pool).inc()
            return True
        return False

    async def sent(self, delivery: AbstractIncomingMessage, shard: int, key: str | None) -> bool:
        """Journal the send before it happens (confirmed); False when the delivery's channel
        closed meanwhile: then it is not sent here, and the entry is taken back."""
        if key is None or self.journal is None:
            return True
        await self.journal.record(shard, key, SENT)
        if not orphaned(delivery):
            return True
        with contextlib.suppress(Exception):  # best effort: the next owner may resend it
            await self.journal.record(shard, key, ABANDONED)
        return False

    def lost(self, key: str | None, progress: Progress) -> None:
        """The delivery could not be settled: remember what this process knows of its send."""
        if key is not None and progress.outcome is not None:
            self.outcomes.remember(key, progress.outcome)


def orphaned(delivery: AbstractIncomingMessage) -> bool:
    """True when the delivery's channel is closed: it can no longer be settled here."""
    try:
        return delivery.channel.is_closed
    except aio_pika.exceptions.ChannelInvalidStateError:
        return True
