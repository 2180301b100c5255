"""What a delivery given again needs, for `sender.py`: its send-journal key, the journal's
verdict and what follows from it (`journal.decide`), the *sent* entry before each request, and
what this process remembers of the sends it could not settle (its connection went away).
A send that may be at Meta unanswered (an uncertain verdict, or a request that timed out)
waits for its status webhook first, when the receiver runs for its tenant (`unanswered.py`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from whatsapp_contract.resolved import TenantConfig

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
    delivery_key,
    uncertain_detail,
)
from .journal_stream import JournalStream
from .messages import OutboundMessage
from .metrics import WorkerMetrics
from .policy import Attempt
from .settle import Settler
from .statuses import redelivery
from .unanswered import Unanswered
from .webhooks import Webhooks


@dataclass
class Progress:
    """What is known of a delivery's send so far (None: it may be at Meta, unanswered)."""

    outcome: Known | None = NOT_SENT
    probe: bool = False  # the one message let through to test a paused number
    identity: str | None = None  # the id in its biz_opaque_callback_data (callback.py)


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
        webhooks: Webhooks | None = None,
    ) -> None:
        self.pool = pool
        self.journal = journal
        self.outcomes = outcomes
        self.uncertain_sends: UncertainSends = uncertain_sends
        self.settler = settler
        self.metrics = metrics
        self.unanswered = (
            None
            if webhooks is None
            else Unanswered(
                pool=pool,
                webhooks=webhooks,
                settler=settler,
                metrics=metrics,
                uncertain_sends=uncertain_sends,
                unknown_detail=lambda: uncertain_detail(journal.lookback if journal else 0),
            )
        )

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

    async def resume(
        self,
        delivery: AbstractIncomingMessage,
        shard: int,
        message: OutboundMessage,
        attempt: Attempt,
        headers: dict[str, Any],
        key: str | None,
        tenant: TenantConfig | None,
        identity: str | None,
    ) -> bool | None:
        """Before a delivery is sent: a redelivered journalled one (`redelivered`), and a copy
        parked while the webhooks lagged (`Unanswered.returned`). None once it is settled
        here; else it is to be sent, and True means as a possible duplicate."""
        if key is not None and delivery.redelivered:
            resumed = await self.redelivered(
                delivery, shard, message, attempt, headers, key, tenant, identity
            )
            if resumed is not False:
                return resumed
        if self.unanswered is None:
            return False
        return await self.unanswered.returned(delivery, shard, message, attempt, headers, identity)

    async def redelivered(
        self,
        delivery: AbstractIncomingMessage,
        shard: int,
        message: OutboundMessage,
        attempt: Attempt,
        headers: dict[str, Any],
        key: str,
        tenant: TenantConfig | None = None,
        identity: str | None = None,
    ) -> bool | None:
        """A journalled delivery RabbitMQ gives again: None once it is settled here (acked,
        settled from memory or from its status webhook, or dead-lettered as outcome_unknown);
        else it is to be sent, and True means as a possible duplicate."""
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
        watching = self.unanswered is not None and self.unanswered.watching(tenant, identity)
        decided = redelivery(verdict, self.uncertain_sends, watched=watching)
        if decided is None:  # uncertain: Meta's status webhook may tell
            assert self.unanswered is not None
            assert identity is not None
            return await self.unanswered.redelivered(
                delivery, shard, message, attempt, headers, identity
            )
        return await self._carry_out(decided, delivery, shard, message, attempt, headers)

    async def _carry_out(
        self,
        redelivery: Redelivery,
        delivery: AbstractIncomingMessage,
        shard: int,
        message: OutboundMessage,
        attempt: Attempt,
        headers: dict[str, Any],
    ) -> bool | None:
        """The journal's decision for a redelivered delivery (see `redelivered`)."""
        assert self.journal is not None
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

    async def timed_out(
        self,
        delivery: AbstractIncomingMessage,
        shard: int,
        message: OutboundMessage,
        tenant: TenantConfig,
        attempt: Attempt,
        headers: dict[str, Any],
        progress: Progress,
    ) -> bool:
        """A request that may have reached Meta got no answer: wait for its status webhook.
        True once it is settled here (accepted from the status, then `progress` says so; or
        parked while the webhooks lag); False: retried as before."""
        identity = progress.identity
        if self.unanswered is None or not self.unanswered.watching(tenant, identity):
            return False
        assert identity is not None  # watching() needs one
        settled, wamid = await self.unanswered.timed_out(
            delivery, shard, message, attempt, headers, identity
        )
        if wamid is not None:
            progress.outcome = Known(accepted=True, wamid=wamid, attempt=attempt)
        return settled

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
