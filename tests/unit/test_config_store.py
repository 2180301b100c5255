"""The worker's ConfigStore against kubelet's atomic Secret-volume swap, reproduced on disk
by `whatsapp_testkit.kubelet.KubeletVolume`."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from whatsapp_contract.resolved import (
    TenantConfig,
    dump_document,
    parse_document,
    pool_hash,
    tenant_config,
)
from whatsapp_contract.resolved import build_config_shards as build_shards
from whatsapp_contract.resolved import parse_config_shard_key as parse_shard_key
from whatsapp_testkit.kubelet import DATA, KubeletVolume
from whatsapp_worker import config as config_module
from whatsapp_worker.config import READ_ATTEMPTS, ConfigStore, Snapshot

SHARD_BYTES = 4096  # small shards, so a few dozen tenants spread over several files


def tenant(i: int, version: int = 0, **overrides: Any) -> TenantConfig:
    settings: dict[str, Any] = {
        "tenant_id": f"t_{i:04d}",
        "waba_id": str(1000 + i),
        "phone_number_id": str(5000 + i),
        "graph_api_version": "v25.0",
        "token": f"EAA{'x' * 200}-{i:04d}-v{version:04d}",
    }
    settings.update(overrides)
    return tenant_config(**settings)


def payload(tenants: list[TenantConfig], pool: str = "default", **kw: Any) -> dict[str, bytes]:
    return {s.key: s.data for s in build_shards(pool, tenants, max_bytes=SHARD_BYTES, **kw)}


def token(config: TenantConfig | None) -> str:
    assert config is not None
    return config.token.get_secret_value()


@pytest.fixture
def volume(tmp_path: Path) -> KubeletVolume:
    target = tmp_path / "resolved"
    target.mkdir()
    return KubeletVolume(target)


BASE = [tenant(i) for i in range(24)]


def test_the_helper_lays_files_out_like_kubelet(volume: KubeletVolume) -> None:
    volume.write(payload(BASE))
    first = os.readlink(volume.target / DATA)
    assert first.startswith("..20")
    assert (volume.target / first).is_dir()
    volume.write(payload(BASE[:-1]))
    second = os.readlink(volume.target / DATA)
    assert second != first
    assert not (volume.target / first).exists()
    hidden = sorted(p for p in os.listdir(volume.target) if p.startswith(".."))
    assert hidden == sorted([DATA, second])
    for key in payload(BASE[:-1]):
        assert os.readlink(volume.target / key) == f"{DATA}/{key}"
    assert not volume.write(payload(BASE[:-1]))  # unchanged: kubelet writes nothing


def test_the_initial_load(volume: KubeletVolume) -> None:
    volume.write(payload(BASE))
    store = ConfigStore(volume.target, clock=lambda: 1234.5)
    assert store.maybe_reload()
    assert store.tenants_count == 24
    assert store.pool == "default"
    assert store.errors == ()
    assert store.loaded_at == 1234.5
    assert token(store.get("t_0003")).endswith("-0003-v0000")
    assert store.by_phone("5003") == store.get("t_0003")
    assert store.get("t_9999") is None
    assert store.by_phone("1") is None
    shards = build_shards("default", BASE, max_bytes=SHARD_BYTES)
    assert len(shards) > 1
    assert store.content_hash == pool_hash(shards)  # what the operator puts on the Secrets


def test_a_swap_rotates_adds_and_removes(volume: KubeletVolume) -> None:
    volume.write(payload(BASE))
    store = ConfigStore(volume.target)
    store.reload()
    before = store.content_hash
    updated = [tenant(0, version=1), *BASE[1:20], *BASE[21:], tenant(99)]  # t_0020 suspended
    volume.write(payload(updated))
    assert store.maybe_reload()
    assert token(store.get("t_0000")).endswith("-v0001")
    assert store.get("t_0099") is not None
    assert store.by_phone("5099") is not None
    assert store.get("t_0020") is None
    assert store.by_phone("5020") is None
    assert store.tenants_count == 24
    assert store.content_hash != before
    assert store.errors == ()


def test_nothing_reloads_while_the_symlink_stays(volume: KubeletVolume) -> None:
    volume.write(payload(BASE))
    seen: list[Snapshot] = []
    store = ConfigStore(volume.target, listeners=[seen.append])
    assert store.maybe_reload()
    assert not store.maybe_reload()
    assert not volume.write(payload(BASE))  # an identical Secret: kubelet swaps nothing
    assert not store.maybe_reload()
    assert len(seen) == 1
    volume.write(payload(BASE[1:]))
    assert store.maybe_reload()
    assert len(seen) == 2
    assert seen[-1] is store.snapshot


def test_a_corrupt_shard_keeps_its_previous_tenants(
    volume: KubeletVolume, caplog: pytest.LogCaptureFixture
) -> None:
    volume.write(payload(BASE))
    store = ConfigStore(volume.target)
    store.reload()
    rotated = [tenant(i, version=1) for i in range(24)]
    files = payload(rotated)
    broken_key = sorted(files)[0]
    held = {t.tenant_id for t in store.snapshot.shards[broken_key].document.tenants}
    assert held, "the shard about to break holds tenants"
    leaked = token(rotated[0])
    files[broken_key] = files[broken_key][:-40] + f'"{leaked}"}}'.encode()  # cut, with a token
    volume.write(files)
    assert store.maybe_reload()
    assert store.tenants_count == 24
    assert len(store.errors) == 1
    assert store.errors[0].startswith(f"{broken_key}: ")
    for config in rotated:
        expected = "-v0000" if config.tenant_id in held else "-v0001"  # last good vs new
        assert token(store.get(config.tenant_id)).endswith(expected)
    assert leaked not in " ".join(store.errors) + caplog.text
    assert "resolved config: " + store.errors[0] in caplog.text
    volume.write(payload(rotated))  # fixed by the next swap
    assert store.maybe_reload()
    assert not store.errors
    assert all(token(store.get(t.tenant_id)).endswith("-v0001") for t in rotated)


def test_a_corrupt_shard_on_the_first_load_loads_the_others(volume: KubeletVolume) -> None:
    files = payload(BASE)
    bad = sorted(files)[-1]
    files[bad] = b"{not json"
    volume.write(files)
    store = ConfigStore(volume.target)
    store.reload()
    assert 0 < store.tenants_count < 24
    assert store.errors[0].startswith(f"{bad}: Invalid JSON")


def test_a_missing_shard_keeps_its_tenants(volume: KubeletVolume) -> None:
    files = payload(BASE)
    volume.write(files)
    store = ConfigStore(volume.target)
    store.reload()
    gone = sorted(files)[1]
    index, count = parse_shard_key(gone) or (-1, -1)
    volume.write({k: v for k, v in files.items() if k != gone})
    store.maybe_reload()
    assert store.tenants_count == 24
    assert store.errors == (f"missing shards [{index}] of {count}",)


def test_a_pool_that_grows_a_shard_count_loses_no_one(volume: KubeletVolume) -> None:
    volume.write(payload(BASE))
    store = ConfigStore(volume.target)
    store.reload()
    small = len(store.snapshot.shards)
    volume.write(payload(BASE, min_shards=small * 2))
    store.maybe_reload()
    assert len(store.snapshot.shards) == small * 2
    assert store.tenants_count == 24
    assert store.errors == ()
    assert all(f"-of-{small * 2}.json" in key for key in store.snapshot.shards)


def test_a_shard_of_another_pool_is_refused(volume: KubeletVolume) -> None:
    files = payload(BASE)
    files["shard-0-of-1.json"] = payload([tenant(77)], pool="other")["shard-0-of-1.json"]
    volume.write(files)
    store = ConfigStore(volume.target, pool="default")
    store.reload()
    assert store.get("t_0077") is None
    assert "shard-0-of-1.json: belongs to pool 'other', not 'default'" in store.errors


def test_two_tenants_on_one_number_are_reported_and_not_indexed(volume: KubeletVolume) -> None:
    # build_shards refuses this, so forge it: a valid document whose tenant takes 5001 too
    shards = build_shards("default", [*BASE, tenant(50)], max_bytes=SHARD_BYTES)
    files = {s.key: s.data for s in shards}
    (holder,) = [s for s in shards if "t_0050" in s.tenant_ids]
    document = parse_document(holder.data)
    forged = tuple(
        tenant(50, phone_number_id="5001") if t.tenant_id == "t_0050" else t
        for t in document.tenants
    )
    files[holder.key] = dump_document(document.model_copy(update={"tenants": forged}))
    volume.write(files)
    store = ConfigStore(volume.target)
    store.reload()
    assert store.get("t_0050") is not None
    assert store.get("t_0001") is not None
    assert store.by_phone("5001") is None  # ambiguous: no answer rather than the wrong one
    assert store.errors == ("phone number 5001 is claimed by tenants t_0001, t_0050",)


def test_a_failing_listener_does_not_stop_the_reload(
    volume: KubeletVolume, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(snapshot: Snapshot) -> None:
        raise RuntimeError("metrics are down")

    seen: list[int] = []
    volume.write(payload(BASE))
    store = ConfigStore(volume.target, listeners=[broken])
    store.add_listener(lambda s: seen.append(len(s.tenants)))
    store.reload()
    assert seen == [24]
    assert "a reload listener failed" in caplog.text


def test_a_plain_directory_reloads_when_a_file_changes(tmp_path: Path) -> None:
    files = payload(BASE)
    for key, data in files.items():
        (tmp_path / key).write_bytes(data)
    store = ConfigStore(tmp_path)
    assert store.maybe_reload()
    assert store.tenants_count == 24
    assert not store.maybe_reload()
    for key, data in payload([*BASE[:23], tenant(23, version=5), tenant(24)]).items():
        (tmp_path / key).write_bytes(data)
    assert store.maybe_reload()
    assert token(store.get("t_0023")).endswith("-v0005")
    assert store.tenants_count == 25


def test_an_unmounted_directory_is_an_error_not_a_crash(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "absent")
    store.maybe_reload()
    assert store.tenants_count == 0
    assert store.errors
    assert "cannot read" in store.errors[0]


async def test_watch_picks_up_a_swap_and_stops(volume: KubeletVolume) -> None:
    volume.write(payload(BASE))
    store = ConfigStore(volume.target)
    stop = asyncio.Event()
    task = asyncio.create_task(store.watch(interval=0.01, stop=stop))
    await _until(lambda: store.tenants_count == 24)
    volume.write(payload([tenant(0, version=9), *BASE[1:]]))
    await _until(lambda: token(store.get("t_0000")).endswith("-v0009"))
    stop.set()
    await asyncio.wait_for(task, 5)


async def _until(condition: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


# -- the "no window" proof ------------------------------------------------------------------

SWAPS = 200
STABLE = [f"t_{i:04d}" for i in range(20)]  # present in every version


def version(k: int) -> list[TenantConfig]:
    """Version k: every stable tenant's token rotated to k, and extra tenants coming and going."""
    extra = [tenant(100 + j, version=k) for j in range(8) if (k >> (j % 4)) & 1]
    return [*(tenant(i, version=k) for i in range(20)), *extra]


