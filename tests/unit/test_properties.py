"""Property-based tests (hypothesis) of the code that reads untrusted input (issue 8).

- Message parsing (`whatsapp_worker.messages`, `delivery.decode`): any input either parses
  or raises `InvalidMessage` with one of the documented reasons, never anything else; the
  detail never repeats a value from the message; valid generated messages round-trip to
  exactly the body Meta must receive, and that body parses back to itself.
- Config loading (`whatsapp_contract.resolved.parse_document`, `whatsapp_worker.config`):
  arbitrary bytes or mangled documents in the mounted resolved config are a reported
  problem, never an exception; tenants of the good shards stay loaded; no token (nor a
  recognisable piece of one) appears in an error or a log line.
- The desired row (`whatsapp_operator.postgres.rows`): deterministic, idempotent (a row written as
  desired plans no write; deactivating twice is deactivating once), and the token appears
  only in the `token` field, never in another column, the repr or a write plan.
- Every value the CRD's schema admits is one the operator's spec model accepts.
- A bounded fuzz run of the parser on raw bytes: HYPOTHESIS_FUZZ_EXAMPLES examples
  (default 3000).

Text strategies leave out lone surrogates (hypothesis's default alphabet); a lone surrogate
is refused at parse time, see `test_a_lone_surrogate_is_refused_at_parse_time`.
"""

from __future__ import annotations

import copy
import json
import logging
import operator
import os
import re
import string
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from whatsapp_contract.fingerprint import fingerprint
from whatsapp_contract.resolved import (
    TenantConfig,
    parse_document,
    tenant_config,
)
from whatsapp_contract.resolved import build_config_shards as build_shards
from whatsapp_operator.model.facts import PhoneFacts
from whatsapp_operator.model.spec import TenantSpec, parse_spec
from whatsapp_operator.postgres.rows import (
    COMPARED,
    HASHED_COLUMNS,
    DesiredRow,
    StoredRow,
    WriteKind,
    deactivated,
    desired_row,
    plan_write,
    row_hash,
)
from whatsapp_worker.config import ConfigStore
from whatsapp_worker.delivery import TASK_NAME, decode
from whatsapp_worker.messages import (
    MAX_BODY_BYTES,
    MESSAGE_TYPES,
    REASONS,
    InvalidMessage,
    OutboundMessage,
    message_key,
    parse_body,
    parse_message,
)

ROOT = Path(__file__).resolve().parents[2]
FUZZ_EXAMPLES = int(os.environ.get("HYPOTHESIS_FUZZ_EXAMPLES", "3000"))
# No example database: nothing written into the work tree; a failure prints its example.
PROPERTY = settings(
    database=None,
    deadline=timedelta(seconds=2),
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
)
MARKER = "ZQXMARKER"  # a value that must never be echoed back in an error

# --- strategies: JSON ---------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=25,
)

# --- strategies: valid messages -----------------------------------------------------------

tenant_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,49}", fullmatch=True)
meta_ids = st.from_regex(r"[0-9]{1,30}", fullmatch=True)
message_ids = st.from_regex(r"[A-Za-z0-9._:-]{1,128}", fullmatch=True)
words = st.text(min_size=1, max_size=40).filter(str.strip)
links = st.from_regex(r"https://cdn\.example\.com/[a-z0-9]{1,12}(\.png)?", fullmatch=True)


# Country codes and a national length possible there for any digits (checked against
# phonenumbers: the first national digit 2..9 is never a trunk prefix there).
COUNTRIES = [
    ("34", 9), ("1", 10), ("33", 9), ("91", 10), ("44", 10), ("49", 11), ("234", 10),
    ("971", 9), ("81", 10), ("7", 10), ("61", 9), ("52", 10), ("62", 10), ("20", 10),
]  # fmt: skip


