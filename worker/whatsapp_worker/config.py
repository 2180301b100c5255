"""The worker's view of its pool's resolved config, reloaded when kubelet swaps the files.

kubelet writes a Secret volume as `<dir>/..data -> ..<timestamp>` (a symlink to a hidden,
timestamped directory holding the real files) and swaps it atomically on every change. The
store reads `..data` once, reads every config shard (the pool's Secret-sized documents of
`whatsapp_contract.resolved`, one file each; not the queue shards of `queue_shards.py`) from
that one timestamped directory (never through the visible symlinks, which may point into the
next version mid-read), validates them with the shared contract and replaces one reference to
an immutable snapshot. Readers never lock and never see a half-loaded state.

A bad or missing config shard never drops tenants: the previous good state of that shard is
kept and the problem is listed in `errors` (and logged, without any token).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from pydantic import ValidationError

from whatsapp_contract.redaction import REDACTOR
from whatsapp_contract.resolved import (
    ConfigShardDocument,
    TenantConfig,
    combine_hashes,
    config_shard_index,
    content_hash,
    parse_config_shard_key,
    parse_document,
)

log = logging.getLogger(__name__)

DATA_DIR = "..data"
PLAIN = "plain:"  # the version of a directory without `..data`: a hash of names, sizes, mtimes
READ_ATTEMPTS = 5  # a swap during a read restarts it; kubelet swaps seconds apart at most


@dataclass(frozen=True)
class LoadedConfigShard:
    key: str
    content_hash: str
    document: ConfigShardDocument


@dataclass(frozen=True)
class Snapshot:
    """One complete, consistent state of the pool's config. Never mutated."""

    version: str | None  # the `..data` target it was read from (a stat signature otherwise)
    pool: str | None
    tenants: Mapping[str, TenantConfig] = field(default_factory=dict)
    phones: Mapping[str, TenantConfig] = field(default_factory=dict)
    shards: Mapping[str, LoadedConfigShard] = field(default_factory=dict)
    content_hash: str | None = None
    loaded_at: float | None = None
    errors: tuple[str, ...] = ()


Listener = Callable[[Snapshot], None]


class ConfigStore:
    """The tenants of one sender pool, from a mounted directory of config shard files."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        pool: str | None = None,
        clock: Callable[[], float] = time.time,
        listeners: Iterable[Listener] = (),
    ) -> None:
        self.directory = Path(directory)
        self._expected_pool = pool
        self._clock = clock
        self._listeners = list(listeners)
        self._lock = threading.Lock()  # one reload at a time; readers never take it
        self._snapshot = Snapshot(version=None, pool=pool)

    # readers: one attribute read each, so always from a single snapshot
    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def get(self, tenant_id: str) -> TenantConfig | None:
        return self._snapshot.tenants.get(tenant_id)

    def by_phone(self, phone_number_id: str) -> TenantConfig | None:
        return self._snapshot.phones.get(phone_number_id)

    @property
    def pool(self) -> str | None:
        return self._snapshot.pool

    @property
    def content_hash(self) -> str | None:
        return self._snapshot.content_hash

    @property
    def loaded_at(self) -> float | None:
        return self._snapshot.loaded_at

    @property
    def tenants_count(self) -> int:
        return len(self._snapshot.tenants)

    @property
    def errors(self) -> tuple[str, ...]:
        return self._snapshot.errors

    def add_listener(self, listener: Listener) -> None:
        """Called with the new snapshot after every reload (metrics, heartbeats)."""
        self._listeners.append(listener)

    def current_version(self) -> str | None:
        """What the directory holds now: the `..data` target (one readlink), or None."""
        try:
            return os.readlink(self.directory / DATA_DIR)
        except FileNotFoundError:
            return _signature(self.directory)  # a plain directory (local runs)
        except OSError:
            return None

    def maybe_reload(self) -> bool:
        """Reload if kubelet swapped the files since the last load; True if it reloaded."""
        version = self.current_version()
        if version is not None and version == self._snapshot.version:
            return False
        self.reload()
        return True

    def reload(self) -> Snapshot:
        """Read everything, then swap the new snapshot in with one assignment."""
        with self._lock:
            previous = self._snapshot
            try:
                version, files = self._read()
            except OSError as exc:
                snapshot = replace(previous, errors=(f"cannot read {self.directory}: {exc}",))
            else:
                snapshot = self._build(version, files, previous)
            if snapshot.tenants is not previous.tenants:
                _register_secrets(snapshot.tenants.values())
            self._snapshot = snapshot
        for error in snapshot.errors:
            if error not in previous.errors:
                log.warning("resolved config: %s", error)
        for listener in list(self._listeners):
            try:
                listener(snapshot)
            except Exception:
                log.exception("resolved config: a reload listener failed")
        return snapshot

    async def watch(self, interval: float = 1.0, stop: asyncio.Event | None = None) -> None:
        """Poll the `..data` symlink every `interval` s until cancelled or `stop` is set."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            await asyncio.to_thread(self.maybe_reload)  # a reload parses megabytes: not here
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    def _read(self) -> tuple[str, dict[str, bytes]]:
        for _ in range(READ_ATTEMPTS):
            version = self.current_version()
            if version is None:
                raise OSError(f"{DATA_DIR} is unreadable")
            plain = version.startswith(PLAIN)
            base = self.directory if plain else self.directory / version
            try:
                files = _read_files(base)
            except FileNotFoundError:
                continue  # swapped and cleaned up under us: read the new version
            if self.current_version() == version:
                return version, files
        raise OSError(f"the files kept changing during {READ_ATTEMPTS} attempts")

    def _build(self, version: str, files: dict[str, bytes], previous: Snapshot) -> Snapshot:
        errors: list[str] = []
        pool = self._expected_pool or previous.pool
        good, bad, pool = _parse(files, pool, errors)
        shards = {**{k: previous.shards[k] for k in bad if k in previous.shards}, **good}
        gaps = _gaps(good, bad, previous.shards, errors)
        tenants = _merge(good.values(), gaps, previous.tenants)
        phones = _index_phones(tenants, errors)
        return Snapshot(
            version=version,
            pool=pool,
            tenants=MappingProxyType(tenants),
            phones=MappingProxyType(phones),
            shards=MappingProxyType(shards),
            content_hash=combine_hashes((key, s.content_hash) for key, s in shards.items()),
            loaded_at=self._clock(),
            errors=tuple(errors),
        )


