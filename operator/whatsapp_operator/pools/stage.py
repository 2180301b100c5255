"""The publication stage of a tenant's pass: hand its resolved config (planned by
`publication.plan_publication`, pure) to the publisher, wait until it is written, and report
where (`status.published`). Started before the row stage and finished after it, so that the
two overlap."""

from __future__ import annotations

import asyncio

from whatsapp_contract.resolved import Entry, TenantConfig
from whatsapp_operator.model.fragment import Fragment
from whatsapp_operator.pools.convergence import HeartbeatListener
from whatsapp_operator.pools.publication import published_fragment
from whatsapp_operator.pools.publisher import Publisher

# Seconds a pass waits for the publisher to write the tenant's config, so that the status it
# writes says where (otherwise the publisher wakes the tenant for a second pass). A burst of a
# thousand new tenants keeps the publisher busy for 10-20 s; 5 s made most of them run twice
# (0.8-1.1 second passes per tenant). A failing publisher releases its waiters at once.
PUBLISH_WAIT = 30.0


class Publication:
    """One tenant's publication, under way."""

    def __init__(
        self,
        publisher: Publisher,
        convergence: HeartbeatListener | None,
        tenant_id: str,
        pool: str,
        config: TenantConfig | None,
    ) -> None:
        self._publisher = publisher
        self._convergence = convergence
        self._tenant_id = tenant_id
        self.entry: Entry | None = publisher.update(tenant_id, pool, config)
        self._waiting: asyncio.Task[bool] | None = None
        if self.entry is not None:
            self._waiting = asyncio.create_task(
                publisher.wait_published(tenant_id, self.entry, PUBLISH_WAIT)
            )

    async def written(self) -> None:
        if self._waiting is not None:
            await self._waiting

    def cancel(self) -> None:
        if self._waiting is not None and not self._waiting.done():
            self._waiting.cancel()

    def fragment(self) -> Fragment | None:
        """Where the tenant's config is published, for its status (None when it is not)."""
        where = self._publisher.location(self._tenant_id) if self.entry is not None else None
        if where is None:
            return None
        published = {"pool": where.pool, "secret": where.secret, "contentHash": where.content_hash}
        if self._convergence is not None:
            published["workers"] = self._convergence.of(where.pool).describe()
        return published_fragment(published)
