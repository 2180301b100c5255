"""The resolved config: what the operator publishes to a sender pool and its workers load.

One versioned contract shared by both sides. The operator turns its Ready, active tenants
into `TenantConfig`s and `build_config_shards` packs them into Secret-sized JSON documents;
the workers parse the mounted files back with `parse_document`. Tokens are `SecretStr` so that
repr, str, logs and `model_dump_json` never show them: only `dump_document`, which writes a
Secret's payload, reveals them.

A *config shard* is one of these documents (one Secret, one mounted file): not to be confused
with the worker's *queue shards* (`whatsapp_worker.queue_shards`), the RabbitMQ queues a
pool's messages are split over. A tenant's config shard is a stable hash of its id modulo a
power-of-two shard count, so adding or changing one tenant rewrites one config shard only,
and doubling the count moves each tenant either nowhere or to `index + old_count`. The JSON
fields (`shard`, `shards`) and the Secret and file names keep their short names.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from whatsapp_contract.fingerprint import fingerprint

SCHEMA_VERSION: Literal[1] = 1
DEFAULT_MAX_BYTES = 512 * 1024  # a Secret holds at most 1 MiB; stay well under it
MAX_CONFIG_SHARDS = 1024
# A new pool's layout (the operator's --initial-shards). Each doubling of a layout renames every
# shard of the pool, so every tenant of it records its new Secret (a status write each):
# starting at 4 shards, a pool holds about 2,000 tenants (shards half full) before it first
# re-shards, and a burst of a thousand new tenants causes no second pass for anyone.
INITIAL_CONFIG_SHARDS = 4

ThroughputLevel = Literal["STANDARD", "HIGH", "SHARED"]
# shared/meta-cloud-api.md "Limits": 80 msg/s by default, 1,000 after Meta's upgrade, 20 for
# numbers shared with the WhatsApp Business app. Meta itself reports only STANDARD | HIGH.
MESSAGES_PER_SECOND: dict[str, int] = {"STANDARD": 80, "HIGH": 1000, "SHARED": 20}

_TENANT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_META_ID = r"^[0-9]{1,40}$"
_POOL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class ConfigShardSizeError(ValueError):
    """The tenants cannot be packed into documents under the size limit."""


def content_hash(data: bytes) -> str:
    """The hash of a shard document's bytes, as put on its Secret and reported by workers."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tenant_position(tenant_id: str) -> int:
    """Where a tenant sits in every layout: its shard is this modulo the shard count."""
    return int.from_bytes(hashlib.sha256(tenant_id.encode()).digest()[:8], "big")


def config_shard_index(tenant_id: str, shards: int) -> int:
    """The shard that holds `tenant_id` when the pool has `shards` shards."""
    return tenant_position(tenant_id) % shards


def config_shard_key(index: int, shards: int) -> str:
    """The file name of a shard inside the mounted directory (its key in the Secret)."""
    return f"shard-{index}-of-{shards}.json"


def parse_config_shard_key(key: str) -> tuple[int, int] | None:
    """(index, shards) from a file name made by `config_shard_key`; None for any other name."""
    if not (key.startswith("shard-") and key.endswith(".json")):
        return None
    index, sep, shards = key[len("shard-") : -len(".json")].partition("-of-")
    if not (sep and index.isdigit() and shards.isdigit()):
        return None
    i, n = int(index), int(shards)
    return (i, n) if 0 <= i < n and key == config_shard_key(i, n) else None