@st.composite
def recipients(draw: st.DrawFn) -> tuple[str, str]:
    """(what a producer may write, what Meta must receive: E.164 with its +)."""
    code, length = draw(st.sampled_from(COUNTRIES))
    national = draw(st.from_regex(rf"[2-9][0-9]{{{length - 1}}}", fullmatch=True))
    digits = code + national
    prefix = draw(st.sampled_from(["", "+", "00", "+ "]))
    cut = draw(st.integers(min_value=1, max_value=len(digits) - 1))
    separator = draw(st.sampled_from(["", " ", "-", ".", " - "]))
    written = f"{prefix}{digits[:cut]}{separator}{digits[cut:]}"
    if draw(st.booleans()):
        written = f"({written[: len(prefix) + 2]}) {written[len(prefix) + 2 :]}"
    return written, "+" + digits


def media() -> st.SearchStrategy[dict[str, Any]]:
    source = st.fixed_dictionaries({"id": meta_ids}) | st.fixed_dictionaries({"link": links})
    return st.builds(
        lambda src, caption: {**src, **caption},
        source,
        st.fixed_dictionaries({}, optional={"caption": st.text(max_size=60)}),
    )


def buttons() -> st.SearchStrategy[dict[str, Any]]:
    titles = st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=3, unique=True)
    return titles.map(
        lambda ts: {
            "type": "button",
            "body": {"text": "Pick one"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": f"b{i}", "title": t}}
                    for i, t in enumerate(ts)
                ]
            },
        }
    )


TYPE_OBJECTS: dict[str, st.SearchStrategy[Any]] = {
    "text": st.fixed_dictionaries(
        {"body": st.text(min_size=1, max_size=300)}, optional={"preview_url": st.booleans()}
    ),
    "image": media(),
    "video": media(),
    "audio": st.fixed_dictionaries({"id": meta_ids}),
    "sticker": st.fixed_dictionaries({"link": links}),
    "document": st.fixed_dictionaries({"id": meta_ids}, optional={"filename": words}),
    "location": st.fixed_dictionaries(
        {
            "latitude": st.floats(min_value=-90, max_value=90),
            "longitude": st.floats(min_value=-180, max_value=180),
        },
        optional={"name": st.text(max_size=30), "address": st.text(max_size=30)},
    ),
    "reaction": st.fixed_dictionaries({"message_id": words, "emoji": st.text(max_size=2)}),
    "contacts": st.lists(
        st.fixed_dictionaries(
            {"name": st.fixed_dictionaries({"formatted_name": words})},
            optional={"phones": st.lists(st.fixed_dictionaries({"phone": words}), max_size=2)},
        ),
        min_size=1,
        max_size=3,
    ),
    "template": st.fixed_dictionaries(
        {
            "name": st.from_regex(r"[a-z_]{1,30}", fullmatch=True),
            "language": st.fixed_dictionaries({"code": st.sampled_from(["en", "en_US", "pt_BR"])}),
        },
        optional={
            "components": st.lists(
                st.fixed_dictionaries(
                    {
                        "type": st.just("body"),
                        "parameters": st.lists(
                            st.fixed_dictionaries({"type": st.just("text"), "text": words}),
                            max_size=3,
                        ),
                    }
                ),
                max_size=1,
            )
        },
    ),
    "interactive": buttons(),
}
assert set(TYPE_OBJECTS) == set(MESSAGE_TYPES), "a strategy for every message type"