def test_readers_never_miss_a_tenant_during_200_swaps(volume: KubeletVolume) -> None:
    volume.write(payload(version(0)))
    store = ConfigStore(volume.target)
    store.reload()
    done = threading.Event()
    misses: list[str] = []
    mixed: list[set[str]] = []
    reloads = [0]
    reads = [0]
    versions_seen: set[str] = set()

    def reader() -> None:
        while not done.is_set():
            for tenant_id in STABLE:
                if store.get(tenant_id) is None:
                    misses.append(tenant_id)
            snapshot = store.snapshot  # one snapshot is one version, never a mix
            configs = [snapshot.tenants.get(t) for t in STABLE]
            suffixes = {c.token.get_secret_value()[-5:] for c in configs if c is not None}
            if len(suffixes) != 1:
                mixed.append(suffixes)
            versions_seen.update(suffixes)
            reads[0] += 1
            time.sleep(0)  # hand the GIL over: the writer must keep swapping meanwhile

    def loader() -> None:
        while not done.is_set():
            reloads[0] += store.maybe_reload()
            time.sleep(0)

    threads = [threading.Thread(target=reader), threading.Thread(target=loader)]
    for thread in threads:
        thread.start()
    try:
        for k in range(1, SWAPS + 1):
            assert volume.write(payload(version(k)))
            time.sleep(0.001)
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    store.maybe_reload()
    print(f"\n{SWAPS} swaps: {reloads[0]} reloads, {reads[0]} reader passes, no miss")
    assert misses == []
    assert mixed == []
    assert volume.writes == SWAPS + 1
    assert reloads[0] > 10
    assert len(versions_seen) > 10
    assert {t.tenant_id for t in version(SWAPS)} == set(store.snapshot.tenants)
    assert token(store.get(STABLE[0])).endswith(f"v{SWAPS:04d}")
    assert store.errors == ()


