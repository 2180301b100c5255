"""Which live workers run the published config (whatsapp_operator/pools/convergence.py), and
the hash the operator expects of them (Publisher.pool_hashes in publish.py)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from whatsapp_contract.heartbeat import Heartbeat
from whatsapp_contract.resolved import build_config_shards as build_shards
from whatsapp_contract.resolved import combine_hashes, tenant_config
from whatsapp_contract.resolved import config_shard_name as shard_name
from whatsapp_contract.resolved import parse_config_shard_name as parse_shard_name
from whatsapp_operator.pools.convergence import HeartbeatListener, PoolConvergence, summarise
from whatsapp_operator.pools.publisher import Publisher
from whatsapp_worker.config import ConfigStore

NOW = 1000.0
H1 = "sha256:" + "1" * 64
H2 = "sha256:" + "2" * 64


def beat(
    worker: str, pool: str, config_hash: str | None = H1, *, at: float = NOW, bye: bool = False
) -> Heartbeat:
    return Heartbeat(
        worker=worker, pool=pool, at=at, interval=2.0, config_hash=config_hash, bye=bye
    )


# --- summarise -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("beats", "hashes", "expected"),
    [
        pytest.param([], {"a": H1}, {}, id="no beats"),
        pytest.param([beat("w1", "a")], {"a": H1}, {"a": PoolConvergence(1, 1)}, id="current"),
        pytest.param([beat("w1", "a", H2)], {"a": H1}, {"a": PoolConvergence(1, 0)}, id="stale"),
        pytest.param(
            [beat("w1", "a"), beat("w2", "a", H2)],
            {"a": H1},
            {"a": PoolConvergence(2, 1)},
            id="one current, one stale",
        ),
        pytest.param(
            [beat("w1", "a"), beat("w2", "a", at=NOW - 7.0)],
            {"a": H1},
            {"a": PoolConvergence(1, 1)},
            id="a dead worker is not counted at all",
        ),
        pytest.param(
            [beat("w1", "a", at=NOW - 6.0)],
            {"a": H1},
            {"a": PoolConvergence(1, 1)},
            id="exactly 3 intervals old: live",
        ),
        pytest.param(
            [beat("w1", "a", at=NOW - 7.0)], {"a": H1}, {}, id="only dead workers: pool absent"
        ),
        pytest.param(
            [beat("w1", "a", bye=True)], {"a": H1}, {}, id="a bye is not a live worker"
        ),
        pytest.param(
            [beat("w1", "a", None)], {"a": H1}, {"a": PoolConvergence(1, 0)},
            id="worker without hash: stale",
        ),
        pytest.param(
            [beat("w1", "a", None)], {}, {"a": PoolConvergence(1, 0)},
            id="no hash on either side: not current",
        ),
        pytest.param(
            [beat("w1", "a")], {}, {"a": PoolConvergence(1, 0)},
            id="nothing published for the pool",
        ),
        pytest.param(
            [beat("w1", "a"), beat("w2", "a", H2), beat("w3", "b", H2), beat("w4", "b", H2),
             beat("w5", "c"), beat("w6", "d", at=NOW - 100.0)],
            {"a": H1, "b": H2, "c": H2, "d": H1},
            {"a": PoolConvergence(2, 1), "b": PoolConvergence(2, 2), "c": PoolConvergence(1, 0)},
            id="several pools, each against its own hash",
        ),
    ],
)  # fmt: skip
def test_summarise(
    beats: list[Heartbeat], hashes: dict[str, str], expected: dict[str, PoolConvergence]
) -> None:
    assert summarise(beats, hashes, NOW) == expected


@pytest.mark.parametrize(
    ("convergence", "text"),
    [
        pytest.param(PoolConvergence(0, 0), "0/0 current", id="none"),
        pytest.param(PoolConvergence(2, 1), "1/2 current", id="half"),
        pytest.param(PoolConvergence(3, 3), "3/3 current", id="all"),
    ],
)
def test_describe(convergence: PoolConvergence, text: str) -> None:
    assert convergence.describe() == text


# --- HeartbeatListener.evaluate --------------------------------------------------------


def gauge(pool: str, config: str) -> float | None:
    return REGISTRY.get_sample_value(
        "whatsapp_operator_pool_workers", {"pool": pool, "config": config}
    )


# Steps: ("beat", worker, pool, hash, at) | ("bye", worker, pool) | ("publish", pool, hash)
#      | ("eval", now, pools that must fire, {pool: (live, current)} after it)
Step = tuple[Any, ...]

CASES = [
    pytest.param(
        [("beat", "w1", "a", H1, NOW), ("publish", "a", H1),
         ("eval", NOW, ["a"], {"a": (1, 1)}),
         ("eval", NOW + 1.0, [], {"a": (1, 1)})],
        id="first beat fires once; the same summary does not fire again",
    ),
    pytest.param(
        [("beat", "w1", "a", H1, NOW), ("publish", "a", H1),
         ("eval", NOW, ["a"], {"a": (1, 1)}),
         ("beat", "w1", "a", H1, NOW + 2.0),
         ("eval", NOW + 2.0, [], {"a": (1, 1)})],
        id="a refreshed beat with the same config does not fire",
    ),
    pytest.param(
        [("publish", "a", H1), ("beat", "w1", "a", H1, NOW),
         ("eval", NOW, ["a"], {"a": (1, 1)}),
         ("beat", "w2", "a", H2, NOW),
         ("eval", NOW, ["a"], {"a": (2, 1)})],
        id="a second (stale) worker fires again",
    ),
    pytest.param(
        [("publish", "a", H1), ("beat", "w1", "a", H1, NOW), ("beat", "w2", "a", H1, NOW),
         ("eval", NOW, ["a"], {"a": (2, 2)}),
         ("bye", "w2", "a"),
         ("eval", NOW, ["a"], {"a": (1, 1)}),
         ("bye", "w1", "a"),
         ("eval", NOW, ["a"], {}),
         ("eval", NOW, [], {})],
        id="a bye removes the worker at once",
    ),
    pytest.param(
        [("publish", "a", H1), ("beat", "w1", "a", H1, NOW),
         ("eval", NOW, ["a"], {"a": (1, 1)}),
         ("publish", "a", H2),
         ("eval", NOW + 1.0, ["a"], {"a": (1, 0)}),
         ("beat", "w1", "a", H2, NOW + 2.0),
         ("eval", NOW + 2.0, ["a"], {"a": (1, 1)})],
        id="a new published config makes the worker stale until it reloads",
    ),
    pytest.param(
        [("publish", "a", H1), ("publish", "b", H2),
         ("beat", "w1", "a", H1, NOW), ("beat", "w2", "b", H1, NOW),
         ("eval", NOW, ["a", "b"], {"a": (1, 1), "b": (1, 0)}),
         ("beat", "w3", "b", H2, NOW),
         ("eval", NOW, ["b"], {"a": (1, 1), "b": (2, 1)})],
        id="several pools: only the changed one fires",
    ),
    pytest.param(
        [("publish", "a", H1), ("beat", "w1", "a", H1, NOW),
         ("eval", NOW, ["a"], {"a": (1, 1)}),
         ("eval", NOW + 6.0, [], {"a": (1, 1)}),
         ("eval", NOW + 6.5, ["a"], {}),
         ("eval", NOW + 7.0, [], {})],
        id="a silent worker drops out after 3 intervals, firing once",
    ),
    pytest.param(
        [("beat", "w1", "a", None, NOW),
         ("eval", NOW, ["a"], {"a": (1, 0)}),
         ("publish", "a", H1),
         ("eval", NOW, [], {"a": (1, 0)})],
        id="a worker without a hash stays stale",
    ),
]  # fmt: skip


@pytest.mark.parametrize("steps", CASES)
def test_listener(steps: list[Step]) -> None:
    tag = uuid.uuid4().hex[:8]  # the gauge is process-wide: pools of this test only

    def pool(name: str) -> str:
        return f"{name}-{tag}"

    hashes: dict[str, str] = {}
    changes: list[str] = []
    listener = HeartbeatListener(
        "amqp://guest:guest@127.0.0.1:1/", lambda: dict(hashes), changes.append
    )
    seen: set[str] = set()
    for step in steps:
        kind, *args = step
        if kind == "beat":
            worker, name, config_hash, at = args
            listener.observe(beat(worker, pool(name), config_hash, at=at))
        elif kind == "bye":
            worker, name = args
            listener.observe(beat(worker, pool(name), bye=True))
        elif kind == "publish":
            name, config_hash = args
            hashes[pool(name)] = config_hash
        else:
            now, fired, expected = args
            changes.clear()
            listener.evaluate(now)
            assert sorted(changes) == sorted(pool(p) for p in fired), step
            want = {pool(p): PoolConvergence(*v) for p, v in expected.items()}
            assert listener.summary == want, step
            seen |= set(want) | {pool(p) for p in fired}
            for p in seen:
                convergence = listener.of(p)
                assert convergence == want.get(p, PoolConvergence(0, 0))
                assert gauge(p, "current") == convergence.current, (step, p)
                assert gauge(p, "stale") == convergence.live - convergence.current, (step, p)


def test_listener_of_and_describe() -> None:
    pool = f"p-{uuid.uuid4().hex[:8]}"
    changes: list[str] = []
    listener = HeartbeatListener("amqp://u:p@localhost:1/", lambda: {pool: H1}, changes.append)
    assert listener.of(pool) == PoolConvergence(0, 0)
    assert listener.of(pool).describe() == "0/0 current"
    assert gauge(pool, "current") is None  # nothing exported before the first evaluation
    listener.observe(beat("w1", pool, H1))
    listener.observe(beat("w2", pool, H2))
    listener.evaluate(NOW)
    assert changes == [pool]
    assert listener.of(pool).describe() == "1/2 current"
    assert (gauge(pool, "current"), gauge(pool, "stale")) == (1.0, 1.0)
    assert listener.of("unknown-pool").describe() == "0/0 current"


def test_listener_prunes_beats_after_10_intervals() -> None:
    pool = f"p-{uuid.uuid4().hex[:8]}"
    listener = HeartbeatListener("amqp://u:p@localhost:1/", dict, lambda _: None)
    listener.observe(beat("w1", pool, at=NOW))
    listener.observe(beat("w2", pool, at=NOW + 10.0))
    listener.evaluate(NOW + 20.0)
    assert sorted(listener.beats) == ["w1", "w2"]  # w1 exactly 10 intervals old: kept
    listener.evaluate(NOW + 20.5)
    assert sorted(listener.beats) == ["w2"]
    assert listener.summary == {}  # neither is live


# --- Publisher.pool_hashes: what a worker that loaded the current shards reports ---------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("whatsapp-pool-bulk-0-of-1", ("bulk", 1), id="simple"),
        pytest.param("whatsapp-pool-my-pool-3-of-8", ("my-pool", 8), id="dash in the pool"),
        pytest.param("whatsapp-pool-a-of-b-1-of-2", ("a-of-b", 2), id="-of- in the pool"),
        pytest.param("whatsapp-pool-p-2-of-3-1-of-16", ("p-2-of-3", 16), id="a shard-like pool"),
        pytest.param("whatsapp-pool-x-1-0-of-4", ("x-1", 4), id="pool ending in digits"),
        pytest.param("whatsapp-pool-9-0-of-1", ("9", 1), id="a pool of digits"),
        pytest.param("whatsapp-pool-bulk-12-of-128", ("bulk", 128), id="big numbers"),
        pytest.param("meta-app", (None, 0), id="another Secret"),
        pytest.param("whatsapp-pool-", (None, 0), id="prefix only"),
        pytest.param("whatsapp-pool-bulk", (None, 0), id="no index, no count"),
        pytest.param("whatsapp-pool-bulk-0", (None, 0), id="no count"),
        pytest.param("whatsapp-pool-bulk-0-of-", (None, 0), id="empty count"),
        pytest.param("whatsapp-pool-bulk-0-of-2x", (None, 0), id="count with junk"),
        pytest.param("whatsapp-pool-bulk-x-of-2", (None, 0), id="index not a number"),
        pytest.param("whatsapp-pool--1-of-2", (None, 0), id="empty pool"),
        pytest.param("whatsapp-pool-1-of-2", (None, 0), id="no pool at all"),
        pytest.param("xwhatsapp-pool-bulk-0-of-1", (None, 0), id="prefix not at the start"),
    ],
)
def testparse_shard_name(name: str, expected: tuple[str | None, int]) -> None:
    assert parse_shard_name(name) == expected


@pytest.mark.parametrize(
    ("index", "count"),
    [(0, 1), (3, 8), (15, 16), (0, 128)],
    ids=["0of1", "3of8", "15of16", "0of128"],
)
@pytest.mark.parametrize("pool", ["a", "bulk", "my-pool", "a-b-c", "p-0", "x-of-y", "of", "9"])
def test_pool_and_count_inverts_shard_name(pool: str, index: int, count: int) -> None:
    assert parse_shard_name(shard_name(pool, index, count)) == (pool, count)


def publisher(published: dict[str, str], keys: dict[str, str], counts: dict[str, int]) -> Publisher:
    pub = Publisher(kube=None, namespace="w", on_published=lambda ids: None)  # type: ignore[arg-type]
    pub.published.update(published)
    pub.keys.update(keys)
    pub.counts.update(counts)
    return pub


def key(index: int, count: int) -> str:
    return f"shard-{index}-of-{count}.json"


def secret(pool: str, index: int, count: int) -> tuple[str, str, str]:
    """(Secret name, data key, content hash) of one shard."""
    return shard_name(pool, index, count), key(index, count), f"sha256:{pool}-{index}-{count}"


def publisher_of(shards: list[tuple[str, str, str]], counts: dict[str, int]) -> Publisher:
    return publisher({n: h for n, _, h in shards}, {n: k for n, k, _ in shards}, counts)


def combined(*shards: tuple[str, str, str]) -> str:
    return combine_hashes((k, h) for _, k, h in shards)


@pytest.mark.parametrize(
    ("shards", "counts", "expected"),
    [
        pytest.param([], {}, {}, id="nothing published"),
        pytest.param(
            [secret("a", 0, 1)], {"a": 1}, {"a": combined(secret("a", 0, 1))}, id="one shard"
        ),
        pytest.param(
            [secret("a", 0, 2), secret("a", 1, 2)],
            {"a": 2},
            {"a": combined(secret("a", 0, 2), secret("a", 1, 2))},
            id="two shards",
        ),
        pytest.param(
            [secret("a", 0, 1), secret("a", 0, 2), secret("a", 1, 2)],
            {"a": 2},
            {"a": combined(secret("a", 0, 2), secret("a", 1, 2))},
            id="a shard of the old count is left out",
        ),
        pytest.param(
            [secret("a", 0, 1), secret("a", 0, 2), secret("a", 1, 2)],
            {},
            {"a": combined(secret("a", 0, 1))},
            id="unknown count: 1",
        ),
        pytest.param(
            [secret("my-pool", 0, 2), secret("my-pool", 1, 2), secret("b", 0, 1)],
            {"my-pool": 2, "b": 1},
            {
                "my-pool": combined(secret("my-pool", 0, 2), secret("my-pool", 1, 2)),
                "b": combined(secret("b", 0, 1)),
            },
            id="two pools, one with a dash",
        ),
    ],
)
def test_pool_hashes(
    shards: list[tuple[str, str, str]], counts: dict[str, int], expected: dict[str, str]
) -> None:
    assert publisher_of(shards, counts).pool_hashes() == expected


def test_pool_hashes_skips_shards_without_key_and_other_secrets() -> None:
    zero, one = secret("a", 0, 2), secret("a", 1, 2)
    pub = publisher(
        {zero[0]: zero[2], one[0]: one[2], "meta-app": "sha256:x"},
        {zero[0]: zero[1]},  # shard 1's key unknown
        {"a": 2},
    )
    assert pub.pool_hashes() == {"a": combined(zero)}
    pub.keys.clear()
    assert pub.pool_hashes() == {}


def test_pool_hashes_uses_the_published_key() -> None:
    name, _, value = secret("a", 0, 1)
    pub = publisher({name: value}, {name: "renamed.json"}, {"a": 1})
    assert pub.pool_hashes() == {"a": combine_hashes([("renamed.json", value)])}


def test_pool_hashes_is_what_a_worker_reports(tmp_path: Path) -> None:
    """Real shards, written as the mounted files of a worker: the worker's snapshot hash
    equals what the operator expects for the pool."""
    tenants = [
        tenant_config(
            tenant_id=f"t_{n}",
            waba_id="1",
            phone_number_id=f"{1000 + n}",
            graph_api_version="v25.0",
            throughput_level="STANDARD",
            suspended=False,
            token=f"EAAtoken{n:04d}xxxxxxxxxxxxxxxx",
        )
        for n in range(6)
    ]
    old = build_shards("my-pool", tenants[:1])
    shards = build_shards("my-pool", tenants, min_shards=4)
    assert (len(old), len(shards)) == (1, 4)
    pub = publisher(
        {s.name: s.content_hash for s in [*old, *shards]},
        {s.name: s.key for s in [*old, *shards]},
        {"my-pool": 4},
    )
    for shard in shards:
        (tmp_path / shard.key).write_bytes(shard.data)
    snapshot = ConfigStore(tmp_path, pool="my-pool").reload()
    assert snapshot.errors == ()
    assert len(snapshot.tenants) == 6
    assert snapshot.content_hash is not None
    assert pub.pool_hashes() == {"my-pool": snapshot.content_hash}