@st.composite
def valid_messages(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(a valid queue message, the body Meta must receive, its normalised recipient)."""
    kind = draw(st.sampled_from(MESSAGE_TYPES))
    obj = draw(TYPE_OBJECTS[kind])
    written, sent_to = draw(recipients())
    metadata: dict[str, Any] = {"tenantId": draw(tenant_ids), "phoneNumberId": draw(meta_ids)}
    if draw(st.booleans()):
        metadata["messageId"] = draw(message_ids)
    if draw(st.booleans()):
        metadata["traceparent"] = draw(st.text(max_size=30))  # other metadata is ignored
    extras = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "context": st.fixed_dictionaries({"message_id": words}),
                "biz_opaque_callback_data": st.text(max_size=512),
            },
        )
    )
    waba = {"to": written, "type": kind, kind: obj, **extras}
    if draw(st.booleans()):
        waba["messaging_product"] = "whatsapp"
    if draw(st.booleans()):
        waba["recipient_type"] = "individual"
    expected = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": sent_to,
        "type": kind,
        kind: obj,
        **extras,
    }
    return {"metadata": metadata, "wabaPayload": waba}, expected, sent_to


# --- strategies: near-valid and hostile messages ------------------------------------------


@st.composite
def paths_replaced(draw: st.DrawFn, tree: Any, values: st.SearchStrategy[Any]) -> Any:
    """`tree` with one value somewhere inside it (or the whole) replaced by a drawn one."""
    if not isinstance(tree, dict | list) or not tree or draw(st.integers(0, 3)) == 0:
        return draw(values)
    keys = list(tree) if isinstance(tree, dict) else list(range(len(tree)))
    key = draw(st.sampled_from(keys))
    copy: Any = dict(tree) if isinstance(tree, dict) else list(tree)
    copy[key] = draw(paths_replaced(tree[key], values))
    return copy


marked = st.recursive(
    st.text(max_size=8).map(lambda s: MARKER + s),
    lambda inner: (
        st.lists(inner, min_size=1, max_size=3)
        | st.dictionaries(st.sampled_from(["body", "id", "x", "to"]), inner, min_size=1, max_size=3)
    ),
    max_leaves=6,
)
near_valid = valid_messages().flatmap(lambda m: paths_replaced(m[0], json_values))
hostile = st.one_of(json_values, near_valid)


def only_invalid_message(call: Any, *args: Any) -> OutboundMessage | InvalidMessage:
    """The message, or the InvalidMessage it raised; any other exception fails the test."""
    try:
        message: OutboundMessage = call(*args)
    except InvalidMessage as exc:
        refused = exc
    else:
        assert isinstance(message, OutboundMessage)
        return message
    assert refused.reason in REASONS, refused.reason
    assert refused.detail, "an InvalidMessage says what is wrong"
    assert str(refused) == f"{refused.reason}: {refused.detail}"
    return refused


def sendable(message: OutboundMessage) -> None:
    """What the worker does with a parsed message: key it and encode its body as JSON."""
    assert message_key(message)
    json.dumps(message.payload, ensure_ascii=False, allow_nan=False).encode("utf-8")


# --- message parsing ----------------------------------------------------------------------


@PROPERTY
@given(hostile)
def test_parse_message_raises_nothing_but_invalid_message(data: Any) -> None:
    outcome = only_invalid_message(parse_message, data)
    if isinstance(outcome, OutboundMessage):
        sendable(outcome)


@PROPERTY
@given(valid_messages().flatmap(lambda m: paths_replaced(m[0], marked)))
def test_the_detail_never_repeats_a_value_of_the_message(data: Any) -> None:
    outcome = only_invalid_message(parse_message, data)
    if isinstance(outcome, InvalidMessage):
        assert MARKER not in str(outcome), str(outcome)


@PROPERTY
@given(valid_messages())
def test_valid_messages_round_trip(case: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    envelope, expected, sent_to = case
    body = json.dumps(envelope).encode()
    message = parse_body(body)
    assert message.payload == expected
    assert message.to == sent_to
    assert message.type == envelope["wabaPayload"]["type"]
    assert message.tenant_id == envelope["metadata"]["tenantId"]
    assert message.phone_number_id == envelope["metadata"]["phoneNumberId"]
    assert message.message_id == envelope["metadata"].get("messageId")
    assert parse_message(json.loads(body)) == message
    # the body Meta receives is itself a valid wabaPayload, parsed to the same body
    again = parse_message({"metadata": envelope["metadata"], "wabaPayload": message.payload})
    assert again.payload == message.payload
    assert message_key(again) == message_key(message)
    # the Celery task form of the same message decodes to the same message
    task = json.dumps([[envelope], {}, {}]).encode()
    assert decode(task, {"task": TASK_NAME, "id": "1"}) == message
    # the payload is a copy of the producer's objects: changing them afterwards changes nothing
    sent = copy.deepcopy(message.payload)
    obj = envelope["wabaPayload"][message.type]
    obj.clear()
    assert message.payload == sent
    sendable(message)


@PROPERTY
@given(valid_messages(), st.sampled_from(["tenantId", "phoneNumberId", "to"]))
def test_the_message_key_tracks_who_sends_what_to_whom(
    case: tuple[dict[str, Any], dict[str, Any], str], what: str
) -> None:
    envelope, _, sent_to = case
    envelope["metadata"].pop("messageId", None)
    before = message_key(parse_message(envelope))
    if what == "to":
        assume(sent_to != "+19998887776")
        envelope["wabaPayload"]["to"] = "+1 999 888 7776"
    else:
        envelope["metadata"][what] += "0"
        assume(len(envelope["metadata"]["tenantId"]) <= 50)
    assert message_key(parse_message(envelope)) != before


headers = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"task": st.just(TASK_NAME), "id": st.text(max_size=8)}),
    st.dictionaries(st.sampled_from(["task", "id", "x-whatsapp-attempts"]), json_values),
)
task_bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.tuples(json_values, json_values, json_values).map(lambda t: json.dumps(list(t)).encode()),
    hostile.map(lambda m: json.dumps([[m], {}, {}]).encode()),
    hostile.map(lambda m: json.dumps([[], {"message": m}, {}]).encode()),
    st.binary(max_size=200),
)


@PROPERTY
@given(task_bodies, headers)
def test_decode_raises_nothing_but_invalid_message(body: bytes, head: dict[str, Any]) -> None:
    outcome = only_invalid_message(decode, body, head)
    if isinstance(outcome, OutboundMessage):
        sendable(outcome)


@st.composite
def mangled(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` truncated, with bytes overwritten, inserted or deleted, or several of those."""
    out = bytearray(data)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        where = draw(st.integers(min_value=0, max_value=len(out)))
        action = draw(st.sampled_from(["truncate", "overwrite", "insert", "delete"]))
        chunk = draw(st.binary(min_size=1, max_size=8))
        if action == "truncate":
            del out[where:]
        elif action == "overwrite":
            out[where : where + len(chunk)] = chunk
        elif action == "insert":
            out[where:where] = chunk
        else:
            del out[where : where + len(chunk)]
    return bytes(out)


SEEDS = [
    {"to": "+91 98765-43220", "type": "text", "text": {"body": "Hello!", "preview_url": True}},
    {"to": "0015550001234", "type": "image", "image": {"link": "https://cdn.example.com/a.png"},
     "context": {"message_id": "wamid.1"}, "biz_opaque_callback_data": "ref-1"},
    {"to": "15550001234", "type": "location", "location": {"latitude": 1.5, "longitude": -2}},
    {"to": "15550001234", "type": "contacts", "contacts": [{"name": {"formatted_name": "A"}}]},
    {"to": "15550001234", "type": "template", "template": {
        "name": "order", "language": {"code": "en_US"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "42"}]},
            {"type": "button", "sub_type": "url", "index": "0",
             "parameters": [{"type": "text", "text": "x"}]}]}},
    {"to": "15550001234", "type": "interactive", "interactive": {
        "type": "list", "body": {"text": "Pick"}, "action": {"button": "See", "sections": [
            {"rows": [{"id": "r1", "title": "One"}, {"id": "r2", "title": "Two"}]}]}}},
]  # fmt: skip
SEED_MESSAGES = [
    {"metadata": {"tenantId": "t_1", "phoneNumberId": "123"}, "wabaPayload": w} for w in SEEDS
]
SEED_BODIES = [json.dumps(m).encode() for m in SEED_MESSAGES]
raw_bodies = st.one_of(
    st.binary(max_size=1024),
    st.sampled_from(SEED_BODIES).flatmap(mangled),
    st.sampled_from(SEED_MESSAGES)
    .flatmap(lambda m: paths_replaced(m, json_values))
    .map(lambda m: json.dumps(m).encode()),
    st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=4000, max_value=6000).map(lambda n: b'{"a": ' + b"9" * n + b"}"),
    st.sampled_from([b"NaN", b'{"x": Infinity}', b"\xef\xbb\xbf{}", b"", b"\x00"]),
)


