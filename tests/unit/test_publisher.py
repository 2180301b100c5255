"""The publisher: which shard Secrets are written, and when (fake Kubernetes, no server)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from whatsapp_contract.resolved import INITIAL_CONFIG_SHARDS as INITIAL_SHARDS
from whatsapp_contract.resolved import (
    TenantConfig,
    content_hash,
    entry_hash,
    tenant_config,
)
from whatsapp_operator.pools.publisher import HASH_ANNOTATION, POOL_LABEL, Publisher
from whatsapp_operator.runtime.kube import KubeUnavailable, SecretSnapshot


class FakeKube:
    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, Any]] = {}
        self.writes: list[str] = []
        self.deleted: list[str] = []

    async def create_secret(self, namespace: str, body: dict[str, Any]) -> bool:
        name = body["metadata"]["name"]
        self.writes.append(name)
        if name in self.secrets:
            return False
        self.secrets[name] = body
        return True

    async def patch_secret(self, namespace: str, name: str, patch: dict[str, Any], rv: Any) -> None:
        self.secrets[name] = {**self.secrets[name], **patch}

    async def delete_secret(self, namespace: str, name: str) -> None:
        self.deleted.append(name)
        self.secrets.pop(name, None)

    async def list_secrets(self, namespace: str, label: str) -> list[SecretSnapshot]:
        return [
            SecretSnapshot(
                b["data"], "1", b["metadata"]["annotations"], name, b["metadata"]["labels"]
            )
            for name, b in self.secrets.items()
        ]


def config(n: int, token: str = "") -> TenantConfig:
    return tenant_config(
        tenant_id=f"t_{n}", waba_id="1", phone_number_id=f"{1000 + n}",
        graph_api_version="v25.0", throughput_level="STANDARD", suspended=False,
        token=token or f"EAAtoken{n:04d}xxxxxxxxxxxxxxxx",
    )  # fmt: skip


def publisher(
    kube: FakeKube, woken: list[set[str]] | None = None, initial_shards: int = 1
) -> Publisher:
    """One shard for a new pool unless asked: most tests here are about one shard's life."""
    return Publisher(
        kube,  # type: ignore[arg-type]
        "workers",
        on_published=(woken.append if woken is not None else lambda _: None),
        startup_grace=0,
        initial_shards=initial_shards,
    )


async def test_a_new_pool_starts_at_the_initial_layout_and_a_burst_moves_no_tenant() -> None:
    """Every re-shard renames the pool's Secrets, and each tenant then records its new one: a
    thousand tenants arriving in ten passes are never moved (4 shards hold ~2,000)."""
    kube, woken = FakeKube(), []
    pub = publisher(kube, woken, initial_shards=INITIAL_SHARDS)
    where: dict[str, str] = {}
    for batch in range(10):
        for n in range(batch * 100, (batch + 1) * 100):
            pub.update(f"t_{n}", "default", config(n))
        await pub.publish("default")
        for tenant_id, location in pub.locations.items():
            assert where.setdefault(tenant_id, location.secret) == location.secret  # never moved
    assert INITIAL_SHARDS == 4
    assert sorted(kube.secrets) == [f"whatsapp-pool-default-{i}-of-4" for i in range(4)]
    assert sum(len(ids) for ids in woken) == 1000  # each tenant told its place once
    assert not kube.deleted


async def test_a_pool_published_with_one_shard_keeps_it_after_an_upgrade() -> None:
    """An operator started with a larger initial layout does not re-shard existing pools."""
    kube = FakeKube()
    old = publisher(kube)
    for n in range(3):
        old.update(f"t_{n}", "default", config(n))
    await old.publish("default")
    new = publisher(kube, initial_shards=INITIAL_SHARDS)
    await new.load()
    new.update("t_3", "default", config(3))
    await new.publish("default")
    assert sorted(kube.secrets) == ["whatsapp-pool-default-0-of-1"]
    assert not kube.deleted