@pytest.mark.parametrize("when", ["before the files are read", "after the files are read"])
def test_a_swap_in_the_middle_of_a_read_restarts_it(
    volume: KubeletVolume, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    volume.write(payload(version(1)))
    store = ConfigStore(volume.target)
    read = config_module._read_files
    bases: list[str] = []

    def racing(base: Path) -> dict[str, bytes]:
        bases.append(base.name)
        if len(bases) == 1 and when.startswith("before"):
            volume.write(payload(version(2)))  # the directory being read is deleted
        files = read(base)
        if len(bases) == 1 and when.startswith("after"):
            volume.write(payload(version(2)))  # what was read is already stale
        return files

    monkeypatch.setattr(config_module, "_read_files", racing)
    store.reload()
    assert len(bases) == 2
    assert bases[0] != bases[1]
    assert {token(c)[-5:] for c in store.snapshot.tenants.values()} == {"v0002"}
    assert store.snapshot.version == os.readlink(volume.target / DATA)


def test_files_that_never_stop_changing_keep_the_previous_snapshot(
    volume: KubeletVolume, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume.write(payload(version(1)))
    store = ConfigStore(volume.target)
    store.reload()
    before = store.snapshot
    read = config_module._read_files
    swaps = iter(range(2, 100))

    def churning(base: Path) -> dict[str, bytes]:
        files = read(base)
        volume.write(payload(version(next(swaps))))
        return files

    monkeypatch.setattr(config_module, "_read_files", churning)
    store.reload()
    assert store.snapshot.tenants is before.tenants
    assert store.snapshot.version == before.version  # so the next poll tries again
    assert store.errors[0].endswith(f"the files kept changing during {READ_ATTEMPTS} attempts")
    monkeypatch.setattr(config_module, "_read_files", read)
    assert store.maybe_reload()
    assert store.errors == ()