@settings(
    database=None,
    max_examples=FUZZ_EXAMPLES,
    deadline=timedelta(seconds=1),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw_bodies)
def test_fuzz_the_parser_on_raw_bytes(body: bytes) -> None:
    outcome = only_invalid_message(parse_body, body)
    if isinstance(outcome, OutboundMessage):
        sendable(outcome)
    elif len(body) > MAX_BODY_BYTES:
        assert outcome.reason == "too_large"


@pytest.mark.parametrize(
    "waba",
    [
        pytest.param(
            {"to": "+15550001234", "type": "text", "text": {"body": "hi"},
             "biz_opaque_callback_data": "x\ud800"},
            id="biz_opaque_callback_data",
        ),
        pytest.param(
            {"to": "+15550001234", "type": "interactive",
             "interactive": {"type": "carousel", "body": {"text": "b"},
                             "action": {"cards": [{"k\udc00": 1}]}}},
            id="key-in-an-open-object",
        ),
    ],
)  # fmt: skip
def test_a_lone_surrogate_is_refused_at_parse_time(waba: dict[str, Any]) -> None:
    body = json.dumps({"metadata": {"tenantId": "t1", "phoneNumberId": "1"}, "wabaPayload": waba})
    outcome = only_invalid_message(parse_body, body.encode())
    assert isinstance(outcome, InvalidMessage)
    assert outcome.reason == "invalid_payload"
    assert "not valid Unicode" in outcome.detail


