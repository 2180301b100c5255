"""What `sender.py` does about numbers Meta blocked and tokens Meta refused: the pure
`pauses.NumberPauses` (which messages may go), the operator's signals (`signalling.py`) and
the metrics, in one place. Kept across broker sessions, like the send journal's `Outcomes`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from whatsapp_contract.resolved import TenantConfig
from whatsapp_graph.errors import ErrorClass, GraphApiError

from .metrics import WorkerMetrics
from .pauses import Gate, NumberPauses
from .signalling import Signaller

log = logging.getLogger(__name__)


class Holds:
    def __init__(
        self,
        *,
        pool: str,
        worker: str,
        metrics: WorkerMetrics,
        probe_interval: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pool = pool
        self.metrics = metrics
        self.clock = clock
        self.pauses = NumberPauses(probe_interval)
        self.signaller = Signaller(pool=pool, worker=worker, metrics=metrics, clock=clock)

    def gate(self, tenant: TenantConfig) -> Gate:
        """May a message of the tenant's number go now (`pauses.NumberPauses.gate`)?"""
        gate = self.pauses.gate(tenant.phone_number_id, tenant.blocked_code, self.clock())
        self._count()
        return gate

    def holding(self, tenant: TenantConfig) -> int | None:
        """The code of the number's pause, if it is paused (no side effects)."""
        return self.pauses.holding(tenant.phone_number_id)

    async def meta_refused(self, tenant: TenantConfig, error: GraphApiError) -> bool:
        """Meta refused a send: a block code pauses the number (`blocked`), a refused token is
        reported (`refused`). True for a refused token: a rotated one may be mounted."""
        kind = error.classification.error_class
        if kind is ErrorClass.TENANT_BLOCKED:
            await self.blocked(tenant, error)
        elif kind is ErrorClass.CREDENTIAL:
            await self.refused(tenant, error)
        return kind is ErrorClass.CREDENTIAL

    async def blocked(self, tenant: TenantConfig, error: GraphApiError) -> None:
        """Meta answered a send with a block code: pause the number, tell the operator."""
        phone = tenant.phone_number_id
        if self.pauses.pause(phone, error.code, self.clock()):
            log.warning(
                "tenant %s: Meta blocked number %s (error %d): its messages are held",
                tenant.tenant_id, phone, error.code,
                extra={"tenant_id": tenant.tenant_id, "phone_number_id": phone,
                       "meta_code": error.code},
            )  # fmt: skip
        self._count()
        await self.signaller.sending_blocked(tenant, error)

    async def refused(self, tenant: TenantConfig, error: GraphApiError) -> None:
        """Meta refused the tenant's token at send time: the operator re-validates it now."""
        await self.signaller.credential_rejected(tenant, error)

    def accepted(self, tenant: TenantConfig, sent_at: float, *, probe: bool) -> None:
        """A send of the number was accepted: a pause older than that send (or the pause the
        send was probing) is over. A send that left before the pause began proves nothing."""
        pause = self.pauses.get(tenant.phone_number_id)
        if pause is not None and (probe or sent_at >= pause.since):
            self.pauses.lift(tenant.phone_number_id)
            log.info("tenant %s: number %s sends again", tenant.tenant_id, tenant.phone_number_id,
                     extra={"tenant_id": tenant.tenant_id,
                            "phone_number_id": tenant.phone_number_id})  # fmt: skip
            self._count()

    def _count(self) -> None:
        self.metrics.paused_numbers.labels(self.pool).set(len(self.pauses))
