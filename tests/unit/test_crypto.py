"""Tokens at rest (operator/whatsapp_operator/postgres/crypto.py): AES-GCM, rekey, modes."""

from __future__ import annotations

import base64
import pickle
from pathlib import Path

import pytest

from whatsapp_operator.postgres.crypto import Keyring, TokenCipher, encode_key, generate_key
from whatsapp_operator.postgres.maintenance import reloaded

TOKEN = "EAAGm0PX4ZCpsBAKZB7ZCZBcryptoTOKEN1234567890"
TENANT = "t_a3eecb94bb822a92"
OLD, NEW = b"o" * 32, b"n" * 32


def b64(raw: bytes | str) -> str:
    return base64.b64encode(raw.encode() if isinstance(raw, str) else raw).decode()


def cipher(mode: str = "encrypted", **keys: bytes) -> TokenCipher:
    ring = Keyring(keys or {"2026-05": OLD}) if mode == "encrypted" or keys else None
    return TokenCipher(mode, ring)  # type: ignore[arg-type]


def test_round_trip_and_format() -> None:
    c = cipher()
    sealed = c.seal(TOKEN, TENANT)
    assert sealed.startswith("enc:v1:2026-05:")
    assert TOKEN not in sealed
    assert "=" not in sealed  # URL-safe base64 without padding
    assert c.open(sealed, TENANT) == TOKEN
    assert c.key_id(sealed) == "2026-05"
    assert not c.needs_rekey(sealed)


def test_random_nonce_makes_every_ciphertext_different() -> None:
    c = cipher()
    values = {c.seal(TOKEN, TENANT) for _ in range(20)}
    assert len(values) == 20
    assert {c.open(v, TENANT) for v in values} == {TOKEN}


def test_ciphertext_is_bound_to_its_tenant() -> None:
    c = cipher()
    sealed = c.seal(TOKEN, TENANT)
    assert c.open(sealed, "t_other") is None
    assert c.open(sealed, TENANT + " ") is None


@pytest.mark.parametrize("position", [0, 5, 20, -1])
def test_tampering_reads_as_none(position: int) -> None:
    c = cipher()
    sealed = c.seal(TOKEN, TENANT)
    head, body = sealed.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[position] ^= 0x01
    forged = head + ":" + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert c.open(forged, TENANT) is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "enc:",
        "enc:v1",
        "enc:v1:2026-05",
        "enc:v1:2026-05:",
        "enc:v1:2026-05:!!!not-base64!!!",
        "enc:v1:2026-05:AAAA",
        "enc:v2:2026-05:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "enc:v1:unknown-kid:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_bad_stored_values_read_as_none_without_raising(value: str) -> None:
    assert cipher().open(value, TENANT) is None


def test_unknown_key_id_reads_as_none() -> None:
    sealed = cipher(k1=OLD).seal(TOKEN, TENANT)
    assert cipher(k2=NEW).open(sealed, TENANT) is None
    # the same key under another id does not help: the id picks the key
    assert cipher(k2=OLD).open(sealed, TENANT) is None


def test_rekey_old_keys_read_new_writes_use_primary() -> None:
    old = TokenCipher("encrypted", Keyring({"2026-05": OLD}))
    sealed_old = old.seal(TOKEN, TENANT)
    both = TokenCipher("encrypted", Keyring({"2026-05": OLD, "2026-11": NEW}, "2026-11"))
    assert both.keyring is not None
    assert both.keyring.primary == "2026-11"
    assert both.open(sealed_old, TENANT) == TOKEN
    assert both.needs_rekey(sealed_old)
    sealed_new = both.seal(TOKEN, TENANT)
    assert both.key_id(sealed_new) == "2026-11"
    assert not both.needs_rekey(sealed_new)
    assert old.open(sealed_new, TENANT) is None  # the old keyring lacks the new key
    pinned = TokenCipher("encrypted", Keyring({"2026-05": OLD, "2026-11": NEW}, "2026-05"))
    assert pinned.key_id(pinned.seal(TOKEN, TENANT)) == "2026-05"
    assert pinned.needs_rekey(sealed_new)