# --- config loading -----------------------------------------------------------------------

tokens = st.from_regex(r"EAA[A-Za-z0-9]{100,200}", fullmatch=True)  # Meta's are ~200


@st.composite
def pools(draw: st.DrawFn) -> list[TenantConfig]:
    count = draw(st.integers(min_value=1, max_value=12))
    drawn = draw(st.lists(tokens, min_size=count, max_size=count, unique=True))
    return [
        tenant_config(
            tenant_id=f"t_{i:03d}",
            waba_id=str(100 + i),
            phone_number_id=str(500 + i),
            graph_api_version="v25.0",
            throughput_level=draw(st.sampled_from(["STANDARD", "HIGH", "SHARED"])),
            token=token,
        )
        for i, token in enumerate(drawn)
    ]


def leaks(text: str, secrets: list[str]) -> list[str]:
    """The secrets of which the text shows the whole or a 12-character piece."""
    found = []
    for secret in secrets:
        pieces = {secret[i : i + 12] for i in range(0, len(secret) - 11, 6)}
        if secret in text or any(piece in text for piece in pieces):
            found.append(secret)
    return found


@contextmanager
def captured_logs() -> Iterator[list[str]]:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep(logging.DEBUG)
    logger = logging.getLogger("whatsapp_worker")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@st.composite
def json_mangled(draw: st.DrawFn, data: bytes) -> bytes:
    """The document with one value replaced, at the JSON level (a valid JSON, wrong shape)."""
    return json.dumps(draw(paths_replaced(json.loads(data), json_values))).encode()


