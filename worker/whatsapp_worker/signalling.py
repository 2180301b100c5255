"""Tenant signals to the operator (`whatsapp_contract.signals`): what a send taught this worker
that the operator must act on. The I/O half; the debouncing is `pauses.Debounce`.

Published like heartbeats: to the topic exchange `whatsapp.signals` (durable, declared by
`topology.declare_exchanges`), the pool as routing key, never persistent, on a channel without
confirms. A signal that cannot be published is logged and dropped: the worker keeps holding
the messages, and the operator's own checks find the same facts later.

- `sending_blocked`: at most one per tenant and Meta code every `BLOCKED_EVERY` seconds;
- `credential_rejected`: at most one per tenant and token fingerprint every
  `CREDENTIAL_EVERY` seconds (the operator re-validates the token at once).

A signal carries the token's fingerprint and Meta's words (already scrubbed of the token and
the proof by the Graph client), never a token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import aio_pika
from aio_pika.abc import AbstractExchange

from whatsapp_contract.resolved import TenantConfig
from whatsapp_contract.signals import MAX_DETAIL, SignalKind, TenantSignal, dump_signal
from whatsapp_graph.errors import GraphApiError, scrub

from .metrics import WorkerMetrics
from .pauses import Debounce

log = logging.getLogger(__name__)

BLOCKED_EVERY = 30.0
CREDENTIAL_EVERY = 10.0


class Signaller:
    """Kept across broker sessions (so is its debouncing); `exchange` is the session's."""

    def __init__(
        self,
        *,
        pool: str,
        worker: str,
        metrics: WorkerMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pool = pool
        self.worker = worker
        self.metrics = metrics
        self.clock = clock
        self.exchange: AbstractExchange | None = None
        self._debounce: dict[SignalKind, Debounce] = {
            "sending_blocked": Debounce(BLOCKED_EVERY),
            "credential_rejected": Debounce(CREDENTIAL_EVERY),
        }

    async def sending_blocked(self, tenant: TenantConfig, error: GraphApiError) -> bool:
        return await self._signal("sending_blocked", (tenant.tenant_id, error.code), tenant, error)

    async def credential_rejected(self, tenant: TenantConfig, error: GraphApiError) -> bool:
        key = (tenant.tenant_id, tenant.token_fingerprint)
        return await self._signal("credential_rejected", key, tenant, error)

    async def _signal(
        self, kind: SignalKind, key: tuple[str, object], tenant: TenantConfig, error: GraphApiError
    ) -> bool:
        """Publish unless one like it went out lately; True if it was published."""
        now = self.clock()
        debounce = self._debounce[kind]
        if self.exchange is None or not debounce.due(key, now):
            return False
        signal = TenantSignal(
            kind=kind,
            tenant_id=tenant.tenant_id,
            phone_number_id=tenant.phone_number_id,
            pool=self.pool,
            code=error.code,
            token_fingerprint=tenant.token_fingerprint,
            worker=self.worker,
            at=now,
            subcode=error.subcode,
            detail=_detail(tenant, error),
        )
        try:
            await self.exchange.publish(
                aio_pika.Message(dump_signal(signal), content_type="application/json"),
                routing_key=self.pool,
            )
        except Exception as exc:  # the operator's checks find it later; the messages wait
            log.warning("tenant %s: a %s signal was not published (%s)", tenant.tenant_id, kind,
                        type(exc).__name__, extra={"tenant_id": tenant.tenant_id})  # fmt: skip
            return False
        debounce.mark(key, now)
        self.metrics.signals.labels(self.pool, kind).inc()
        return True


def _detail(tenant: TenantConfig, error: GraphApiError) -> str:
    """Meta's words; the client scrubbed the token already, this scrubs again (cheap)."""
    info = error.info
    text = info.message + (f" ({info.details})" if info.details else "")
    secrets = [tenant.token.get_secret_value()]
    if tenant.appsecret_proof is not None:
        secrets.append(tenant.appsecret_proof.get_secret_value())
    return scrub(text, tuple(secrets))[:MAX_DETAIL]