async def test_publishes_once_and_not_again_when_nothing_changed() -> None:
    kube, woken = FakeKube(), []
    pub = publisher(kube, woken)
    for n in range(3):
        pub.update(f"t_{n}", "default", config(n))
    assert await pub.publish("default") == 1
    assert woken == [{"t_0", "t_1", "t_2"}]
    assert await pub.publish("default") == 0
    pub.update("t_1", "default", config(1))  # same content
    assert await pub.publish("default") == 0
    where = pub.location("t_1")
    assert where is not None
    body = kube.secrets[where.secret]
    assert body["metadata"]["labels"][POOL_LABEL] == "default"
    data = base64.b64decode(next(iter(body["data"].values())))
    assert body["metadata"]["annotations"][HASH_ANNOTATION] == content_hash(data)
    assert where.content_hash == entry_hash(config(1))


async def test_one_tenant_changing_wakes_only_that_tenant() -> None:
    """The status hash is the tenant's own entry: neighbours in the shard are left alone."""
    kube, woken = FakeKube(), []
    pub = publisher(kube, woken)
    for n in range(50):
        pub.update(f"t_{n}", "default", config(n))
    await pub.publish("default")
    neighbour = pub.location("t_7")
    woken.clear()
    pub.update("t_3", "default", config(3, token="EAArotated000000000000000000"))
    assert await pub.publish("default") == 1
    assert woken == [{"t_3"}]
    assert pub.location("t_7") == neighbour


@pytest.mark.parametrize(
    "change",
    ["token rotated", "tenant suspended (None)", "tenant moved to another pool"],
)
async def test_a_change_rewrites_the_shard(change: str) -> None:
    kube = FakeKube()
    pub = publisher(kube)
    pub.update("t_1", "default", config(1))
    await pub.publish("default")
    before = pub.location("t_1")
    if change == "token rotated":
        pub.update("t_1", "default", config(1, token="EAAnewtoken0000000000000000"))
    elif change.startswith("tenant suspended"):
        pub.update("t_1", "default", None)
    else:
        pub.update("t_1", "other", config(1))
        await pub.publish("other")
    assert await pub.publish("default") == 1
    data = next(iter(kube.secrets[before.secret]["data"].values()))  # type: ignore[union-attr]
    text = base64.b64decode(data).decode()
    assert ("EAAnewtoken" in text) is (change == "token rotated")
    assert ('"t_1"' in text) is (change == "token rotated")


async def test_a_restart_adopts_what_is_published_and_writes_nothing() -> None:
    kube = FakeKube()
    first = publisher(kube)
    for n in range(5):
        first.update(f"t_{n}", "default", config(n))
    await first.publish("default")
    kube.writes.clear()
    second = publisher(kube)
    await second.load()
    assert second.location("t_3") == first.location("t_3")
    for n in range(5):  # the loops report the same configs again
        second.update(f"t_{n}", "default", config(n))
    assert await second.publish("default") == 0
    assert kube.writes == []


async def test_tenants_gone_while_away_are_dropped_after_the_grace() -> None:
    kube = FakeKube()
    first = publisher(kube)
    first.update("t_1", "default", config(1))
    first.update("t_2", "default", config(2))
    await first.publish("default")
    second = publisher(kube)
    await second.load()
    second.update("t_1", "default", config(1))
    second.drop_unknown(known=["t_1"])
    assert await second.publish("default") == 1
    assert second.location("t_2") is None
    assert second.location("t_1") is not None


async def test_no_token_in_any_repr() -> None:
    pub = publisher(FakeKube())
    pub.update("t_1", "default", config(1, token="EAAsecretvalue0000000000000"))
    assert "EAAsecretvalue" not in repr(pub.entries)