def test_modes() -> None:
    ring = Keyring({"k": OLD})
    enc = TokenCipher("encrypted", ring)
    plain = TokenCipher("plaintext", ring)
    none = TokenCipher("none", ring)
    sealed = enc.seal(TOKEN, TENANT)
    assert plain.seal(TOKEN, TENANT) == TOKEN
    assert none.seal(TOKEN, TENANT) == ""
    assert enc.seal("", TENANT) == ""
    for c in (enc, plain, none):  # every mode reads every sealed form
        assert c.open(sealed, TENANT) == TOKEN
        assert c.open("", TENANT) is None
        assert not c.needs_rekey("")
    assert plain.open(TOKEN, TENANT) == none.open(TOKEN, TENANT) == TOKEN  # legacy plaintext
    assert enc.open(TOKEN, TENANT) is None  # ... refused while encrypting (below)
    assert enc.needs_rekey(TOKEN)  # plaintext while encrypting
    assert not plain.needs_rekey(TOKEN)
    assert plain.needs_rekey(sealed)  # ciphertext while in plaintext mode
    assert none.needs_rekey(TOKEN)
    assert none.needs_rekey(sealed)
    assert TokenCipher("plaintext", None).open(sealed, TENANT) is None
    assert TokenCipher.key_id(TOKEN) is None
    with pytest.raises(ValueError, match="needs a keyring"):
        TokenCipher("encrypted", None)
    with pytest.raises(ValueError, match="not one of"):
        TokenCipher("rot13", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot be stored as plaintext"):
        plain.seal("enc:looks-sealed", TENANT)


def test_the_primary_is_explicit_never_the_greatest_id() -> None:
    """Issue 19: `dev-key-1` outranked `2026-11` by sorting. Now the primary is named, or
    the only key; several keys and none named decrypt, but encrypting refuses them."""
    assert Keyring({"only": OLD}).primary == "only"
    for keys in ({"2026-05": OLD, "2026-11": NEW}, {"dev-key-1": OLD, "2026-11": NEW}):
        ring = Keyring(keys)
        assert ring.primary is None
        with pytest.raises(ValueError, match=r"2 keys \(.*\) and none named primary") as err:
            TokenCipher("encrypted", ring)
        assert "\n" not in str(err.value)
        writer = TokenCipher("encrypted", Keyring(keys, primary="2026-11"))
        assert TokenCipher("plaintext", ring).open(writer.seal(TOKEN, TENANT), TENANT) == TOKEN
    named = Keyring({"dev-key-1": OLD, "2026-11": NEW}, primary="2026-11")
    assert named.primary == "2026-11"
    assert TokenCipher("encrypted", named).seal(TOKEN, TENANT).startswith("enc:v1:2026-11:")
    assert Keyring({"2026-05": OLD, "2026-11": NEW}, primary="2026-05").primary == "2026-05"
    assert Keyring({"a": OLD, "b": NEW}).with_primary("b").primary == "b"
    with pytest.raises(ValueError, match="not among the keys"):
        Keyring({"a": OLD, "b": NEW}).with_primary("c")
    assert Keyring({"b": OLD, "a": NEW}).key_ids == ("a", "b")
    assert "a" in Keyring({"a": OLD})
    assert "b" not in Keyring({"a": OLD})


@pytest.mark.parametrize(
    ("keys", "primary", "words"),
    [
        ({}, None, "empty"),
        ({"bad id": OLD}, None, "invalid key id 'bad id'"),
        ({"x" * 33: OLD}, None, "invalid key id"),
        ({"k:1": OLD}, None, "invalid key id"),
        ({"k": b"short"}, None, "'k' is 5 bytes"),
        ({"k": OLD}, "other", "primary key 'other' is not among the keys (k)"),
    ],
)
def test_keyring_errors(keys: dict[str, bytes], primary: str | None, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        Keyring(keys, primary)


def test_from_secret_data() -> None:
    ring = Keyring.from_secret_data({"2026-05": b64(OLD), "2026-11": b64(NEW)})
    assert ring.key_ids == ("2026-05", "2026-11")
    assert ring.primary is None  # several keys, none named
    pinned = Keyring.from_secret_data(
        {"2026-05": b64(OLD), "2026-11": b64(NEW), "primary": b64("2026-05\n")}
    )
    assert pinned.primary == "2026-05"
    # stringData holding the key as base64 text (double-encoded in data) works too
    text = Keyring.from_secret_data({"k": b64(encode_key(OLD))})
    sealed = TokenCipher("encrypted", text).seal(TOKEN, TENANT)
    assert TokenCipher("encrypted", Keyring({"k": OLD})).open(sealed, TENANT) == TOKEN


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({}, "no keys found"),
        ({"primary": b64("k")}, "no keys found"),
        ({"k": "%%%"}, "Secret entry 'k' is not valid base64"),
        ({"k": b64(b"x" * 31)}, "'k' is 31 bytes; an AES-256 key is exactly 32"),
        ({"k": b64(b"x" * 33)}, "'k' is 33 bytes"),
        ({"key.1": b64(OLD)}, "invalid key id 'key.1'"),
        ({"k": b64(OLD), "primary": b64("gone")}, "primary names key 'gone'"),
    ],
)
def test_from_secret_data_errors(data: dict[str, str], words: str) -> None:
    with pytest.raises(ValueError, match=words) as info:
        Keyring.from_secret_data(data)
    assert b64(OLD) not in str(info.value)