@st.composite
def entry_mangled(draw: st.DrawFn, data: bytes) -> bytes:
    """One tenant entry broken the way a buggy writer would: a key renamed or dropped, the
    token written into another field, padded, or with another token's fingerprint."""
    document = json.loads(data)
    if not document["tenants"]:
        return data
    entry = draw(st.sampled_from(document["tenants"]))
    # the keys this entry has: optional fields (appsecret_proof, blocked_code) are left out
    # of an entry while unset
    name = draw(st.sampled_from(sorted(entry)))
    how = draw(st.sampled_from(["rename", "token-elsewhere", "drop", "pad", "fingerprint"]))
    if how == "rename":
        entry[name + draw(st.sampled_from(["_", "s", "X"]))] = entry.pop(name)
    elif how == "token-elsewhere":
        entry[name] = entry["token"]
    elif how == "drop":
        del entry[name]
    elif how == "pad":
        entry["token"] += "\n"
    else:
        entry["token_fingerprint"] = fingerprint(draw(tokens))
    return json.dumps(document).encode()


@st.composite
def broken_pools(draw: st.DrawFn) -> tuple[list[TenantConfig], dict[str, bytes], str, bytes]:
    """(the tenants, their shard files, the key of one file replaced, its new content)."""
    tenants = draw(pools())
    files = {s.key: s.data for s in build_shards("default", tenants, max_bytes=2048)}
    key = draw(st.sampled_from(sorted(files)))
    original = files[key]
    bad = draw(
        st.one_of(
            st.binary(max_size=512),
            mangled(original),
            json_mangled(original),
            entry_mangled(original),
            entry_mangled(original),
            json_values.map(lambda v: json.dumps(v).encode()),
        )
    )
    return tenants, files, key, bad


@PROPERTY
@given(st.binary(max_size=2048) | json_values.map(lambda v: json.dumps(v).encode()))
def test_parse_document_raises_only_validation_errors(data: bytes) -> None:
    with suppress(ValidationError):
        parse_document(data)


@PROPERTY
@given(broken_pools())
def test_a_bad_resolved_config_file_is_reported_never_raised_and_never_leaks(
    case: tuple[list[TenantConfig], dict[str, bytes], str, bytes],
) -> None:
    tenants, files, key, bad = case
    secrets = [t.token.get_secret_value() for t in tenants]
    with tempfile.TemporaryDirectory() as folder, captured_logs() as logged:
        directory = Path(folder)
        for name, data in files.items():
            (directory / name).write_bytes(data)
        store = ConfigStore(directory, pool="default")
        assert not store.reload().errors
        assert store.tenants_count == len(tenants)
        (directory / key).write_bytes(bad)
        snapshot = store.reload()  # must not raise
    try:
        parse_document(bad)
        valid = True
    except ValidationError:
        valid = False
    if not valid:
        assert any(error.startswith(f"{key}:") for error in snapshot.errors), snapshot.errors
        # a bad shard keeps what it held: no tenant is dropped
        assert set(snapshot.tenants) == {t.tenant_id for t in tenants}
    text = "\n".join([*snapshot.errors, *logged, repr(snapshot), str(snapshot)])
    assert not leaks(text, secrets), "a token is shown in an error, a log line or the snapshot"


