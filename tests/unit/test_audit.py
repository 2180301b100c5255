"""The audit trail's pure parts: the entry hash, field checks, messages (audit.py)."""

from __future__ import annotations

import hashlib
import hmac
import pickle
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from whatsapp_operator.postgres import audit, migrations
from whatsapp_operator.postgres.audit import (
    GENESIS,
    KEYED,
    UNKEYED,
    AuditEvent,
    AuditLog,
    AuditRecord,
    VerifyResult,
    canonical_at,
    checked_fields,
    entry_hash,
    entry_mac,
)
from whatsapp_operator.postgres.audit_key import AuditKey

TOKEN = "EAAGm0PX4ZCpsBAKZB7ZCZBdbTESTtoken0123456789"
AT = "2026-05-01T10:00:00.123456+00:00"
BASE = (GENESIS, AT, "t_a3eecb94bb822a92", "validated", "operator", "sha256:0123456789abcdef", "")
KEY = AuditKey(b"k" * 32)


def test_entry_hash_is_deterministic_hex_sha256() -> None:
    first = entry_hash(*BASE)
    assert first == entry_hash(*BASE)
    assert len(first) == 64
    assert set(first) <= set("0123456789abcdef")


def test_entry_hash_is_pinned() -> None:
    """The encoding is part of every stored chain: changing it breaks verification. It is
    JSON with sorted keys, no spaces, ASCII only, and a format version."""
    canonical = (
        '{"actor":"operator","at":"2026-05-01T10:00:00.123456+00:00","detail":"",'
        f'"event":"validated","prev_hash":"{GENESIS}","tenant_id":"t_a3eecb94bb822a92",'
        '"token_fingerprint":"sha256:0123456789abcdef","v":1}'
    )
    assert entry_hash(*BASE) == hashlib.sha256(canonical.encode()).hexdigest()
    assert entry_hash(*BASE) == "cdc253087e0ccd8cab8213064e9066caedbc97d73d479dcb63e991ad86809f39"


@pytest.mark.parametrize(
    ("index", "other"),
    [
        pytest.param(0, "1" * 64, id="prev_hash"),
        pytest.param(1, "2026-05-01T10:00:00.123457+00:00", id="at"),
        pytest.param(2, "t_other", id="tenant_id"),
        pytest.param(3, "revoked", id="event"),
        pytest.param(4, "legacy:root", id="actor"),
        pytest.param(5, "sha256:fedcba9876543210", id="fingerprint"),
        pytest.param(5, None, id="fingerprint-none"),
        pytest.param(6, "outcome=ok", id="detail"),
    ],
)
def test_every_field_changes_the_hash(index: int, other: str | None) -> None:
    changed: list[str | None] = list(BASE)
    changed[index] = other
    assert entry_hash(*changed) != entry_hash(*BASE)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("left", "right"),
    [
        pytest.param(("ab", "c"), ("a", "bc"), id="text moved between fields"),
        pytest.param(("a|b", ""), ("a", "b"), id="separator-like characters"),
        pytest.param(('a","b', ""), ("a", "b"), id="quotes"),
    ],
)
def test_encoding_is_unambiguous(left: tuple[str, str], right: tuple[str, str]) -> None:
    def h(actor: str, detail: str) -> str:
        return entry_hash(GENESIS, AT, "t", "validated", actor, None, detail)

    assert h(*left) != h(*right)


def test_fingerprint_none_empty_and_the_word_none_differ() -> None:
    hashes = {entry_hash(*BASE[:5], fp, "") for fp in (None, "", "None", "null")}
    assert len(hashes) == 4


def test_genesis_and_a_chain() -> None:
    assert GENESIS == "0" * 64
    first = entry_hash(*BASE)
    second = entry_hash(first, *BASE[1:])
    assert second not in (first, entry_hash(*BASE))


def test_event_enum_matches_the_migration_check_constraint() -> None:
    assert tuple(e.value for e in AuditEvent) == migrations.AUDIT_EVENTS_V3
    assert entry_hash(*BASE[:3], AuditEvent.VALIDATED, *BASE[4:]) == entry_hash(*BASE)


@pytest.mark.parametrize(
    ("at", "text"),
    [
        (datetime(2026, 5, 1, 10, 0, tzinfo=UTC), "2026-05-01T10:00:00.000000+00:00"),
        (
            datetime(2026, 5, 1, 12, 30, 0, 5, tzinfo=timezone(timedelta(hours=2, minutes=30))),
            "2026-05-01T10:00:00.000005+00:00",
        ),
    ],
)
def test_canonical_at_is_utc_with_microseconds(at: datetime, text: str) -> None:
    assert canonical_at(at) == text


def test_canonical_at_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        canonical_at(datetime(2026, 5, 1))


