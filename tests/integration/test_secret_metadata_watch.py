"""The metadata-only Secret watch against a real API server: it names the Secrets that change
after it started, skips the pools' own Secrets, and never carries their data."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from conftest import Cluster, Kubectl
from whatsapp_operator.pools.publisher import POOL_LABEL
from whatsapp_operator.runtime.kube import Kube, KubeError
from whatsapp_operator.runtime.secret_watch import SecretWatch
from whatsapp_testkit.world import dump, secret

pytestmark = pytest.mark.integration

TOKEN = "EAAGwatchmustnevercarrythisvalue0123456789"


@pytest.fixture
async def kube(cluster: Cluster) -> AsyncIterator[Kube]:
    client = await Kube.connect(str(cluster.kubeconfig))
    yield client
    await client.close()


def manifest(namespace: str, name: str, token: str, labels: dict[str, str] | None = None) -> str:
    """A Secret holding `token` (the testkit's), in `namespace`, with `labels`."""
    body = secret(name, {"token": token})
    body["metadata"].update(namespace=namespace, labels=labels or {})
    return dump(body)


class Seen:
    """The watch's callback: what it named, and an Event to wait on."""

    def __init__(self) -> None:
        self.names: list[tuple[str, str]] = []
        self.changed = asyncio.Event()

    def __call__(self, namespace: str, name: str) -> None:
        self.names.append((namespace, name))
        self.changed.set()

    async def until(self, predicate: Any, seconds: float = 15.0) -> None:
        async with asyncio.timeout(seconds):
            while not predicate(self.names):
                self.changed.clear()
                await self.changed.wait()


async def test_changes_are_named_and_the_pools_own_secrets_left_out(
    kube: Kube, kubectl: Kubectl, namespace: str
) -> None:
    kubectl("apply", "-f", "-", input=manifest(namespace, "before", TOKEN))
    kubectl("apply", "-f", "-", input=manifest(namespace, "probe", TOKEN))
    seen = Seen()
    watch = SecretWatch(kube, [namespace], f"!{POOL_LABEL}", seen)
    task = asyncio.create_task(watch.run())
    try:
        # the watch is running once a change made now is seen (however slow its start was)
        for attempt in range(60):
            kubectl(
                "label", "secret", "probe", f"attempt={attempt}", "--overwrite", "-n", namespace
            )
            with contextlib.suppress(TimeoutError):
                await seen.until(lambda names: (namespace, "probe") in names, seconds=0.5)
                break
        kubectl(
            "apply", "-f", "-", input=manifest(namespace, "pool-shard", TOKEN, {POOL_LABEL: "p"})
        )
        kubectl("apply", "-f", "-", input=manifest(namespace, "token", TOKEN))
        await seen.until(lambda names: (namespace, "token") in names)
        kubectl("apply", "-f", "-", input=manifest(namespace, "token", TOKEN + "2"))
        kubectl("delete", "secret", "token", "-n", namespace)
        await seen.until(lambda names: names.count((namespace, "token")) == 3)
    finally:
        task.cancel()
    # what existed at the start is not a change, and the pool's own Secret is left out
    assert set(seen.names) == {(namespace, "probe"), (namespace, "token")}
    assert seen.names.count((namespace, "token")) == 3  # added, modified, deleted


async def test_the_stream_holds_metadata_only(kube: Kube, kubectl: Kubectl, namespace: str) -> None:
    """Created, not applied: `kubectl apply` copies the whole Secret, data included, into its
    last-applied-configuration annotation, which is metadata (the watch reads names and
    versions from each event and keeps nothing else)."""
    version = await kube.secrets_version(namespace, "")
    kubectl("create", "-f", "-", input=manifest(namespace, "token", TOKEN))
    events: list[dict[str, Any]] = []
    stream = kube.watch_secrets_metadata(namespace, "", version, seconds=5)
    async for event in stream:
        events.append(event)
        if event["type"] == "ADDED":
            break
    await stream.aclose()
    added = events[-1]["object"]
    assert added["kind"] == "PartialObjectMetadata"
    assert added["metadata"]["name"] == "token"
    assert "data" not in added
    encoded = base64.b64encode(TOKEN.encode()).decode()
    assert encoded not in json.dumps(events)


async def test_a_forbidden_or_missing_version_is_a_kube_error(kube: Kube, namespace: str) -> None:
    stream = kube.watch_secrets_metadata(namespace, "", "not-a-version", seconds=5)
    with pytest.raises(KubeError, match="watching Secrets in"):
        async for _ in stream:
            pass