async def test_a_pool_that_grows_deletes_the_old_layout_after_writing_the_new() -> None:
    """Stale shards of the old count would bring deleted tenants back in workers' mounts."""
    kube = FakeKube()
    pub = publisher(kube)
    pub.update("t_0", "default", config(0))
    await pub.publish("default")
    assert list(kube.secrets) == ["whatsapp-pool-default-0-of-1"]
    big = "x" * 200_000  # two such tokens no longer fit one shard of 512 KiB / 2
    for n in range(1, 4):
        pub.update(f"t_{n}", "default", config(n, token=f"EAA{big}{n}"))
    await pub.publish("default")
    assert kube.deleted == ["whatsapp-pool-default-0-of-1"]
    names = sorted(kube.secrets)
    assert names
    assert not any(n.endswith("-of-1") for n in names)
    assert kube.writes[-1] != "whatsapp-pool-default-0-of-1"  # deleted only after the writes
    assert set(pub.published) == set(names)
    other = publisher(kube)  # another pool's Secrets are never touched
    other.update("t_9", "other", config(9))
    await other.publish("other")
    assert kube.deleted == ["whatsapp-pool-default-0-of-1"]


async def test_a_standby_replica_never_drops_or_writes() -> None:
    """kopf peering: a standby runs the start-up (and the publisher) but no tenant loop. It
    must not take the missing reports for deleted tenants and publish empty shards."""
    kube = FakeKube()
    active = publisher(kube)
    for n in range(3):
        active.update(f"t_{n}", "default", config(n))
    await active.publish("default")
    written = len(kube.writes)
    standby = publisher(kube)
    await standby.load()
    standby.drop_unknown(known=[])  # the grace is over (0) and no loop ever reported
    assert standby.pool_of.keys() == {"t_0", "t_1", "t_2"}
    assert not standby._dirty
    assert len(kube.writes) == written


class SlowKube(FakeKube):
    """Each write yields to the event loop, as a real API call does."""

    def __init__(self, during_write: Any = None) -> None:
        super().__init__()
        self.during_write = during_write

    async def create_secret(self, namespace: str, body: dict[str, Any]) -> bool:
        if self.during_write is not None:
            action, self.during_write = self.during_write, None
            action()
        return await super().create_secret(namespace, body)


async def test_a_tenant_deleted_while_its_shard_is_written_does_not_break_publishing() -> None:
    """A tenant deleted (its namespace removed) while the publisher awaits the API server
    used to raise KeyError out of the publisher's loop and end it for good: no tenant was
    published again until the operator restarted."""
    kube, woken = SlowKube(), []
    pub = publisher(kube, woken)  # type: ignore[arg-type]
    for n in range(3):
        pub.update(f"t_{n}", "default", config(n))
    kube.during_write = lambda: pub.forget("t_1")
    await pub.publish("default")
    assert "t_1" not in (woken[0] if woken else set())
    assert pub.location("t_1") is None
    assert await pub.publish("default") == 1  # the pass it marked dirty removes t_1
    where = pub.location("t_0")
    assert where is not None
    data = base64.b64decode(next(iter(kube.secrets[where.secret]["data"].values())))
    assert b"t_1" not in data
    assert b"t_0" in data