@pytest.mark.parametrize(
    "field", ["tenant_id", "actor", "fingerprint", "detail"], ids=lambda f: f"token in {f}"
)
def test_token_shaped_text_is_refused_everywhere(field: str) -> None:
    values = {"tenant_id": "t_1", "actor": "op", "fingerprint": None, "detail": ""}
    values[field] = f"x {TOKEN[:23]} y" if field != "fingerprint" else TOKEN[:30]
    with pytest.raises(ValueError, match="looks like it holds a Meta access token") as err:
        checked_fields(
            values["tenant_id"] or "",
            "validated",
            values["actor"] or "",
            values["fingerprint"],
            values["detail"] or "",
        )
    assert TOKEN[:23] not in str(err.value)


def test_short_eaa_runs_are_not_tokens() -> None:
    assert checked_fields("t_1", "validated", "op", None, "EAA1234 short")[4] == "EAA1234 short"


def test_detail_is_clipped_and_one_line_actor_clipped() -> None:
    tenant, kind, actor, fp, detail = checked_fields(
        "t_1", "signup", "a" * 300, "sha256:0123", "x\ny " + "z" * 400
    )
    assert (tenant, kind, fp) == ("t_1", AuditEvent.SIGNUP, "sha256:0123")
    assert len(detail) == audit.MAX_DETAIL
    assert detail.startswith("x y zz")
    assert len(actor) == 253


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("t_1", "deleted", "op", None, ""), "unknown audit event"),
        (("", "validated", "op", None, ""), "tenant_id must be"),
        (("t" * 51, "validated", "op", None, ""), "tenant_id must be"),
        (("t_1", "validated", "  ", None, ""), "actor must not be empty"),
        (("t_1", "validated", "op", "f" * 41, ""), "fingerprint must be"),
        (("t_1", "validated", "op", "", ""), "fingerprint must be"),
        (("t_1", "validated", "op", None, "a\x00b"), "NUL"),
    ],
)
def test_bad_fields_are_refused(args: tuple[str, str, str, str | None, str], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        checked_fields(*args)


def record(version: int = UNKEYED, **changes: object) -> AuditRecord:
    at = datetime(2026, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    base = AuditRecord(1, at, "t_1", "validated", "op", None, "ok", GENESIS, "", version)
    base = replace(base, hash=base.expected_hash(KEY))
    return replace(base, **changes)  # type: ignore[arg-type]


def test_record_expected_hash_and_display() -> None:
    rec = record()
    assert rec.expected_hash(None) == entry_hash(
        GENESIS, "2026-05-01T10:00:00.123456+00:00", "t_1", "validated", "op", None, "ok"
    )
    assert record(actor="someone else").expected_hash(None) != rec.hash
    keyed = record(KEYED)
    assert keyed.hash == entry_mac(
        KEY, GENESIS, "2026-05-01T10:00:00.123456+00:00", "t_1", "validated", "op", None, "ok"
    )
    with pytest.raises(ValueError, match="needs the audit key"):
        keyed.expected_hash(None)
    assert str(rec) == "1  2026-05-01T10:00:00.123456+00:00  t_1  validated  op  -  ok"
    # a row written around AuditLog is still shown without the token
    assert TOKEN not in str(record(detail=f"leak {TOKEN}"))


def test_verify_result_messages() -> None:
    assert str(VerifyResult(True, 3, "ab")).startswith(
        "audit chain intact: 3 entries, HMAC-SHA256 keyed"
    )
    assert "the first 2, written before the audit key" in str(
        VerifyResult(True, 3, "ab", unkeyed=2)
    )
    assert "none keyed yet" in str(VerifyResult(True, 3, "ab", unkeyed=3))
    broken = VerifyResult(False, 4, "ab", 5, "hash_mismatch", "edited")
    assert str(broken).startswith("audit chain broken at entry 5: hash_mismatch: edited")


def test_cli_needs_a_database_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(audit.DATABASE_URL_ENV, raising=False)
    assert audit.main(["verify"]) == 2
    assert "set --database-url" in capsys.readouterr().err


# -- the keyed chain (issue 19: the owner of the database could recompute a sha256 chain) ----
def test_entry_mac_is_hmac_sha256_of_the_pinned_encoding_with_version_2() -> None:
    canonical = (
        '{"actor":"operator","at":"2026-05-01T10:00:00.123456+00:00","detail":"",'
        f'"event":"validated","prev_hash":"{GENESIS}","tenant_id":"t_a3eecb94bb822a92",'
        '"token_fingerprint":"sha256:0123456789abcdef","v":2}'
    )
    expected = hmac.new(b"k" * 32, canonical.encode(), hashlib.sha256).hexdigest()
    assert entry_mac(KEY, *BASE) == expected
    assert len(expected) == 64  # fits the hash column
    assert entry_mac(AuditKey(b"K" * 32), *BASE) != expected  # another key, another chain
    assert entry_mac(KEY, *BASE) not in (
        entry_hash(*BASE),
        hashlib.sha256(canonical.encode()).hexdigest(),
    )


def check(chain: list[AuditRecord], key: AuditKey = KEY) -> tuple[str, str] | None:
    """audit._check over a chain, as `verify` walks it: the first problem, or None."""
    expected, last_id, checked, unkeyed = GENESIS, 0, 0, 0
    for rec in chain:
        bad = audit._check(rec, key, expected, last_id, (checked, unkeyed))
        if bad is not None:
            return bad
        expected, last_id, checked = rec.hash, rec.id, checked + 1
        unkeyed += rec.chain_version == UNKEYED
    return None


def chain(versions: list[int], key: AuditKey = KEY) -> list[AuditRecord]:
    out: list[AuditRecord] = []
    prev = GENESIS
    for i, version in enumerate(versions, 1):
        rec = replace(record(version), id=i, prev_hash=prev, detail=f"n={i}")
        rec = replace(rec, hash=rec.expected_hash(key))
        out.append(rec)
        prev = rec.hash
    return out


def forge(rec: AuditRecord, key: AuditKey | None, **changes: object) -> AuditRecord:
    """What someone who can edit the table does: change an entry and recompute its hash."""
    edited = replace(rec, **changes)  # type: ignore[arg-type]
    return replace(edited, hash=edited.expected_hash(key))


def test_a_database_owner_without_the_key_cannot_recompute_the_chain() -> None:
    good = chain([KEYED] * 4)
    assert check(good) is None
    # recomputed as sha256 (all an unkeyed chain needed), or under a key of their own
    for forged in (
        forge(good[1], None, actor="mallory", chain_version=UNKEYED),
        forge(good[1], AuditKey(b"m" * 32), actor="mallory"),
    ):
        bad = check([good[0], forged, *good[2:]])
        assert bad is not None
        assert bad[0] in ("hash_mismatch", "unkeyed_after_keyed")
    # with the key, the edit verifies until the next link (as an unkeyed chain did for all)
    with_key = forge(good[1], KEY, actor="mallory")
    assert check([good[0], with_key, *good[2:]]) == (
        "prev_hash_mismatch",
        "its prev_hash is not the hash of entry 2 (one of the two was rewritten)",
    )


def test_unkeyed_entries_before_the_key_are_kept_and_protected_by_the_first_keyed() -> None:
    mixed = chain([UNKEYED, UNKEYED, KEYED, KEYED])
    assert check(mixed) is None
    # an unkeyed entry edited and re-hashed: the first keyed entry's MAC covers its hash
    rehashed = forge(mixed[1], None, actor="mallory")
    assert check([mixed[0], rehashed, *mixed[2:]]) is not None
    # an unkeyed entry after keyed ones: refused, whatever its hash
    late = chain([KEYED, KEYED, UNKEYED])
    bad = check(late)
    assert bad is not None
    assert bad[0] == "unkeyed_after_keyed"
    # the wrong key: named as such
    wrong = check(mixed, AuditKey(b"w" * 32))
    assert wrong is not None
    assert "the audit key given is not the one it was written with" in wrong[1]


def test_the_audit_log_needs_a_key() -> None:
    with pytest.raises(TypeError, match="needs the audit key"):
        AuditLog(object(), None)  # type: ignore[arg-type]


def test_audit_key_from_a_file_never_shows_the_key(tmp_path: Path) -> None:
    secret = b"s3cr3t-audit-key-material-0123456789abcdef"
    (tmp_path / "key").write_bytes(secret + b"\n")
    key = AuditKey.from_file(tmp_path / "key")
    assert key.mac(b"x") == hmac.new(secret, b"x", hashlib.sha256).hexdigest()  # newline off
    assert "s3cr3t" not in repr(key) + str(key)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)
    (tmp_path / "short").write_bytes(b"s3cr3t-short")
    for path, words in (
        (tmp_path / "short", "12 bytes; at least 32"),
        (tmp_path / "absent", "cannot read the audit key file"),
        (tmp_path, "is a folder"),
    ):
        with pytest.raises(ValueError, match=words) as err:
            AuditKey.from_file(path)
        assert "s3cr3t" not in str(err.value)


def test_cli_verify_needs_the_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(audit.DATABASE_URL_ENV, "postgresql://nobody@127.0.0.1:1/x")
    monkeypatch.delenv("WHATSAPP_OPERATOR_AUDIT_KEY_FILE", raising=False)
    assert audit.main(["verify"]) == 2
    assert "the chain is keyed: set --audit-key-file" in capsys.readouterr().err


def test_migration_4_versions_the_chain_and_refuses_unversioned_writers() -> None:
    (m4,) = [m for m in migrations.MIGRATIONS if m.version == 4]
    ddl = " ".join(m4.statements)
    assert "ADD COLUMN IF NOT EXISTS chain_version SMALLINT NOT NULL DEFAULT 1" in ddl
    assert "ALTER COLUMN chain_version DROP DEFAULT" in ddl