class TenantConfig(BaseModel):
    """What a worker needs to send for one tenant."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    tenant_id: str = Field(min_length=1, max_length=50, pattern=_TENANT_ID)
    waba_id: str = Field(pattern=_META_ID)
    phone_number_id: str = Field(pattern=_META_ID)
    graph_api_version: str = Field(pattern=r"^v[0-9]{1,3}\.[0-9]{1,3}$")
    throughput_level: ThroughputLevel = "STANDARD"
    suspended: bool = False  # the operator leaves suspended tenants out; workers refuse them
    token: SecretStr = Field(min_length=1)
    token_fingerprint: str = Field(pattern=r"^sha256:[0-9a-f]{16}$")
    # Meta's `appsecret_proof` for this token (hex HMAC-SHA256 of the token keyed by the app
    # secret), when the tenant's app secret is known: the operator computes it, so the app
    # secret itself never reaches a worker. Sent on every Graph call for apps that require it.
    appsecret_proof: SecretStr | None = Field(default=None, min_length=64, max_length=64)
    # The Meta code that blocked this number (368, 131048, ...: errors.TENANT_BLOCKED_CODES),
    # while the tenant's SendingBlocked condition is True: workers hold its messages in the
    # queue instead of sending, and resume when the operator clears it.
    blocked_code: int | None = Field(default=None, ge=0)
    # The Meta app (`WhatsAppApp`) whose webhooks the receiver takes for this number, when the
    # receiver runs (the operator's --webhook-receiver): the worker then checks the 24-hour
    # customer-service window and resolves unanswered sends from the status webhooks.
    webhook_app_id: str | None = Field(default=None, pattern=_META_ID)

    @model_validator(mode="after")
    def _fingerprint_matches(self) -> TenantConfig:
        # Catches a token swapped or mangled in transit without ever showing it.
        if fingerprint(self.token.get_secret_value()) != self.token_fingerprint:
            raise ValueError("token_fingerprint does not match the token")
        return self

    @property
    def messages_per_second(self) -> int:
        return MESSAGES_PER_SECOND[self.throughput_level]


def tenant_config(*, token: str, **settings: Any) -> TenantConfig:
    """A TenantConfig with its token fingerprint computed."""
    return TenantConfig(token=SecretStr(token), token_fingerprint=fingerprint(token), **settings)


class ConfigShardDocument(BaseModel):
    """One shard of a pool: the JSON payload of one Secret key."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    schema_version: Literal[1]  # required: a document of an unknown version is rejected
    pool: str = Field(min_length=1, max_length=63, pattern=_POOL)
    shard: int = Field(ge=0)
    shards: int = Field(ge=1, le=MAX_CONFIG_SHARDS)
    tenants: tuple[TenantConfig, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> ConfigShardDocument:
        if self.shard >= self.shards:
            raise ValueError(f"shard {self.shard} is out of range for {self.shards} shards")
        ids = [t.tenant_id for t in self.tenants]
        if ids != sorted(set(ids)):
            raise ValueError("tenants must be sorted by tenant_id and unique")
        misplaced = [i for i in ids if config_shard_index(i, self.shards) != self.shard]
        if misplaced:
            raise ValueError(f"tenants placed in the wrong shard: {', '.join(misplaced[:5])}")
        return self

    @property
    def key(self) -> str:
        return config_shard_key(self.shard, self.shards)


_OPTIONAL = ("appsecret_proof", "blocked_code", "webhook_app_id")


def _entry(tenant: TenantConfig) -> dict[str, Any]:
    entry = tenant.model_dump(mode="python")
    entry["token"] = tenant.token.get_secret_value()  # the one place a token is revealed
    if tenant.appsecret_proof is not None:
        entry["appsecret_proof"] = tenant.appsecret_proof.get_secret_value()
    for key in _OPTIONAL:  # absent unless set: the entries of most tenants stay as they were
        if entry[key] is None:
            del entry[key]
    return entry


def _encoded(tenant: TenantConfig) -> bytes:
    """One tenant's entry as JSON bytes."""
    return _json(_entry(tenant))


class Entry:
    """One tenant's entry, encoded once, as the operator keeps it between publications: its
    JSON bytes (token included: never shown by repr), the ids packing checks, and its
    position in every layout. A pass re-packs whole pools, so each entry is encoded when its
    tenant's config changes, not at every pass; and at 10,000 tenants this is 0.6 KB where the
    config model and its cached encoding took 2.3 KB."""

    __slots__ = ("encoded", "phone_number_id", "position", "tenant_id")

    def __init__(self, tenant: TenantConfig) -> None:
        self.tenant_id = tenant.tenant_id
        self.phone_number_id = tenant.phone_number_id
        self.position = tenant_position(tenant.tenant_id)
        self.encoded = _encoded(tenant)

    @classmethod
    def of(cls, tenant: TenantConfig | Entry) -> Entry:
        return tenant if isinstance(tenant, Entry) else cls(tenant)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entry) and other.encoded == self.encoded

    def __hash__(self) -> int:
        return hash(self.encoded)

    def __repr__(self) -> str:  # the bytes hold the token
        return f"Entry(tenant_id={self.tenant_id!r}, bytes={len(self.encoded)})"


def entry_hash(tenant: TenantConfig | Entry) -> str:
    """The hash of one tenant's entry as published: it changes only when that tenant's own
    config does (the shard's hash changes with any of its tenants)."""
    return content_hash(Entry.of(tenant).encoded)


def _json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def dump_document(document: ConfigShardDocument) -> bytes:
    """The document's bytes, tokens included: deterministic (sorted keys, compact JSON).

    Built from the encoded entries: the same bytes as `_json` of the whole document, whose
    keys sort as pool < schema_version < shard < shards < tenants."""
    return _document_bytes(
        document.pool, document.shard, document.shards, map(_encoded, document.tenants)
    )