@PROPERTY
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_a_directory_of_garbage_loads_nothing_and_says_why(blobs: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for i, blob in enumerate(blobs):
            (Path(folder) / f"shard-{i}-of-{len(blobs)}.json").write_bytes(blob)
        snapshot = ConfigStore(folder, pool="default").reload()
    bad = [b for b in blobs if not _parses(b)]
    assert len([e for e in snapshot.errors if re.match(r"shard-\d+-of-\d+\.json: ", e)]) >= len(bad)


def _parses(data: bytes) -> bool:
    try:
        parse_document(data)
    except ValidationError:
        return False
    return True


# --- the desired row ----------------------------------------------------------------------

CRD = yaml.safe_load((ROOT / "crds" / "whatsapptenants.whatsapp.operator.dev.yaml").read_text())
SPEC_SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def admitted(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    """Strings the CRD's pattern, minLength and maxLength admit."""
    low, high = schema.get("minLength", 0), schema.get("maxLength", 10_000)
    values = st.from_regex(schema["pattern"], fullmatch=True)
    return values.filter(lambda v: low <= len(v) <= high and "\n" not in v)


def field_schema(path: str) -> dict[str, Any]:
    node = SPEC_SCHEMA
    for part in path.split("."):
        node = node["properties"][part]
    return node


DURATIONS = ("validation.interval", "rotation.renewBefore", "rotation.gracePeriod")


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """A spec the API server admits (by the CRD's own patterns and lengths)."""
    spec: dict[str, Any] = {
        name: draw(admitted(field_schema(name))) for name in ("tenantId", "wabaId", "phoneNumberId")
    }
    spec["tokenSecretRef"] = {"name": draw(admitted(field_schema("tokenSecretRef.name")))}
    optional = {
        "businessId": admitted(field_schema("businessId")),
        "graphApiVersion": admitted(field_schema("graphApiVersion")),
        "senderPool": admitted(field_schema("senderPool")),
        "active": st.booleans(),
        "suspend": st.booleans(),
        "deletionPolicy": st.sampled_from(field_schema("deletionPolicy")["enum"]),
    }
    for name, values in optional.items():
        if draw(st.booleans()):
            spec[name] = draw(values)
    for path in DURATIONS:
        if draw(st.booleans()):
            group, name = path.split(".")
            spec.setdefault(group, {})[name] = draw(admitted(field_schema(path)))
    return spec


@PROPERTY
@given(specs())
def test_every_spec_the_crd_admits_is_one_the_operator_accepts(spec: dict[str, Any]) -> None:
    parsed, problem = parse_spec(spec)
    assert parsed is not None, problem
    assert problem == ""
    assert parsed.tenant_id == spec["tenantId"]


ALNUM = string.ascii_letters + string.digits
numeric_ids = st.integers(min_value=0, max_value=10**20).map(str)
# Cheaper than `specs()` (from_regex is slow) for the tests that need many specs quickly.
quick_specs = st.fixed_dictionaries(
    {
        "tenantId": st.builds(
            operator.add, st.sampled_from(ALNUM), st.text(ALNUM + "_.-", max_size=49)
        ),
        "wabaId": numeric_ids,
        "phoneNumberId": numeric_ids,
        "tokenSecretRef": st.just({"name": "meta-token"}),
    },
    optional={
        "businessId": numeric_ids,
        "active": st.booleans(),
        "suspend": st.booleans(),
        "senderPool": st.sampled_from(["default", "bulk"]),
        "deletionPolicy": st.sampled_from(["Deactivate", "Delete", "Retain"]),
    },
)
SPEC_KEYS = st.sampled_from(sorted(SPEC_SCHEMA["properties"])) | st.text(max_size=10)
bad_specs = st.one_of(
    st.dictionaries(SPEC_KEYS, json_values, max_size=8),
    specs()
    .flatmap(lambda spec: paths_replaced(spec, json_values))
    .filter(lambda spec: isinstance(spec, dict)),
)


@PROPERTY
@given(bad_specs)
def test_parse_spec_reports_a_bad_spec_instead_of_raising(spec: dict[str, Any]) -> None:
    parsed, problem = parse_spec(spec)
    assert (parsed is None) == bool(problem)
    if parsed is None:
        assert problem.startswith("spec is invalid: ")
        assert "Traceback" not in problem


phones = st.fixed_dictionaries(
    {},
    optional={
        "displayPhoneNumber": st.text(max_size=80) | st.none(),
        "qualityRating": st.sampled_from(["GREEN", "YELLOW", "RED", "UNKNOWN", ""]),
        "verifiedName": st.text(max_size=20),
    },
)


@st.composite
def row_inputs(draw: st.DrawFn) -> dict[str, Any]:
    parsed, problem = parse_spec(draw(quick_specs))
    assert parsed is not None, problem
    token = draw(tokens | st.none())
    return {
        "spec": parsed,
        "uid": draw(st.uuids()).hex,
        "namespace": draw(st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)),
        "name": draw(st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,30}[a-z0-9])?", fullmatch=True)),
        "generation": draw(st.integers(min_value=1, max_value=2**40)),
        "token": token,
        "token_fingerprint": fingerprint(token) if token is not None else None,
        "phone": PhoneFacts.from_status(draw(phones)),
        "ready": draw(st.booleans()),
        "was_configured": draw(st.booleans()),
    }


