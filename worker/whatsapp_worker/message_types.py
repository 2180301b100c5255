"""Pydantic models of the type objects of Meta's `POST /{phone-number-id}/messages` body.

One model per message type (`text`, `image`, ... `reaction`) and per interactive subtype.
Objects Meta documents as closed are `extra="forbid"`; a few objects Meta keeps growing
(flow parameters, catalog/address/voice-call parameters, carousel cards, some template
parameter objects) are only checked for their required keys. Every model is strict: a
JSON string is never coerced into a number or a boolean, and an explicit `null` for a
declared field is an error (omit the field instead).

The models live by message family (`message_content`: text, media, location, contacts,
reaction; `message_interactive`; `message_template`) on the strict bases of `message_base`;
this module picks one by type. The models only validate: the worker sends the producer's
objects unchanged.
`check_type_object` returns problems as `(location, message)` pairs, whose messages never
contain a value from the input (pydantic errors are read with `include_input=False` and
the only custom messages are the ones written here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from whatsapp_worker.message_base import Problem, problems_of
from whatsapp_worker.message_content import (
    CaptionedMedia,
    ContactList,
    DocumentObject,
    LocationObject,
    Media,
    ReactionObject,
    TextObject,
)
from whatsapp_worker.message_interactive import INTERACTIVE_MODELS
from whatsapp_worker.message_template import TemplateObject

MESSAGE_TYPES = (
    "audio",
    "contacts",
    "document",
    "image",
    "interactive",
    "location",
    "reaction",
    "sticker",
    "template",
    "text",
    "video",
)

TYPE_ADAPTERS: Mapping[str, TypeAdapter[Any]] = {
    "text": TypeAdapter(TextObject),
    "image": TypeAdapter(CaptionedMedia),
    "video": TypeAdapter(CaptionedMedia),
    "document": TypeAdapter(DocumentObject),
    "audio": TypeAdapter(Media),
    "sticker": TypeAdapter(Media),
    "location": TypeAdapter(LocationObject),
    "contacts": TypeAdapter(ContactList),
    "reaction": TypeAdapter(ReactionObject),
    "template": TypeAdapter(TemplateObject),
}


def check_type_object(kind: str, obj: object) -> list[Problem]:
    """Problems with the object of message type `kind` (one of MESSAGE_TYPES); [] if fine."""
    try:
        if kind == "interactive":
            return _check_interactive(obj)
        TYPE_ADAPTERS[kind].validate_python(obj, strict=True)
    except ValidationError as exc:
        return problems_of(exc)
    return []


def _check_interactive(obj: object) -> list[Problem]:
    if not isinstance(obj, dict):
        return [((), "must be a JSON object")]
    subtype = obj.get("type")
    if subtype is None:
        return [(("type",), "is required")]
    if not isinstance(subtype, str) or subtype not in INTERACTIVE_MODELS:
        return [(("type",), "must be one of " + ", ".join(sorted(INTERACTIVE_MODELS)))]
    INTERACTIVE_MODELS[subtype].model_validate(obj, strict=True)
    return []