def _document_bytes(pool: str, shard: int, shards: int, entries: Iterable[bytes]) -> bytes:
    head = _json({"pool": pool, "schema_version": SCHEMA_VERSION, "shard": shard, "shards": shards})
    return head[:-1] + b',"tenants":[' + b",".join(entries) + b"]}"


def parse_document(data: bytes) -> ConfigShardDocument:
    """A shard document from its bytes; raises pydantic.ValidationError when it is not one."""
    return ConfigShardDocument.model_validate_json(data)


@dataclass(frozen=True)
class ConfigShard:
    """A shard ready to be written: the Secret's name, its key, the bytes and their hash."""

    pool: str
    index: int
    count: int
    name: str  # the Secret's name, a DNS subdomain
    key: str  # the Secret's data key, the file name in the mount
    data: bytes
    content_hash: str
    tenant_ids: tuple[str, ...]

    def __repr__(self) -> str:  # the bytes hold tokens
        return (
            f"ConfigShard(name={self.name!r}, tenants={len(self.tenant_ids)}, "
            f"bytes={len(self.data)})"
        )


def config_shard_name(pool: str, index: int, shards: int) -> str:
    return f"whatsapp-pool-{pool}-{index}-of-{shards}"


def parse_config_shard_name(secret_name: str) -> tuple[str | None, int]:
    """(pool, shard count) from a Secret name made by `config_shard_name`; (None, 0) for any
    other name."""
    prefix = "whatsapp-pool-"
    if not secret_name.startswith(prefix):
        return None, 0
    head, sep, count = secret_name[len(prefix) :].rpartition("-of-")
    pool, _, index = head.rpartition("-")
    if not (sep and count.isdigit() and index.isdigit() and pool):
        return None, 0
    return pool, int(count)


def config_shard_count(total_bytes: int, *, max_bytes: int, min_shards: int = 1) -> int:
    """Shards for `total_bytes` of entries, each about half full at most: a power of two."""
    needed = max(1, min_shards, math.ceil(total_bytes / (max_bytes // 2)))
    return 1 << (needed - 1).bit_length()


def build_config_shards(
    pool: str,
    tenants: Iterable[TenantConfig | Entry],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    min_shards: int = 1,
) -> list[ConfigShard]:
    """The pool's shards, every one present (an empty shard still gets its document).

    `min_shards` lets the caller keep its current count, so that a shrinking pool does not
    reshuffle every tenant. If a shard overflows `max_bytes` (an unlucky hash spread) the
    count doubles; ConfigShardSizeError when even MAX_CONFIG_SHARDS cannot hold the tenants.
    """
    ordered = sorted(map(Entry.of, tenants), key=lambda t: t.tenant_id)
    _check_unique(ordered)
    total = sum(len(t.encoded) + 1 for t in ordered)
    count = config_shard_count(total, max_bytes=max_bytes, min_shards=min_shards)
    while count <= MAX_CONFIG_SHARDS:
        shards = _pack(pool, ordered, count)
        largest = max(shards, key=lambda s: len(s.data))
        if len(largest.data) <= max_bytes:
            return shards
        count *= 2
    raise ConfigShardSizeError(
        f"pool {pool!r}: {len(ordered)} tenants ({total} bytes) do not fit in "
        f"{MAX_CONFIG_SHARDS} shards of at most {max_bytes} bytes"
    )


def _check_unique(tenants: list[Entry]) -> None:
    for field in ("tenant_id", "phone_number_id"):
        seen: set[str] = set()
        for tenant in tenants:
            value = getattr(tenant, field)
            if value in seen:
                raise ValueError(f"two tenants share {field} {value!r}")
            seen.add(value)


def _pack(pool: str, ordered: list[Entry], count: int) -> list[ConfigShard]:
    buckets: list[list[Entry]] = [[] for _ in range(count)]
    for tenant in ordered:
        buckets[tenant.position % count].append(tenant)
    shards = []
    for index, bucket in enumerate(buckets):
        # built here, so valid by construction: validation is for documents read back
        data = _document_bytes(pool, index, count, (t.encoded for t in bucket))
        shards.append(
            ConfigShard(
                pool=pool,
                index=index,
                count=count,
                name=config_shard_name(pool, index, count),
                key=config_shard_key(index, count),
                data=data,
                content_hash=content_hash(data),
                tenant_ids=tuple(t.tenant_id for t in bucket),
            )
        )
    return shards


def combine_hashes(hashes: Iterable[tuple[str, str]]) -> str:
    """One hash for a set of (key, content hash) pairs, in any order."""
    lines = "".join(f"{key}={value}\n" for key, value in sorted(hashes))
    return content_hash(lines.encode())


def pool_hash(shards: Iterable[ConfigShard]) -> str:
    """One hash for the whole pool; a worker computes the same from the files it loaded."""
    return combine_hashes((s.key, s.content_hash) for s in shards)