def stored(row: DesiredRow, access_token: str) -> StoredRow:
    """The row as the database holds it after writing `row` (hash computed as on write)."""
    values = {c: getattr(row, c) for c in COMPARED}
    result = StoredRow(id=1, tenant_id=row.tenant_id, access_token=access_token, **values)
    return replace(result, k8s_uid=row.k8s_uid, row_hash=row_hash(result.values()))


@PROPERTY
@given(row_inputs())
def test_the_desired_row_is_deterministic_and_hides_the_token(inputs: dict[str, Any]) -> None:
    row = desired_row(**inputs)
    assert desired_row(**inputs) == row
    assert row_hash({c: getattr(row, c, None) for c in HASHED_COLUMNS}) == row_hash(
        {c: getattr(desired_row(**inputs), c, None) for c in HASHED_COLUMNS}
    )
    token = inputs["token"]
    assert row.token == token
    assert (row.token_fingerprint is None) == (token is None)
    if token is None:
        return
    assume(token not in repr(inputs["phone"]))
    for f in fields(DesiredRow):
        if f.name != "token":
            assert token not in str(getattr(row, f.name)), f"the token is in column {f.name}"
    assert token not in repr(row)
    assert token not in repr(deactivated(row))
    assert row.token_fingerprint == fingerprint(token)
    assert row.display_phone_number is None or len(row.display_phone_number) <= 50


@PROPERTY
@given(row_inputs(), st.booleans())
def test_writing_the_desired_row_is_idempotent(inputs: dict[str, Any], store_token: bool) -> None:
    row = desired_row(**inputs)
    kept = row.token if store_token else None
    # stored as the operator writes it: the token sealed (any ciphertext) or no token at all
    after = stored(row, access_token="enc:k1:sealed" if kept else "")
    plan = plan_write(after, row, stored_token=kept, store_token=store_token, adopt=False)
    assert plan.kind is WriteKind.NOOP, plan
    gone = deactivated(row)
    assert deactivated(gone) == gone
    assert (gone.is_active, gone.token, gone.token_fingerprint) == (False, None, None)
    plan = plan_write(stored(gone, ""), gone, stored_token=None, store_token=True, adopt=False)
    assert plan.kind is WriteKind.NOOP, plan


@PROPERTY
@given(row_inputs(), st.sampled_from(["wabaId", "phoneNumberId", "businessId", "active"]))
def test_a_changed_spec_plans_an_update_of_its_column_only(
    inputs: dict[str, Any], field: str
) -> None:
    row = desired_row(**inputs)
    kept = row.token
    before = stored(row, access_token="enc:k1:sealed" if kept else "")
    spec: TenantSpec = inputs["spec"]
    changed = {
        "wabaId": ("waba_id", {"waba_id": spec.waba_id + "1"}),
        "phoneNumberId": ("phone_number_id", {"phone_number_id": spec.phone_number_id + "1"}),
        "businessId": ("business_id", {"business_id": (spec.business_id or "") + "7"}),
        "active": ("is_active", {"active": not spec.active}),
    }
    column, update = changed[field]
    new_row = desired_row(**{**inputs, "spec": spec.model_copy(update=update)})
    plan = plan_write(before, new_row, stored_token=kept, store_token=True, adopt=False)
    assert plan.kind is WriteKind.UPDATE
    assert plan.columns == (column,)
    if kept is not None:
        assert all(kept not in c for c in plan.columns)
