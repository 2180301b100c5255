"""The metadata-only Secret watch (runtime/secret_watch.py): what each event means, and
how the watch resumes after bookmarks, expiry and failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from whatsapp_operator.runtime.kube import KubeUnavailable
from whatsapp_operator.runtime.secret_watch import Kind, SecretWatch, Seen, interpret


def secret(
    kind: str, name: str = "token", namespace: str = "shop", rv: str = "7"
) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace, "resourceVersion": rv}
    return {"type": kind, "object": {"kind": "PartialObjectMetadata", "metadata": meta}}


def error(code: int) -> dict[str, Any]:
    return {"type": "ERROR", "object": {"kind": "Status", "code": code, "reason": "Expired",
                                        "message": "too old resource version"}}  # fmt: skip


@pytest.mark.parametrize(
    ("event", "want"),
    [
        (secret("ADDED"), Seen(Kind.CHANGED, "shop", "token", "7")),
        (secret("MODIFIED", rv="8"), Seen(Kind.CHANGED, "shop", "token", "8")),
        (secret("DELETED"), Seen(Kind.CHANGED, "shop", "token", "7")),
        ({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "99"}}},
         Seen(Kind.PROGRESS, version="99")),
        (error(410), Seen(Kind.EXPIRED, detail="410 Expired: too old resource version")),
        (error(500), Seen(Kind.FAILED, detail="500 Expired: too old resource version")),
        ({"type": "ADDED"}, Seen(Kind.IGNORED, detail="no object")),
        ({"type": "ADDED", "object": {"metadata": "x"}}, Seen(Kind.IGNORED, detail="no metadata")),
        (secret("ADDED", name=""), Seen(Kind.IGNORED, version="7", detail="event 'ADDED'")),
        (secret("SOMETHING"), Seen(Kind.IGNORED, version="7", detail="event 'SOMETHING'")),
    ],
)  # fmt: skip
def test_interpret(event: dict[str, Any], want: Seen) -> None:
    assert interpret(event) == want


class FakeKube:
    """Scripted answers: each watch call takes the next script (a list of events, or an
    exception to raise after them); the last call blocks until cancelled."""

    def __init__(self, scripts: list[list[Any]], versions: list[str]) -> None:
        self.scripts = scripts
        self.versions = versions
        self.calls: list[tuple[str, str | None, str]] = []

    async def secrets_version(self, namespace: str | None, selector: str) -> str:
        self.calls.append(("list", namespace, selector))
        return self.versions.pop(0)

    async def watch_secrets_metadata(
        self, namespace: str | None, selector: str, version: str, seconds: int
    ) -> AsyncIterator[dict[str, Any]]:
        self.calls.append(("watch", namespace, version))
        if not self.scripts:
            await asyncio.Event().wait()
        for item in self.scripts.pop(0):
            if isinstance(item, Exception):
                raise item
            yield item


async def run_until_blocked(watch: SecretWatch, kube: FakeKube) -> None:
    task = asyncio.create_task(watch.run())
    for _ in range(200):
        await asyncio.sleep(0)
        if not kube.scripts and kube.calls and kube.calls[-1][0] == "watch":
            break
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_changes_are_reported_and_the_watch_resumes_from_the_last_version() -> None:
    kube = FakeKube(
        [[secret("ADDED", "a", rv="11"), {"type": "BOOKMARK", "object": {"metadata": {
            "resourceVersion": "15"}}}], [secret("MODIFIED", "b", "other", rv="16")]],
        versions=["10"],
    )  # fmt: skip
    seen: list[tuple[str, str]] = []
    watch = SecretWatch(kube, [], "!pool", lambda ns, n: seen.append((ns, n)), backoff=(0, 0))  # type: ignore[arg-type]
    await run_until_blocked(watch, kube)
    assert seen == [("shop", "a"), ("other", "b")]
    assert kube.calls == [
        ("list", None, "!pool"),  # from now: the first passes read every Secret anyway
        ("watch", None, "10"),
        ("watch", None, "15"),  # the bookmark's version: nothing is replayed
        ("watch", None, "16"),
    ]
    assert watch.changes == 2


async def test_an_expired_version_starts_again_from_now() -> None:
    kube = FakeKube([[secret("ADDED", rv="11"), error(410)]], versions=["10", "500"])
    watch = SecretWatch(kube, ["shop"], "", lambda ns, n: None, backoff=(0, 0))  # type: ignore[arg-type]
    await run_until_blocked(watch, kube)
    assert kube.calls == [
        ("list", "shop", ""), ("watch", "shop", "10"), ("list", "shop", ""),
        ("watch", "shop", "500"),
    ]  # fmt: skip


async def test_failures_are_retried_from_the_same_version_with_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:  # asyncio.sleep, for this test's own calls too
        if seconds:
            slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr("whatsapp_operator.runtime.secret_watch.asyncio.sleep", sleep)
    kube = FakeKube(
        [[KubeUnavailable("watching Secrets: HTTP 503")], [error(500)],
         [secret("ADDED", rv="12")]],
        versions=["10"],
    )  # fmt: skip
    watch = SecretWatch(kube, ["a"], "", lambda ns, n: None, backoff=(1.0, 1.5))  # type: ignore[arg-type]
    await run_until_blocked(watch, kube)
    assert [c for c in kube.calls if c[0] == "watch"] == [
        ("watch", "a", "10"), ("watch", "a", "10"), ("watch", "a", "10"), ("watch", "a", "12"),
    ]  # fmt: skip
    # doubled, capped; then the first again: a stream that ended at once is not resumed at once
    assert slept == [1.0, 1.5, 1.0]


async def test_one_watch_per_namespace() -> None:
    kube = FakeKube([], versions=["1", "2"])
    watch = SecretWatch(kube, ["a", "b"], "", lambda ns, n: None)  # type: ignore[arg-type]
    task = asyncio.create_task(watch.run())
    for _ in range(20):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(c for c in kube.calls if c[0] == "watch") == [("watch", "a", "1"),
                                                                ("watch", "b", "2")]  # fmt: skip
