"""Sends that may be at Meta without an answer, resolved from Meta's status webhooks when the
receiver runs for their tenant (the decisions are in `statuses.py`): a request that timed out
after it was written, and a killed worker's send (the send journal's verdict UNCERTAIN,
`recovery.py`). Thin I/O: wait (`webhooks.Webhooks.resolve`), then settle the delivery as
accepted, let it be sent, park it in the shard's delay queue while the webhooks lag (and look
again when it is back: `returned`), or dead-letter it as `outcome_unknown`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from aio_pika.abc import AbstractIncomingMessage

from whatsapp_contract.resolved import TenantConfig

from .delivery import Failure
from .journal import OUTCOME_UNKNOWN, UncertainSends
from .messages import OutboundMessage
from .metrics import WorkerMetrics
from .policy import Attempt
from .settle import Settler
from .statuses import (
    H_UNANSWERED,
    RESOLVED_BY_WEBHOOK,
    Case,
    Next,
    Seen,
    after_wait,
    read_unanswered,
    unanswered,
)
from .webhooks import Webhooks

PARK_FOR: Final = 10.0  # seconds in the delay queue between two looks at a lagging send


class Unanswered:
    def __init__(
        self,
        *,
        pool: str,
        webhooks: Webhooks,
        settler: Settler,
        metrics: WorkerMetrics,
        uncertain_sends: UncertainSends,
        unknown_detail: Callable[[], str],  # the outcome_unknown dead letter's detail
    ) -> None:
        self.pool = pool
        self.webhooks = webhooks
        self.settler = settler
        self.metrics = metrics
        self.uncertain_sends: UncertainSends = uncertain_sends
        self.unknown_detail = unknown_detail

    def watching(self, tenant: TenantConfig | None, identity: str | None) -> bool:
        return self.webhooks.watching(tenant, identity)

    async def redelivered(
        self,
        delivery: AbstractIncomingMessage,
        shard: int,
        message: OutboundMessage,
        attempt: Attempt,
        headers: dict[str, Any],
        identity: str,
    ) -> bool | None:
        """A killed worker's send (watched): None once settled here, True to send it again."""
        since = self.webhooks.clock()
        resolution, seen = await self.webhooks.resolve(
            identity, message.phone_number_id, "redelivery"
        )
        step = after_wait(resolution, "redelivery", self.uncertain_sends)
        return await self._carry_out(
            step, "redelivery", since, seen, delivery, shard, message, attempt, headers
        )

    async def timed_out(
        self,
        delivery: AbstractIncomingMessage,
        shard: int,
        message: OutboundMessage,
        attempt: Attempt,
        headers: dict[str, Any],
        identity: str,
    ) -> tuple[bool, str | None]:
        """A request that timed out after it was written (watched): (settled here, and the
        wamid when accepted from its status). Not settled: retried as before."""
        since = self.webhooks.clock()
        resolution, seen = await self.webhooks.resolve(identity, message.phone_number_id, "timeout")
        step = after_wait(resolution, "timeout", self.uncertain_sends)
        if step is Next.SEND:
            return False, None  # the sender retries it (a possible duplicate, counted there)
        await self._carry_out(step, "timeout", since, seen, delivery, shard, message, attempt,
                              headers)  # fmt: skip
        return True, seen.wamid if step is Next.SETTLE and seen is not None else None

    async def returned(
        self,
        delivery: AbstractIncomingMessage,
        shard: int,
        message: OutboundMessage,
        attempt: Attempt,
        headers: dict[str, Any],
        identity: str | None,
    ) -> bool | None:
        """A delivery before its send: a copy parked while the webhooks lagged is looked at
        again (None: settled here or parked again; True: send it, a possible duplicate);
        False for any other delivery."""
        parked = read_unanswered(headers)
        if parked is None:
            return False
        case, since = parked
        if identity is None:  # (it had one when it was parked)
            headers.pop(H_UNANSWERED, None)
            return True
        resolution, seen = self.webhooks.look(identity, message.phone_number_id, case, since)
        step = after_wait(resolution, case, self.uncertain_sends)
        return await self._carry_out(
            step, case, since, seen, delivery, shard, message, attempt, headers
        )

    async def _carry_out(
        self,
        step: Next,
        case: Case,
        since: float,
        seen: Seen | None,
        delivery: AbstractIncomingMessage,
        shard: int,
        message: OutboundMessage,
        attempt: Attempt,
        headers: dict[str, Any],
    ) -> bool | None:
        """None once the delivery is settled here; True: to be sent (again)."""
        if step is Next.SETTLE and seen is not None:
            headers.pop(H_UNANSWERED, None)
            await self.settler.accepted(
                delivery, shard, message, attempt, seen.wamid, resolved_by=RESOLVED_BY_WEBHOOK
            )
            return None
        if step is Next.PARK:
            parked = {**headers, H_UNANSWERED: unanswered(case, since)}
            self.metrics.retried.labels(self.pool, "unanswered").inc()
            await self.settler.later(delivery, shard, attempt, parked, PARK_FOR)
            return None
        if step is Next.DEAD_LETTER:
            failure = Failure(
                reason=OUTCOME_UNKNOWN, detail=self.unknown_detail(), possible_duplicate=True
            )
            await self.settler.dead_letter(delivery, shard, message, failure, attempt, headers)
            return None
        headers.pop(H_UNANSWERED, None)  # sent: its retries are ordinary ones
        self.metrics.possible_duplicates.labels(self.pool).inc()
        return True