async def test_the_publisher_loop_survives_an_unexpected_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whatever goes wrong in one pass is logged and retried; the loop never ends."""
    import asyncio

    kube = FakeKube()
    pub = publisher(kube)
    calls = 0
    real = pub.publish

    async def flaky(pool: str) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("unexpected")
        return await real(pool)

    pub.publish = flaky  # type: ignore[method-assign]
    pub.update("t_0", "default", config(0))
    task = asyncio.create_task(pub.run())
    try:
        for _ in range(100):
            await asyncio.sleep(0.1)
            if pub.location("t_0") is not None:
                break
    finally:
        task.cancel()
    assert not task.done() or task.cancelled()
    assert pub.location("t_0") is not None
    assert "resolved config of pool default not published" in caplog.text


async def test_a_change_during_a_write_is_reported_only_once_it_is_written() -> None:
    kube, woken = SlowKube(), []
    pub = publisher(kube, woken)  # type: ignore[arg-type]
    for n in range(2):
        pub.update(f"t_{n}", "default", config(n))
    newer = config(1, token="EAAnewer" + "y" * 30)
    kube.during_write = lambda: pub.update("t_1", "default", newer)
    await pub.publish("default")
    where = pub.location("t_1")
    assert where is not None
    assert where.content_hash == entry_hash(config(1))
    assert await pub.publish("default") == 1
    where = pub.location("t_1")
    assert where is not None
    assert where.content_hash == entry_hash(newer)
    assert woken[-1] == {"t_1"}


async def test_passes_are_spaced_while_changes_keep_coming_and_a_lone_change_is_quick() -> None:
    import asyncio
    import itertools
    import time

    from whatsapp_operator.pools.publisher import DEBOUNCE, MIN_PASS_INTERVAL

    kube = FakeKube()
    pub = publisher(kube)
    passes: list[float] = []
    real = pub.publish

    async def counted(pool: str) -> int:
        passes.append(time.monotonic())
        return await real(pool)

    pub.publish = counted  # type: ignore[method-assign]
    task = asyncio.create_task(pub.run())
    try:
        began = time.monotonic()
        n = 0
        while time.monotonic() - began < 2.5:  # a tenant every 50 ms, as at onboarding
            pub.update(f"t_{n}", "default", config(n))
            n += 1
            await asyncio.sleep(0.05)
        await asyncio.sleep(MIN_PASS_INTERVAL + DEBOUNCE + 0.2)
        assert all(f"t_{i}" in pub.tenants_in("default") for i in range(n))
        assert pub.location(f"t_{n - 1}") is not None  # the last change was published too
        gaps = [b - a for a, b in itertools.pairwise(passes)]
        assert len(passes) <= 2.5 / MIN_PASS_INTERVAL + 2, passes
        assert min(gaps) >= MIN_PASS_INTERVAL - 0.05
        await asyncio.sleep(MIN_PASS_INTERVAL)
        lone = time.monotonic()
        pub.update("t_9999", "default", config(9999))
        for _ in range(50):
            await asyncio.sleep(0.02)
            if pub.location("t_9999") is not None:
                break
        assert pub.location("t_9999") is not None, [round(p - lone, 2) for p in passes]
        assert time.monotonic() - lone < DEBOUNCE + 0.3
    finally:
        task.cancel()


async def test_a_loop_waiting_for_its_publication_is_not_woken_for_a_second_pass() -> None:
    import asyncio

    kube, woken = FakeKube(), []
    pub = publisher(kube, woken)
    task = asyncio.create_task(pub.run())
    try:
        pub.update("t_0", "default", config(0))
        pub.update("t_1", "default", config(1))
        assert await pub.wait_published("t_0", config(0), seconds=5)
        where = pub.location("t_0")
        assert where is not None
        assert where.content_hash == entry_hash(config(0))
        assert all("t_0" not in w for w in woken)  # it was waiting: no wake
        assert any("t_1" in w for w in woken)  # t_1 was not: woken as before
        # a config that is never published: the wait ends in time, with False
        assert not await pub.wait_published("t_0", config(0, token="EAAother" + "z" * 30), 0.3)
        assert pub._waiting == {}
    finally:
        task.cancel()


class RefusingKube(FakeKube):
    """The API server refuses the first `refusals` writes."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals

    async def create_secret(self, namespace: str, body: dict[str, Any]) -> bool:
        if self.refusals:
            self.refusals -= 1
            raise KubeUnavailable("the API server refused the write")
        return await super().create_secret(namespace, body)


async def test_a_waiting_tenant_is_let_go_when_a_pass_fails_and_published_after() -> None:
    """A tenant's pass waits up to 30 s for its publication, but not for a failing publisher:
    its other conditions would be late for nothing."""
    kube = RefusingKube(refusals=1)
    pub = publisher(kube)
    pub.update("t_0", "default", config(0))
    task = asyncio.create_task(pub.run())
    try:
        started = asyncio.get_running_loop().time()
        assert not await pub.wait_published("t_0", config(0), 30.0)
        assert asyncio.get_running_loop().time() - started < 2.0  # the first pass, not 30 s
        assert pub.failing
        assert not await pub.wait_published("t_0", config(0), 30.0)  # still failing: no wait
        for _ in range(50):  # the publisher retries 2 s later
            await asyncio.sleep(0.1)
            if not pub.failing:
                break
        assert await pub.wait_published("t_0", config(0), 0.1)
    finally:
        task.cancel()
    assert list(kube.secrets) == ["whatsapp-pool-default-0-of-1"]
