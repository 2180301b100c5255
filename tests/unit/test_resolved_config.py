"""The resolved-config contract and its sharding (contract/whatsapp_contract/resolved.py)."""

from __future__ import annotations

import json
import random
import re
import string
import tracemalloc
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from whatsapp_contract.resolved import (
    DEFAULT_MAX_BYTES,
    Entry,
    TenantConfig,
    dump_document,
    entry_hash,
    fingerprint,
    parse_document,
    pool_hash,
    tenant_config,
)
from whatsapp_contract.resolved import ConfigShardDocument as ShardDocument
from whatsapp_contract.resolved import ConfigShardSizeError as ShardSizeError
from whatsapp_contract.resolved import build_config_shards as build_shards
from whatsapp_contract.resolved import config_shard_index as shard_index
from whatsapp_contract.resolved import config_shard_key as shard_key
from whatsapp_contract.resolved import parse_config_shard_key as parse_shard_key

TOKEN = "EAAGm0PX4ZCpsBAKZCZAsecretZCtokenZD"
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def meta_token(seed: int) -> str:
    """A token shaped like Meta's system user tokens: 'EAA' and 200-250 base62 characters."""
    rng = random.Random(seed)
    length = rng.randint(200, 250)
    return "EAA" + "".join(rng.choices(string.ascii_letters + string.digits, k=length))


def tenant(i: int, **overrides: Any) -> TenantConfig:
    settings: dict[str, Any] = {
        "tenant_id": f"t_{i:016x}",
        "waba_id": str(102290129340398 + i),
        "phone_number_id": str(106540352242922 + i),
        "graph_api_version": "v25.0",
        "token": meta_token(i),
    }
    settings.update(overrides)
    return tenant_config(**settings)


def entry(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "tenant_id": "t_1",
        "waba_id": "102290129340398",
        "phone_number_id": "106540352242922",
        "graph_api_version": "v25.0",
        "throughput_level": "STANDARD",
        "suspended": False,
        "token": TOKEN,
        "token_fingerprint": fingerprint(TOKEN),
    }
    value.update(overrides)
    return value


def document_json(tenants: list[dict[str, Any]] | None = None, **overrides: Any) -> bytes:
    body: dict[str, Any] = {"schema_version": 1, "pool": "default", "shard": 0, "shards": 1}
    body["tenants"] = [entry()] if tenants is None else tenants
    body.update(overrides)
    return json.dumps(body).encode()


# -- the contract ---------------------------------------------------------------------------


def test_the_token_never_shows_in_repr_str_or_json() -> None:
    config = tenant_config(
        tenant_id="t_1", waba_id="1", phone_number_id="2", graph_api_version="v25.0", token=TOKEN
    )
    document = ShardDocument(schema_version=1, pool="default", shard=0, shards=1, tenants=(config,))
    shard = build_shards("default", [config])[0]
    shown = [
        repr(config),
        str(config),
        config.model_dump_json(),
        str(config.model_dump()),
        repr(document),
        document.model_dump_json(),
        repr(shard),
        str(shard),
    ]
    assert all(TOKEN not in text for text in shown)
    assert config.token.get_secret_value() == TOKEN


def test_dump_document_is_the_one_place_the_token_is_written() -> None:
    config = tenant(1)
    document = ShardDocument(
        schema_version=1, pool="p", shard=0, shards=1, tenants=(config, tenant(2))
    )
    data = dump_document(document)
    assert config.token.get_secret_value().encode() in data
    assert parse_document(data) == document
    assert dump_document(parse_document(data)) == data