def test_from_env() -> None:
    ring = Keyring.from_env(f" 2026-05={b64(OLD)} , 2026-11={b64(NEW)},")
    assert ring.key_ids == ("2026-05", "2026-11")
    assert ring.primary is None
    urlsafe = base64.urlsafe_b64encode(b"\xff" * 32).rstrip(b"=").decode()
    assert Keyring.from_env(f"a={urlsafe}").key_ids == ("a",)
    pinned = Keyring.from_env(f"a={b64(OLD)},b={b64(NEW)},primary=a")
    assert pinned.primary == "a"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "no keys found"),
        ("k", "entry 1 is not of the form"),
        ("k=%%%", "key 'k' is not valid base64"),
        (f"k={b64(b'x' * 16)}", "decodes to 16 bytes"),
        (f"bad id={b64(OLD)}", "invalid key id"),
        (f"k={b64(OLD)},primary=z", "primary names key 'z'"),
    ],
)
def test_from_env_errors(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words) as info:
        Keyring.from_env(text)
    assert b64(OLD) not in str(info.value)


def mounted_secret(folder: Path, files: dict[str, bytes]) -> Path:
    """A folder laid out like kubelet mounts a Secret: ..data symlink, files as symlinks."""
    data = folder / "..2026_11_01_00_00_00.000000001"
    data.mkdir(parents=True)
    for name, content in files.items():
        (data / name).write_bytes(content)
        (folder / name).symlink_to(Path("..data") / name)
    (folder / "..data").symlink_to(data.name)
    return folder


def test_from_directory(tmp_path: Path) -> None:
    folder = mounted_secret(
        tmp_path / "keys", {"2026-05": OLD, "2026-11": encode_key(NEW).encode() + b"\n"}
    )
    ring = Keyring.from_directory(folder)
    assert ring.key_ids == ("2026-05", "2026-11")
    assert ring.primary is None
    (tmp_path / "keys" / "primary").write_text("2026-11\n")
    sealed = TokenCipher("encrypted", Keyring.from_directory(folder)).seal(TOKEN, TENANT)
    assert TokenCipher("encrypted", Keyring({"2026-11": NEW})).open(sealed, TENANT) == TOKEN
    (tmp_path / "keys" / "primary").write_text("2026-05\n")
    assert Keyring.from_directory(folder).primary == "2026-05"


