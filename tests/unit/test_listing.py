"""kopf's paged listings restart after an expired page (whatsapp_operator/runtime/listing.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from kopf._cogs.clients import errors, fetching

from whatsapp_operator.runtime import listing


def gone() -> errors.APIClientError:
    return errors.APIClientError(
        {"message": "The provided continue parameter is too old", "reason": "Expired",
         "code": 410}, status=410, headers={},
    )  # fmt: skip


class Lister:
    """A fake fetch_objs: a page, then `failures[n]` (or the rest) on its n-th listing."""

    def __init__(self, failures: list[BaseException | None]) -> None:
        self.failures = failures
        self.calls: list[int | None] = []  # the chunk size each listing was made with

    async def __call__(self, *, settings: Any, **_: Any) -> AsyncIterator[tuple[list[Any], str]]:
        attempt = len(self.calls)
        self.calls.append(settings.watching.chunk_size)
        yield [f"a{attempt}"], "1"
        failure = self.failures[attempt] if attempt < len(self.failures) else None
        if failure is not None:
            raise failure
        yield [f"b{attempt}"], "2"


def settings() -> Any:
    return SimpleNamespace(watching=SimpleNamespace(chunk_size=500))


async def pages(lister: Lister, s: Any) -> list[Any]:
    return [items async for items, _ in listing.resilient(lister)(settings=s, resource="r")]


@pytest.mark.parametrize(
    ("failures", "chunk_sizes", "seen"),
    [
        pytest.param([], [500], [["a0"], ["b0"]], id="no expiry: one listing"),
        pytest.param(
            [gone()], [500, 500], [["a0"], ["a1"], ["b1"]], id="an expired page: listed again"
        ),
        pytest.param(
            [gone(), gone(), gone()], [500, 500, 500, None],
            [["a0"], ["a1"], ["a2"], ["a3"], ["b3"]], id="expired each time: then unpaged",
        ),
    ],
)  # fmt: skip
async def test_an_expired_page_restarts_the_listing(
    failures: list[BaseException | None], chunk_sizes: list[int | None], seen: list[Any]
) -> None:
    lister, s = Lister(failures), settings()
    assert await pages(lister, s) == seen
    assert lister.calls == chunk_sizes
    assert s.watching.chunk_size == 500  # the operator's own settings are left alone


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(errors.APIClientError("forbidden", status=403, headers={}), id="403"),
        pytest.param(RuntimeError("a bug"), id="not an API error"),
    ],
)
async def test_other_errors_are_not_retried(failure: BaseException) -> None:
    lister = Lister([failure])
    with pytest.raises(type(failure)):
        await pages(lister, settings())
    assert lister.calls == [500]


async def test_unpaged_expiry_is_raised() -> None:
    lister = Lister([gone()] * 4)
    with pytest.raises(errors.APIClientError):
        await pages(lister, settings())
    assert lister.calls == [500, 500, 500, None]


def test_install_routes_kopfs_listings_once() -> None:
    """Fails if a kopf release renames or moves the function its watchers call."""
    from kopf._cogs.clients import watching
    from kopf._core.reactor import observation

    saved = listing._original
    original = saved if saved is not None else fetching.fetch_objs
    try:
        listing._original, fetching.fetch_objs = None, original
        listing.install()
        patched = fetching.fetch_objs
        assert patched is not original
        assert listing._original is original
        listing.install()
        assert fetching.fetch_objs is patched  # idempotent
        assert watching.fetching is fetching  # the watcher and the observer call it from there
        assert observation.fetching is fetching
    finally:
        listing._original, fetching.fetch_objs = None, original