def _register_secrets(tenants: Iterable[TenantConfig]) -> None:
    """The tenants' tokens (and proofs), redacted from every log line of the process from
    now on (whatsapp_contract.redaction; a token seen before costs one set look-up)."""
    for tenant in tenants:
        REDACTOR.add(tenant.token.get_secret_value())
        if tenant.appsecret_proof is not None:
            REDACTOR.add(tenant.appsecret_proof.get_secret_value())


def _parse(
    files: dict[str, bytes], pool: str | None, errors: list[str]
) -> tuple[dict[str, LoadedConfigShard], list[str], str | None]:
    """The valid config shards of the pool, the keys of the others, and the pool."""
    good: dict[str, LoadedConfigShard] = {}
    bad: list[str] = []
    for key, data in sorted(files.items()):
        try:
            document = parse_document(data)
        except ValidationError as exc:
            errors.append(f"{key}: {_describe(exc)}")
            bad.append(key)
            continue
        pool = pool or document.pool
        if document.pool != pool:
            errors.append(f"{key}: belongs to pool {document.pool!r}, not {pool!r}")
            bad.append(key)
            continue
        good[key] = LoadedConfigShard(key, content_hash(data), document)
    return good, bad, pool


def _gaps(
    good: dict[str, LoadedConfigShard],
    bad: list[str],
    previous: Mapping[str, LoadedConfigShard],
    errors: list[str],
) -> set[tuple[int, int]]:
    """(index, count) of every config shard that is bad or missing."""
    gaps: set[tuple[int, int]] = set()
    for key in bad:
        kept = previous.get(key)
        placement = parse_config_shard_key(key) or (
            (kept.document.shard, kept.document.shards) if kept else None
        )
        if placement is not None:
            gaps.add(placement)
    counts = sorted({s.document.shards for s in good.values()} | {n for _, n in gaps})
    if len(counts) > 1:
        errors.append(f"shard files disagree on the shard count: {counts}")
    for count in counts:
        present = {s.document.shard for s in good.values() if s.document.shards == count}
        missing = [i for i in range(count) if i not in present and (i, count) not in gaps]
        if missing:
            errors.append(f"missing shards {missing} of {count}")
        gaps.update((i, count) for i in missing)
    return gaps


def _read_files(base: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    with os.scandir(base) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(".json"):
                continue
            if not entry.is_file():
                continue
            files[entry.name] = Path(entry.path).read_bytes()
    return files


def _merge(
    good: Iterable[LoadedConfigShard],
    gaps: set[tuple[int, int]],
    previous: Mapping[str, TenantConfig],
) -> dict[str, TenantConfig]:
    tenants: dict[str, TenantConfig] = {}
    # The largest shard count first: it is the newest layout when a pool grows.
    for shard in sorted(good, key=lambda s: (-s.document.shards, s.key)):
        for tenant in shard.document.tenants:
            tenants.setdefault(tenant.tenant_id, tenant)
    # A shard that is bad or missing keeps the tenants it held before: never a gap.
    for tenant_id, tenant in previous.items() if gaps else ():
        if tenant_id not in tenants and any(config_shard_index(tenant_id, n) == i for i, n in gaps):
            tenants[tenant_id] = tenant
    return tenants


def _index_phones(
    tenants: Mapping[str, TenantConfig], errors: list[str]
) -> dict[str, TenantConfig]:
    phones: dict[str, TenantConfig] = {}
    clashes: dict[str, list[str]] = {}
    for tenant in tenants.values():
        owner = phones.setdefault(tenant.phone_number_id, tenant)
        if owner is not tenant:
            clashes.setdefault(tenant.phone_number_id, [owner.tenant_id]).append(tenant.tenant_id)
    for phone, ids in sorted(clashes.items()):
        del phones[phone]  # ambiguous: better no answer than another tenant's
        errors.append(f"phone number {phone} is claimed by tenants {', '.join(sorted(ids))}")
    return phones


def _describe(exc: ValidationError) -> str:
    """What is wrong, without the offending values: they may be tokens."""
    problems = exc.errors(include_input=False, include_url=False, include_context=False)
    described = [
        f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" if err["loc"] else err["msg"]
        for err in problems[:5]
    ]
    return "; ".join(described) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")


def _signature(directory: Path) -> str | None:
    try:
        with os.scandir(directory) as entries:
            stats = sorted(
                f"{e.name}:{e.stat().st_size}:{e.stat().st_mtime_ns}"
                for e in entries
                if e.name.endswith(".json") and not e.name.startswith(".")
            )
    except OSError:
        return None
    return PLAIN + hashlib.sha256("\n".join(stats).encode()).hexdigest()[:16]