@pytest.mark.parametrize(
    ("files", "words"),
    [
        ({}, "no keys found"),
        ({"k": b"short"}, "'k' is 5 bytes"),
        ({"bad.id": OLD}, "invalid key id 'bad.id'"),
        ({"k": OLD, "primary": b"nope"}, "primary names key 'nope'"),
    ],
)
def test_from_directory_errors(tmp_path: Path, files: dict[str, bytes], words: str) -> None:
    folder = mounted_secret(tmp_path / "keys", files)
    with pytest.raises(ValueError, match=words) as info:
        Keyring.from_directory(folder)
    assert "ooooo" not in str(info.value)


def test_from_directory_missing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        Keyring.from_directory(tmp_path / "absent")


def test_nothing_shows_keys_or_tokens() -> None:
    key = generate_key()
    ring = Keyring({"k": key, "j": OLD}, "k")
    c = TokenCipher("encrypted", ring)
    sealed = c.seal(TOKEN, TENANT)
    shown = " ".join([repr(ring), str(ring), repr(c), str(c), sealed])
    assert "Keyring(key_ids=['j', 'k'], primary='k')" in shown
    for secret in (TOKEN, b64(TOKEN), encode_key(key), b64(OLD), "ooooo"):
        assert secret not in shown
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(ring)
    errors: list[str] = []
    for bad in ({"k": b64(key)[:-4]}, {"k": b64(key) + "AAAA"}):
        with pytest.raises(ValueError, match=r"bytes|base64") as info:
            Keyring.from_secret_data(bad)
        errors.append(str(info.value))
    assert all(encode_key(key)[:12] not in e for e in errors)


def test_plaintext_is_refused_while_encrypting() -> None:
    """Issue 19: a value without `enc:` was read as the token in encrypted mode, so anyone
    who could write the row could hand the tenant their token. Now it reads as None (the
    reconcile replaces it, with an Event); the other modes still read legacy plaintext."""
    enc = cipher()
    assert enc.open("EAAplaintext-written-by-hand", TENANT) is None
    assert enc.is_plaintext("EAAplaintext-written-by-hand")
    assert not enc.is_plaintext(enc.seal(TOKEN, TENANT))
    assert not enc.is_plaintext("")
    assert not enc.is_plaintext(None)
    assert not TokenCipher("plaintext").is_plaintext(TOKEN)
    assert TokenCipher("plaintext").open(TOKEN, TENANT) == TOKEN


def ring(primary: str | None = None, **keys: bytes) -> Keyring:
    return Keyring(keys, primary)


@pytest.mark.parametrize(
    ("now", "loaded", "primary", "logged"),
    [
        pytest.param(ring(a=OLD), ring(a=OLD), "a", None, id="unchanged: nothing"),
        pytest.param(ring(a=OLD), ring(a=OLD, z=NEW), "a", "none named `primary`: a stays",
                     id="a key added, none named: a decryption key only"),
        pytest.param(ring(a=OLD), ring("z", a=OLD, z=NEW), "z", "primary key z",
                     id="the primary named: the switch"),
        pytest.param(ring("a", a=OLD, z=NEW), ring("a", a=OLD, z=NEW), "a", None,
                     id="named and unchanged"),
        pytest.param(ring(a=OLD), ring(b=OLD, z=NEW), "a", "none named primary",
                     id="several, none named, the one in use gone: keys in use stay"),
    ],
)  # fmt: skip
def test_reloaded_keys_switch_only_on_an_explicit_primary(
    now: Keyring, loaded: Keyring, primary: str, logged: str | None
) -> None:
    current = TokenCipher("encrypted", now)
    after, message = reloaded(current, loaded)
    assert after.keyring_primary == primary
    if logged is None:
        assert message is None
        assert after is current
    else:
        assert message is not None
        assert logged in message
    if primary == "a":  # a row sealed under a stays as it is: no rekey
        assert not after.needs_rekey(current.seal(TOKEN, TENANT))
    else:
        assert after.needs_rekey(current.seal(TOKEN, TENANT))
