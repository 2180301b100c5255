"""The one call to Meta per attempt (through the number's pooled Graph client), and the re-read
of the mounted config when Meta refused a token (a rotated one may be there already)."""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Sequence
from typing import Any, Protocol

from whatsapp_contract.resolved import TenantConfig
from whatsapp_graph.client import GraphClient

from . import tracing
from .messages import OutboundMessage
from .metrics import WorkerMetrics

log = logging.getLogger(__name__)


class Store(Protocol):
    def get(self, tenant_id: str) -> TenantConfig | None: ...

    def reload(self) -> Any: ...


class Poster:
    def __init__(
        self, *, pool: str, graphs: Sequence[GraphClient], store: Store, metrics: WorkerMetrics
    ) -> None:
        self.pool = pool
        self.graphs = graphs
        self.store = store
        self.metrics = metrics

    async def post(self, message: OutboundMessage, tenant: TenantConfig) -> dict[str, Any]:
        """POST the message; Meta's 200 answer, or GraphApiError / GraphUnavailable."""
        started = time.perf_counter()
        try:
            graph = self.graphs[zlib.crc32(tenant.phone_number_id.encode()) % len(self.graphs)]
            proof = tenant.appsecret_proof
            with tracing.graph_send(message, tenant):  # a span when tracing is on
                return await graph.send_message(
                    tenant.token.get_secret_value(),
                    tenant.phone_number_id,
                    message.payload,
                    version=tenant.graph_api_version,
                    proof=proof.get_secret_value() if proof is not None else None,
                )
        finally:
            self.metrics.send_seconds.labels(self.pool).observe(time.perf_counter() - started)

    async def fresh_token(self, tenant: TenantConfig) -> TenantConfig | None:
        """Meta rejected the token: re-read the mounted config; a rotated one may be there."""
        await asyncio.to_thread(self.store.reload)
        fresh = self.store.get(tenant.tenant_id)
        if fresh is None or fresh.token_fingerprint == tenant.token_fingerprint:
            return None
        log.info("tenant %s: retrying with the token found on reload", tenant.tenant_id,
                 extra={"tenant_id": tenant.tenant_id})  # fmt: skip
        return fresh