def test_the_document_bytes_are_compact_json_with_sorted_keys() -> None:
    data = dump_document(parse_document(document_json()))
    assert (
        data
        == json.dumps(
            json.loads(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    )
    assert data.startswith(b'{"pool":"default","schema_version":1,"shard":0,"shards":1,')


@dataclass(frozen=True)
class Bad:
    name: str
    document: bytes
    problem: str


BAD_DOCUMENTS = [
    Bad("an unknown top-level field", document_json(generation=3), "generation"),
    Bad("an unknown tenant field", document_json([entry(region="eu")]), "region"),
    Bad("a newer schema_version", document_json(schema_version=2), "schema_version"),
    Bad("no schema_version", b'{"pool":"p","shard":0,"shards":1,"tenants":[]}', "schema_version"),
    Bad("a token without its fingerprint", document_json([entry(token_fingerprint=None)]), "fing"),
    Bad("a fingerprint of another token", document_json([entry(token="EAAother")]), "does not"),
    Bad("an empty token", document_json([entry(token="")]), "token"),
    Bad("a WABA id that is not digits", document_json([entry(waba_id="abc")]), "waba_id"),
    Bad("an unknown throughput level", document_json([entry(throughput_level="MAX")]), "thro"),
    Bad("a string for a boolean", document_json([entry(suspended="no")]), "suspended"),
    Bad("a shard out of range", document_json(shard=1, shards=1), "out of range"),
    Bad("a pool that is not a DNS label", document_json(pool="Default"), "pool"),
    Bad("the same tenant twice", document_json([entry(), entry()]), "sorted"),
    Bad("unsorted tenants", document_json([entry(tenant_id="t_2"), entry()]), "sorted"),
    Bad("not JSON at all", b"\x00garbage", "Invalid JSON"),
]


@pytest.mark.parametrize("case", BAD_DOCUMENTS, ids=lambda c: c.name)
def test_a_bad_document_is_rejected(case: Bad) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_document(case.document)
    assert case.problem in str(caught.value)


def test_a_tenant_in_the_wrong_shard_is_rejected() -> None:
    tenants = [entry(tenant_id=f"t_{i}", phone_number_id=str(i)) for i in range(20)]
    wrong = sorted(
        (t for t in tenants if shard_index(t["tenant_id"], 2) == 1), key=lambda t: t["tenant_id"]
    )
    with pytest.raises(ValidationError, match="wrong shard"):
        parse_document(document_json(wrong, shard=0, shards=2))


def test_a_fingerprint_mismatch_does_not_show_the_token() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_document(document_json([entry(token_fingerprint=fingerprint("other"))]))
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value.errors(include_input=False))


def test_models_are_frozen() -> None:
    config = tenant(1)
    with pytest.raises(ValidationError):
        config.suspended = True  # type: ignore[misc]


def test_a_token_must_be_a_secret_str_in_python() -> None:
    with pytest.raises(ValidationError):
        TenantConfig(**{**entry(), "token": 42})
    assert TenantConfig(**{**entry(), "token": SecretStr(TOKEN)}).token_fingerprint


@pytest.mark.parametrize(
    ("level", "rate"), [("STANDARD", 80), ("HIGH", 1000), ("SHARED", 20)], ids=str
)
def test_messages_per_second_follows_the_throughput_level(level: str, rate: int) -> None:
    assert tenant(1, throughput_level=level).messages_per_second == rate


def test_shard_keys_round_trip() -> None:
    assert shard_key(3, 16) == "shard-3-of-16.json"
    assert parse_shard_key("shard-3-of-16.json") == (3, 16)
    for other in ["shard-16-of-16.json", "shard-03-of-16.json", "tokens.json", "shard-a-of-b.json"]:
        assert parse_shard_key(other) is None


# -- sharding -------------------------------------------------------------------------------

POOL = [tenant(i) for i in range(1000)]


def by_key(shards: list[Any]) -> dict[str, str]:
    return {s.key: s.content_hash for s in shards}


def changed(before: list[Any], after: list[Any]) -> list[str]:
    old, new = by_key(before), by_key(after)
    assert old.keys() == new.keys(), "the shard count must not change"
    return [key for key in old if old[key] != new[key]]


def test_the_bytes_do_not_depend_on_the_input_order() -> None:
    shuffled = list(POOL)
    random.Random(7).shuffle(shuffled)
    first, second = build_shards("default", POOL), build_shards("default", shuffled)
    assert [(s.name, s.data) for s in first] == [(s.name, s.data) for s in second]
    assert pool_hash(first) == pool_hash(reversed(second))


def test_every_tenant_is_in_the_shard_its_id_hashes_to() -> None:
    shards = build_shards("default", POOL, max_bytes=64 * 1024)
    assert len(shards) == 16  # ~460 KB of entries, at most half of 64 KiB each: 15 -> 16
    for shard in shards:
        document = parse_document(shard.data)
        assert (document.shard, document.shards) == (shard.index, shard.count)
        assert all(shard_index(t, shard.count) == shard.index for t in shard.tenant_ids)
    assert sorted(t for s in shards for t in s.tenant_ids) == sorted(t.tenant_id for t in POOL)


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("a tenant added", lambda ts: [*ts, tenant(5000)]),
        ("a tenant removed (suspended)", lambda ts: ts[1:]),
        ("a token rotated", lambda ts: [tenant(0, token="EAA" + "r" * 220), *ts[1:]]),
        (
            "a tenant's throughput upgraded",
            lambda ts: [tenant(0, throughput_level="HIGH"), *ts[1:]],
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_one_tenant_changed_changes_exactly_one_shard(name: str, edit: Any) -> None:
    before = build_shards("default", POOL, max_bytes=64 * 1024)
    after = build_shards("default", edit(POOL), max_bytes=64 * 1024)
    assert len(changed(before, after)) == 1, name
    assert pool_hash(before) != pool_hash(after)


def test_nothing_changed_changes_nothing() -> None:
    assert changed(build_shards("default", POOL), build_shards("default", list(POOL))) == []


def test_doubling_the_count_moves_a_tenant_to_index_or_index_plus_old_count() -> None:
    for config in POOL[:200]:
        old, new = shard_index(config.tenant_id, 8), shard_index(config.tenant_id, 16)
        assert new in (old, old + 8)


def test_an_empty_pool_still_has_one_document() -> None:
    (shard,) = build_shards("default", [])
    assert shard.tenant_ids == ()
    assert parse_document(shard.data).tenants == ()


def test_min_shards_keeps_the_count_and_counts_are_powers_of_two() -> None:
    assert len(build_shards("default", POOL[:3], min_shards=5)) == 8
    assert len(build_shards("default", POOL[:3])) == 1


def test_names_are_dns_subdomains_even_for_the_longest_pool() -> None:
    pool = "p" + "-x" * 30 + "9"  # 63 characters, the longest senderPool
    for shard in build_shards(pool, POOL[:50], max_bytes=4096):
        assert DNS_SUBDOMAIN.match(shard.name), shard.name
        assert len(shard.name) <= 253
        assert shard.name.endswith(f"-{shard.index}-of-{shard.count}")


def test_a_tenant_larger_than_a_shard_is_a_clear_error() -> None:
    with pytest.raises(ShardSizeError, match="do not fit in 1024 shards of at most 300 bytes"):
        build_shards("default", POOL[:2], max_bytes=300)


@pytest.mark.parametrize("field", ["tenant_id", "phone_number_id"])
def test_two_tenants_sharing_an_id_are_refused(field: str) -> None:
    twin = tenant(2, **{field: getattr(POOL[1], field)})
    with pytest.raises(ValueError, match=f"two tenants share {field}"):
        build_shards("default", [POOL[1], twin])


def test_10000_tenants_with_real_sized_tokens_fit_well_under_the_secret_limit() -> None:
    tenants = [tenant(i) for i in range(10_000)]
    shards = build_shards("default", tenants)
    sizes = [len(s.data) for s in shards]
    print(
        f"\n10,000 tenants: {len(shards)} shards, largest {max(sizes)} bytes, "
        f"smallest {min(sizes)} bytes, total {sum(sizes)} bytes (limit {DEFAULT_MAX_BYTES})"
    )
    assert max(sizes) <= DEFAULT_MAX_BYTES
    assert max(sizes) * 4 // 3 < 1024 * 1024  # even base64-encoded, under 1 MiB
    assert sum(len(s.tenant_ids) for s in shards) == 10_000
    assert len({s.name for s in shards}) == len(shards)


# --- Entry: one tenant's entry as the operator keeps it between publications ---------------


def test_an_entry_packs_into_the_same_bytes_as_its_config() -> None:
    configs = [tenant(i) for i in range(40)]
    from_configs = build_shards("default", configs, max_bytes=8192)
    from_entries = build_shards("default", [Entry(c) for c in configs], max_bytes=8192)
    assert [s.data for s in from_entries] == [s.data for s in from_configs]
    for shard in from_entries:  # and the document the workers read back is the same
        document = parse_document(shard.data)
        assert dump_document(document) == shard.data
        assert [t.tenant_id for t in document.tenants] == list(shard.tenant_ids)


def test_entries_are_equal_when_their_published_bytes_are() -> None:
    assert Entry(tenant(1)) == Entry(tenant(1))
    assert Entry(tenant(1)) != Entry(tenant(1, throughput_level="HIGH"))
    assert Entry(tenant(1)) != tenant(1)
    assert entry_hash(Entry(tenant(1))) == entry_hash(tenant(1))
    assert len({Entry(tenant(1)), Entry(tenant(1)), Entry(tenant(2))}) == 2


def test_an_entry_never_shows_its_token() -> None:
    one = Entry(tenant(7))
    assert meta_token(7).encode() in one.encoded  # it is what gets published
    assert meta_token(7) not in repr(one) + str(one) + repr([one])


def test_an_entry_is_smaller_than_its_config() -> None:
    configs = [tenant(i) for i in range(500)]
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        entries = [Entry(c) for c in configs]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    per_entry = sum(s.size_diff for s in after.compare_to(before, "filename")) / len(entries)
    assert per_entry < 700  # bytes; the model and its cached encoding took about 2,300
