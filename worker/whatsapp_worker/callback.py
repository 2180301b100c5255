"""The worker's message id in every send's `biz_opaque_callback_data`, so that Meta's status
webhooks (which echo it) can be joined to the producer's message. Pure.

Meta echoes `biz_opaque_callback_data` (at most 512 characters) in the message's status
webhooks (https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/
reference/messages/status/). The worker sends `encode_callback(message id, the producer's
own value)` (`whatsapp_contract.webhook`): `wo1:<message id>|<producer's value>`. The
receiver decodes it back: its result events carry the message id as `messageId` and the
producer's value as `callbackData`.

The message id is the one the result events carry: `metadata.messageId`, else the AMQP
`message_id`. A message with neither (its result's id is a hash of its content) keeps the
producer's value as it is. A producer value that no longer fits once the id is in front of it
is refused (`invalid_payload`, the sizes in the detail), never cut short.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from whatsapp_contract.webhook import (
    CALLBACK_LIMIT,
    CALLBACK_PREFIX,
    MAX_MESSAGE_ID,
    encode_callback,
)

from .messages import INVALID_PAYLOAD, InvalidMessage, OutboundMessage

FIELD: Final = "biz_opaque_callback_data"


def callback_id(message: OutboundMessage, amqp_message_id: object = None) -> str | None:
    """The id a send's statuses are joined by: the producer's `metadata.messageId`, else the
    AMQP `message_id` when it can be carried (1..200 characters, no `|`); else None."""
    if message.message_id:
        return message.message_id
    if (
        isinstance(amqp_message_id, str)
        and 0 < len(amqp_message_id) <= MAX_MESSAGE_ID
        and "|" not in amqp_message_id
    ):
        return amqp_message_id
    return None


def room_left(identity: str) -> int:
    """How many characters of its own callback data a producer keeps with this id."""
    return CALLBACK_LIMIT - len(CALLBACK_PREFIX) - len(identity) - 1


def stamp(message: OutboundMessage, identity: str | None) -> OutboundMessage:
    """The message with `biz_opaque_callback_data` = `encode_callback(identity, producer's)`;
    unchanged without an id. Raises InvalidMessage (`invalid_payload`) when the producer's
    value no longer fits: the detail gives the sizes, never the value."""
    if identity is None:
        return message
    producer = message.payload.get(FIELD, "")
    if not isinstance(producer, str):  # parse_message refuses it already
        raise InvalidMessage(INVALID_PAYLOAD, f"wabaPayload.{FIELD}: must be a string")
    try:
        value = encode_callback(identity, producer)
    except ValueError:
        raise InvalidMessage(
            INVALID_PAYLOAD,
            f"wabaPayload.{FIELD}: {len(producer)} characters; the worker puts the message id "
            f"in front of it ({len(identity)} characters, with {CALLBACK_PREFIX!r} and '|') to "
            f"join Meta's status webhooks to the message, and Meta allows {CALLBACK_LIMIT} in "
            f"all: at most {max(0, room_left(identity))} are left for it with this message id",
        ) from None
    return dataclasses.replace(message, payload={**message.payload, FIELD: value})
