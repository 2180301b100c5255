"""kopf's paged listings, made to survive an etcd compaction.

The operator lists 500 objects a page (`settings.watching.chunk_size`: a restart with 10,000
tenants does not hold one response of tens of MB). A page's `continue` token expires when etcd
compacts (every 5 minutes by default): a listing that spans a compaction gets 410 Expired,
kopf (1.45) lets that end its watcher, and the operator stops. Seen in the scale benchmark: a
kopf process listing 10,000 tenants and 10,000 Secrets lost both watchers this way and exited.

client-go's reflector restarts such a listing; this does the same: up to ATTEMPTS paged
listings from scratch, then one unpaged (consistent by construction). Objects of the failed
attempt are seen again as listing events, which kopf and the handlers treat idempotently.

kopf has no hook for this, so `install` replaces `kopf._cogs.clients.fetching.fetch_objs`,
which both of kopf's callers (the watcher and the namespace observer) look up at each call;
`tests/unit/test_listing.py` fails if a kopf release moves it.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from kopf._cogs.clients import errors, fetching

log = logging.getLogger(__name__)
ATTEMPTS = 3  # paged listings, then one unpaged

FetchObjs = Callable[..., AsyncIterator[tuple[Any, str]]]
_original: FetchObjs | None = None


def expired(exc: BaseException) -> bool:
    """A 410 answer to a list page (an expired `continue` token)."""
    return isinstance(exc, errors.APIClientError) and exc.status == 410


def resilient(fetch: FetchObjs) -> FetchObjs:
    async def fetch_objs(*, settings: Any, **kwargs: Any) -> AsyncIterator[tuple[Any, str]]:
        for attempt in range(1, ATTEMPTS + 2):
            if attempt > ATTEMPTS:  # last resort: one page, no token to expire
                settings = copy.copy(settings)
                settings.watching = copy.copy(settings.watching)
                settings.watching.chunk_size = None
            try:
                async for page in fetch(settings=settings, **kwargs):
                    yield page
                return
            except errors.APIClientError as exc:
                if not expired(exc) or attempt > ATTEMPTS:
                    raise
                log.warning(
                    "listing %s: a page expired (etcd compacted while listing); listing again "
                    "from the start (attempt %d of %d)",
                    kwargs.get("resource"), attempt + 1, ATTEMPTS + 1,
                )  # fmt: skip

    return fetch_objs


def install() -> None:
    """Route kopf's listings through `resilient` (idempotent)."""
    global _original
    if _original is None:
        original: FetchObjs = fetching.fetch_objs
        _original = original
        fetching.fetch_objs = resilient(original)
