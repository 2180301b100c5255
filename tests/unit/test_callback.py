"""The worker's message id in every send's biz_opaque_callback_data (issue 18): which id, how
the producer's own value is kept, and a value that no longer fits refused, never cut."""

from __future__ import annotations

from typing import Any

import pytest

from whatsapp_contract.webhook import CALLBACK_LIMIT, decode_callback, encode_callback
from whatsapp_worker.callback import FIELD, callback_id, room_left, stamp
from whatsapp_worker.messages import INVALID_PAYLOAD, InvalidMessage, parse_message
from whatsapp_worker.producer import checked_key


def message(mid: str | None = "m-1", **waba: Any) -> dict[str, Any]:
    metadata = {"tenantId": "acme", "phoneNumberId": "2002"}
    if mid is not None:
        metadata["messageId"] = mid
    body = {"to": "34600000001", "type": "text", "text": {"body": "hi"}, **waba}
    return {"metadata": metadata, "wabaPayload": body}


@pytest.mark.parametrize(
    ("mid", "amqp", "expected"),
    [
        pytest.param("m-1", None, "m-1", id="metadata.messageId"),
        pytest.param("m-1", "amqp-1", "m-1", id="metadata.messageId before the AMQP id"),
        pytest.param(None, "amqp-1", "amqp-1", id="the AMQP message_id"),
        pytest.param(None, None, None, id="no id: not joined"),
        pytest.param(None, "", None, id="an empty AMQP id: not joined"),
        pytest.param(None, "a|b", None, id="an AMQP id with | cannot be carried"),
        pytest.param(None, "x" * 201, None, id="an AMQP id over 200 characters"),
        pytest.param(None, "x" * 200, "x" * 200, id="an AMQP id of 200 characters"),
        pytest.param(None, 42, None, id="an AMQP id that is not a string"),
    ],
)
def test_which_id_joins_the_statuses(mid: str | None, amqp: object, expected: str | None) -> None:
    assert callback_id(parse_message(message(mid)), amqp) == expected


@pytest.mark.parametrize(
    ("producer", "identity", "sent"),
    [
        pytest.param(None, "m-1", "wo1:m-1|", id="no value of its own"),
        pytest.param("ref-7", "m-1", "wo1:m-1|ref-7", id="the producer's value kept after it"),
        pytest.param("", "m-1", "wo1:m-1|", id="an empty value"),
        pytest.param("a|b", "m-1", "wo1:m-1|a|b", id="a value with | (only the id cannot)"),
        pytest.param("d" * 506, "m", "wo1:m|" + "d" * 506, id="exactly 512 in all"),
        pytest.param("ref-7", None, "ref-7", id="no id: the producer's value as it is"),
        pytest.param("d" * 512, None, "d" * 512, id="no id: 512 characters still fit"),
        pytest.param(None, None, None, id="no id, no value: none sent"),
    ],
)
def test_what_meta_receives(producer: str | None, identity: str | None, sent: str | None) -> None:
    waba = {} if producer is None else {FIELD: producer}
    parsed = parse_message(message(None, **waba))
    stamped = stamp(parsed, identity)
    assert stamped.payload.get(FIELD) == sent
    if identity is not None:  # the receiver reads back what went in
        assert decode_callback(sent) == (identity, producer or None)
    assert parsed.payload.get(FIELD) == producer  # the parsed message itself is not changed


@pytest.mark.parametrize(
    ("producer", "identity"),
    [
        pytest.param("d" * 505, "ID7", id="one character over"),
        pytest.param("d" * 512, "ID-1", id="a full 512 of its own"),
        pytest.param("d" * 400, "X" * 128, id="a long message id leaves less room"),
    ],
)
def test_a_value_that_no_longer_fits_is_refused_with_the_sizes(
    producer: str, identity: str
) -> None:
    parsed = parse_message(message(None, **{FIELD: producer}))
    with pytest.raises(InvalidMessage) as caught:
        stamp(parsed, identity)
    assert caught.value.reason == INVALID_PAYLOAD
    detail = caught.value.detail
    assert detail.startswith(f"wabaPayload.{FIELD}: {len(producer)} characters")
    assert f"at most {room_left(identity)} are left" in detail
    assert str(CALLBACK_LIMIT) in detail
    assert producer not in detail
    assert identity not in detail


def test_room_left_matches_the_contract() -> None:
    for identity in ("m", "m-1", "x" * 128, "x" * 200):
        fits = "d" * room_left(identity)
        assert len(encode_callback(identity, fits)) == CALLBACK_LIMIT
        with pytest.raises(ValueError, match="Meta allows"):
            encode_callback(identity, fits + "d")


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        pytest.param(message("m-1", **{FIELD: "d" * 504}), False, id="fits with its id"),
        pytest.param(message("m-1", **{FIELD: "d" * 505}), True, id="over with its id"),
        # no messageId: `send` publishes with the content hash as AMQP message_id (39 chars)
        pytest.param(message(None, **{FIELD: "d" * 468}), False, id="fits with the hash"),
        pytest.param(message(None, **{FIELD: "d" * 469}), True, id="over with the hash"),
    ],
)
def test_producers_see_the_refusal_before_publishing(body: dict[str, Any], refused: bool) -> None:
    if refused:
        with pytest.raises(InvalidMessage) as caught:
            checked_key(body)
        assert caught.value.reason == INVALID_PAYLOAD
    else:
        key = checked_key(body)
        assert key == (body["metadata"].get("messageId") or key)
