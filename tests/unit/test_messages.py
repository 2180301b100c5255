"""Parsing and validation of queued messages (whatsapp_worker.messages): table-driven."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import pytest

from whatsapp_worker.messages import (
    INVALID_ENVELOPE,
    INVALID_PAYLOAD,
    INVALID_RECIPIENT,
    MAX_BODY_BYTES,
    NOT_JSON,
    REASONS,
    TOO_LARGE,
    UNKNOWN_TYPE,
    InvalidMessage,
    OutboundMessage,
    message_key,
    normalise_recipient,
    parse_body,
    parse_message,
)

TENANT = "t_a3eecb94bb822a92"
PHONE = "882555404932892"
TO = "919876543220"
SENT_TO = "+919876543220"  # what the worker sends for TO
META = {"tenantId": TENANT, "phoneNumberId": PHONE}
MARKER = "ZQXMARKER"


def envelope(waba: Any, **metadata: Any) -> dict[str, Any]:
    return {"metadata": {**META, **metadata}, "wabaPayload": waba}


def encode(data: Any) -> bytes:
    return json.dumps(data).encode()


def waba(kind: str, obj: Any, **top: Any) -> dict[str, Any]:
    return {"to": TO, "type": kind, kind: obj, **top}


def sent(kind: str, obj: Any, **extra: Any) -> dict[str, Any]:
    """The body Meta should receive."""
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": SENT_TO,
        "type": kind,
        kind: obj,
        **extra,
    }


IMAGE_LINK = "https://cdn.example.com/a/b.png?x=1"
BUTTONS: dict[str, Any] = {
    "type": "button",
    "header": {"type": "image", "image": {"link": IMAGE_LINK}},
    "body": {"text": "Change or cancel?"},
    "footer": {"text": "Reply below"},
    "action": {
        "buttons": [
            {"type": "reply", "reply": {"id": "change", "title": "Change"}},
            {"type": "reply", "reply": {"id": "cancel", "title": "Cancel"}},
            {"type": "reply", "reply": {"id": "x" * 256, "title": "t" * 20}},
        ]
    },
}
LIST: dict[str, Any] = {
    "type": "list",
    "header": {"type": "text", "text": "Menu"},
    "body": {"text": "Pick a slot"},
    "footer": {"text": "Times are local"},
    "action": {
        "button": "See slots",
        "sections": [
            {
                "title": "Morning",
                "rows": [
                    {"id": "m1", "title": "09:00", "description": "d" * 72},
                    {"id": "m2", "title": "r" * 24},
                ],
            },
            {"title": "Evening", "rows": [{"id": f"e{i}", "title": f"{i}"} for i in range(8)]},
        ],
    },
}
CTA_URL: dict[str, Any] = {
    "type": "cta_url",
    "header": {"type": "text", "text": "Dates"},
    "body": {"text": "Tap to see dates."},
    "action": {
        "name": "cta_url",
        "parameters": {"display_text": "See Dates", "url": "https://example.com/d?c=1"},
    },
}
PRODUCT: dict[str, Any] = {
    "type": "product",
    "body": {"text": "Our best seller"},
    "action": {"catalog_id": "1234", "product_retailer_id": "sku-1"},
}
PRODUCT_LIST: dict[str, Any] = {
    "type": "product_list",
    "header": {"type": "text", "text": "Shop"},
    "body": {"text": "Two aisles"},
    "action": {
        "catalog_id": "1234",
        "sections": [
            {"title": "Fruit", "product_items": [{"product_retailer_id": "apple"}]},
            {
                "title": "Veg",
                "product_items": [{"product_retailer_id": f"v{i}"} for i in range(29)],
            },
        ],
    },
}
FLOW: dict[str, Any] = {
    "type": "flow",
    "header": {"type": "text", "text": "Book"},
    "body": {"text": "Book an appointment"},
    "footer": {"text": "Takes a minute"},
    "action": {
        "name": "flow",
        "parameters": {
            "flow_message_version": "3",
            "flow_token": "tok-1",
            "flow_id": "1234567890",
            "flow_cta": "Book!",
            "flow_action": "navigate",
            "flow_action_payload": {"screen": "START", "data": {"slots": [1, 2], "x": None}},
            "new_meta_param": True,
        },
    },
}
LOCATION_REQUEST: dict[str, Any] = {
    "type": "location_request_message",
    "body": {"text": "Where should we deliver?"},
    "action": {"name": "send_location"},
}
CATALOG: dict[str, Any] = {
    "type": "catalog_message",
    "body": {"text": "Browse our catalog"},
    "action": {"name": "catalog_message", "parameters": {"thumbnail_product_retailer_id": "s1"}},
}
TEMPLATE_FULL: dict[str, Any] = {
    "name": "order_update",
    "language": {"code": "en_US", "policy": "deterministic"},
    "components": [
        {"type": "header", "parameters": [{"type": "image", "image": {"id": "media-1"}}]},
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "Asha"},
                {
                    "type": "currency",
                    "currency": {"fallback_value": "$10.99", "code": "USD", "amount_1000": 10990},
                },
                {"type": "date_time", "date_time": {"fallback_value": "May 1, 2026"}},
                {"type": "text", "parameter_name": "order_id", "text": "A-17"},
            ],
        },
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": "0",
            "parameters": [{"type": "payload", "payload": "STOP"}],
        },
        {
            "type": "button",
            "sub_type": "url",
            "index": 1,
            "parameters": [{"type": "text", "text": "track/A-17"}],
        },
        {
            "type": "button",
            "sub_type": "copy_code",
            "index": 2,
            "parameters": [{"type": "coupon_code", "coupon_code": "SAVE10"}],
        },
    ],
}
TEMPLATE_CAROUSEL: dict[str, Any] = {
    "name": "carousel_offer",
    "language": {"code": "pt_BR"},
    "components": [
        {"type": "body", "parameters": [{"type": "text", "text": "Oi"}]},
        {
            "type": "carousel",
            "cards": [
                {
                    "card_index": 0,
                    "components": [
                        {
                            "type": "header",
                            "parameters": [
                                {"type": "video", "video": {"link": "https://v.example/1.mp4"}}
                            ],
                        },
                        {
                            "type": "button",
                            "sub_type": "quick_reply",
                            "index": 0,
                            "parameters": [{"type": "payload", "payload": "card-0"}],
                        },
                    ],
                }
            ],
        },
    ],
}
CONTACTS: list[dict[str, Any]] = [
    {
        "name": {"formatted_name": "Barbara J. Johnson", "first_name": "Barbara"},
        "phones": [{"phone": "+1 (940) 555-1234", "type": "HOME", "wa_id": "19405551234"}],
        "emails": [{"email": "bjohnson@example.com", "type": "WORK"}],
        "urls": [{"url": "https://example.com", "type": "WORK"}],
        "addresses": [{"street": "1 Main St", "city": "Menlo Park", "country_code": "US"}],
        "org": {"company": "Lucky Shrub", "title": "Manager"},
        "birthday": "1999-01-23",
    },
    {"name": {"formatted_name": "Second"}},
]

VALID = [
    pytest.param(waba("text", {"body": "Hello!"}), sent("text", {"body": "Hello!"}), id="text"),
    pytest.param(
        waba(
            "text",
            {"body": "b" * 4096, "preview_url": True},
            messaging_product="whatsapp",
            recipient_type="individual",
            context={"message_id": "wamid.HBgL"},
            biz_opaque_callback_data="o" * 512,
        ),
        sent(
            "text",
            {"body": "b" * 4096, "preview_url": True},
            context={"message_id": "wamid.HBgL"},
            biz_opaque_callback_data="o" * 512,
        ),
        id="text-max-with-context-and-opaque",
    ),
    pytest.param(
        {"to": "+91 98765-43220", "type": "text", "text": {"body": "hi"}},
        sent("text", {"body": "hi"}),
        id="text-to-normalised",
    ),
    pytest.param(
        waba("image", {"id": "1479537139650973", "caption": "c" * 1024}),
        sent("image", {"id": "1479537139650973", "caption": "c" * 1024}),
        id="image-id-caption",
    ),
    pytest.param(
        waba("image", {"link": IMAGE_LINK}), sent("image", {"link": IMAGE_LINK}), id="image-link"
    ),
    pytest.param(waba("audio", {"id": "a1"}), sent("audio", {"id": "a1"}), id="audio"),
    pytest.param(
        waba("video", {"link": "http://v.example/1.mp4", "caption": "clip"}),
        sent("video", {"link": "http://v.example/1.mp4", "caption": "clip"}),
        id="video-link-caption",
    ),
    pytest.param(
        waba("document", {"id": "d1", "filename": "invoice.pdf", "caption": "Invoice"}),
        sent("document", {"id": "d1", "filename": "invoice.pdf", "caption": "Invoice"}),
        id="document",
    ),
    pytest.param(waba("sticker", {"id": "s1"}), sent("sticker", {"id": "s1"}), id="sticker"),
    pytest.param(
        waba("location", {"latitude": -90, "longitude": 180.0, "name": "Pole", "address": "S"}),
        sent("location", {"latitude": -90, "longitude": 180.0, "name": "Pole", "address": "S"}),
        id="location-bounds",
    ),
    pytest.param(waba("contacts", CONTACTS), sent("contacts", CONTACTS), id="contacts"),
    pytest.param(
        waba("interactive", BUTTONS), sent("interactive", BUTTONS), id="interactive-button"
    ),
    pytest.param(waba("interactive", LIST), sent("interactive", LIST), id="interactive-list"),
    pytest.param(
        waba("interactive", CTA_URL), sent("interactive", CTA_URL), id="interactive-cta-url"
    ),
    pytest.param(
        waba("interactive", PRODUCT), sent("interactive", PRODUCT), id="interactive-product"
    ),
    pytest.param(
        waba("interactive", PRODUCT_LIST),
        sent("interactive", PRODUCT_LIST),
        id="interactive-product-list",
    ),
    pytest.param(waba("interactive", FLOW), sent("interactive", FLOW), id="interactive-flow"),
    pytest.param(
        waba("interactive", LOCATION_REQUEST),
        sent("interactive", LOCATION_REQUEST),
        id="interactive-location-request",
    ),
    pytest.param(
        waba("interactive", CATALOG), sent("interactive", CATALOG), id="interactive-catalog"
    ),
    pytest.param(
        waba("template", {"name": "hello_world", "language": {"code": "en_US"}}),
        sent("template", {"name": "hello_world", "language": {"code": "en_US"}}),
        id="template-plain",
    ),
    pytest.param(
        waba("template", TEMPLATE_FULL), sent("template", TEMPLATE_FULL), id="template-full"
    ),
    pytest.param(
        waba("template", TEMPLATE_CAROUSEL),
        sent("template", TEMPLATE_CAROUSEL),
        id="template-carousel",
    ),
    pytest.param(
        waba("reaction", {"message_id": "wamid.HBgL", "emoji": "\U0001f600"}),
        sent("reaction", {"message_id": "wamid.HBgL", "emoji": "\U0001f600"}),
        id="reaction",
    ),
    pytest.param(
        waba("reaction", {"message_id": "wamid.HBgL", "emoji": ""}),
        sent("reaction", {"message_id": "wamid.HBgL", "emoji": ""}),
        id="reaction-removed",
    ),
]


@pytest.mark.parametrize(("payload", "expected"), VALID)
def test_valid_message_gives_the_exact_body(payload: Any, expected: dict[str, Any]) -> None:
    message = parse_body(encode(envelope(payload, messageId="ord-17:a.b_c")))

    assert message == OutboundMessage(
        tenant_id=TENANT,
        phone_number_id=PHONE,
        message_id="ord-17:a.b_c",
        to=SENT_TO,
        type=expected["type"],
        payload=expected,
    )
    assert json.loads(json.dumps(message.payload)) == expected


def test_body_keys_come_in_meta_order_and_metadata_extras_are_ignored() -> None:
    data = envelope(waba("text", {"body": "x"}, context={"message_id": "w"}), traceparent="00-1")
    data["producedAt"] = "2026-01-01T00:00:00Z"

    message = parse_message(data)

    assert list(message.payload) == [
        "messaging_product",
        "recipient_type",
        "to",
        "type",
        "text",
        "context",
    ]
    assert message.message_id is None


def test_payload_is_a_copy_of_the_input() -> None:
    data = envelope(waba("interactive", copy.deepcopy(BUTTONS)))
    message = parse_message(data)

    data["wabaPayload"]["interactive"]["action"]["buttons"].clear()

    assert message.payload["interactive"] == BUTTONS


def bad_waba(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = waba("text", {"body": "Hello!"})
    payload.update(changes)
    return {key: value for key, value in payload.items() if value is not DROP}


DROP = object()


def interactive(**changes: Any) -> dict[str, Any]:
    obj = copy.deepcopy(BUTTONS)
    obj.update(changes)
    return envelope(waba("interactive", {k: v for k, v in obj.items() if v is not DROP}))


def reply(i: int, title: str | None = None) -> dict[str, Any]:
    return {"type": "reply", "reply": {"id": f"b{i}", "title": title or f"B{i}"}}


def list_action(*section_rows: int) -> dict[str, Any]:
    sections = [
        {"title": f"S{s}", "rows": [{"id": f"{s}-{r}", "title": "row"} for r in range(n)]}
        for s, n in enumerate(section_rows)
    ]
    return {"button": "Open", "sections": sections}


def template(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"name": "hello_world", "language": {"code": "en_US"}, **changes}
    return envelope(waba("template", {k: v for k, v in obj.items() if v is not DROP}))


TEXT_HEADER = {"type": "text", "text": "h"}


def body_params(*params: Any) -> list[dict[str, Any]]:
    return [{"type": "body", "parameters": list(params)}]


# fmt: off
MALFORMED = [
    # bytes and JSON
    pytest.param(b"{not json", NOT_JSON, "body", id="not-json"),
    pytest.param(b"", NOT_JSON, "body", id="empty-body"),
    pytest.param(b'{"a": "\xff"}', NOT_JSON, "body", id="invalid-utf8"),
    pytest.param(b'{"metadata": NaN}', NOT_JSON, "body", id="json-nan"),
    pytest.param(b"[1, 2]", NOT_JSON, "message", id="json-array"),
    pytest.param(b'"text"', NOT_JSON, "message", id="json-string"),
    pytest.param(b" " * (MAX_BODY_BYTES + 1), TOO_LARGE, "body", id="too-large"),
    # envelope
    pytest.param({"wabaPayload": waba("text", {"body": "x"})}, INVALID_ENVELOPE, "metadata",
                 id="missing-metadata"),
    pytest.param({"metadata": "t1", "wabaPayload": waba("text", {"body": "x"})},
                 INVALID_ENVELOPE, "metadata", id="metadata-not-object"),
    pytest.param({"metadata": {"phoneNumberId": PHONE}, "wabaPayload": waba("text", {"body": "x"})},
                 INVALID_ENVELOPE, "metadata.tenantId", id="missing-tenant-id"),
    pytest.param(envelope(waba("text", {"body": "x"}), phoneNumberId=882555404932892),
                 INVALID_ENVELOPE, "metadata.phoneNumberId", id="int-phone-number-id"),
    pytest.param(envelope(waba("text", {"body": "x"}), phoneNumberId="8825-5540"),
                 INVALID_ENVELOPE, "metadata.phoneNumberId", id="phone-number-id-not-digits"),
    pytest.param(envelope(waba("text", {"body": "x"}), tenantId="acme corp!"),
                 INVALID_ENVELOPE, "metadata.tenantId", id="tenant-id-bad-chars"),
    pytest.param(envelope(waba("text", {"body": "x"}), tenantId="-acme"),
                 INVALID_ENVELOPE, "metadata.tenantId", id="tenant-id-leading-hyphen"),
    pytest.param(envelope(waba("text", {"body": "x"}), tenantId="t" * 51),
                 INVALID_ENVELOPE, "metadata.tenantId", id="tenant-id-too-long"),
    pytest.param(envelope(waba("text", {"body": "x"}), messageId="has space"),
                 INVALID_ENVELOPE, "metadata.messageId", id="message-id-bad-chars"),
    pytest.param(envelope(waba("text", {"body": "x"}), messageId="m" * 129),
                 INVALID_ENVELOPE, "metadata.messageId", id="message-id-too-long"),
    pytest.param({"metadata": META}, INVALID_ENVELOPE, "wabaPayload", id="missing-waba-payload"),
    pytest.param({"metadata": META, "wabaPayload": '{"to": "1"}'}, INVALID_ENVELOPE,
                 "wabaPayload", id="waba-payload-string"),
    # top level of wabaPayload
    pytest.param(envelope(bad_waba(to=DROP)), INVALID_RECIPIENT, "wabaPayload.to", id="missing-to"),
    pytest.param(envelope(bad_waba(to=919876543220)), INVALID_RECIPIENT, "wabaPayload.to",
                 id="to-number"),
    pytest.param(envelope(bad_waba(to="91987654322O")), INVALID_RECIPIENT, "wabaPayload.to",
                 id="to-with-letters"),
    pytest.param(envelope(bad_waba(to="1234567")), INVALID_RECIPIENT, "wabaPayload.to",
                 id="to-too-short"),
    pytest.param(envelope(bad_waba(to="1234567890123456")), INVALID_RECIPIENT, "wabaPayload.to",
                 id="to-too-long"),
    pytest.param(envelope(bad_waba(type=DROP)), INVALID_PAYLOAD, "wabaPayload.type",
                 id="missing-type"),
    pytest.param(envelope(bad_waba(type=["text"])), INVALID_PAYLOAD, "wabaPayload.type",
                 id="type-not-string"),
    pytest.param(envelope(bad_waba(type="sms", sms={"body": "x"}, text=DROP)), UNKNOWN_TYPE,
                 "wabaPayload.type", id="unknown-type"),
    pytest.param(envelope(bad_waba(type="image", text=DROP)), INVALID_PAYLOAD, "wabaPayload.image",
                 id="type-object-missing"),
    pytest.param(envelope(bad_waba(image={"id": "1"})), INVALID_PAYLOAD, "wabaPayload.image",
                 id="two-type-objects"),
    pytest.param(envelope(bad_waba(messaging_product="sms")), INVALID_PAYLOAD,
                 "wabaPayload.messaging_product", id="messaging-product-sms"),
    pytest.param(envelope(bad_waba(recipient_type="group")), INVALID_PAYLOAD,
                 "wabaPayload.recipient_type", id="recipient-type-group"),
    pytest.param(envelope(bad_waba(priority="high")), INVALID_PAYLOAD, "wabaPayload.priority",
                 id="unknown-top-level-key"),
    pytest.param(envelope(bad_waba(context={"id": "w"})), INVALID_PAYLOAD,
                 "wabaPayload.context.message_id", id="context-without-message-id"),
    pytest.param(envelope(bad_waba(biz_opaque_callback_data="o" * 513)), INVALID_PAYLOAD,
                 "wabaPayload.biz_opaque_callback_data", id="opaque-data-too-long"),
    # text
    pytest.param(envelope(bad_waba(text={"body": ""})), INVALID_PAYLOAD, "wabaPayload.text.body",
                 id="text-body-empty"),
    pytest.param(envelope(bad_waba(text={"body": "b" * 4097})), INVALID_PAYLOAD,
                 "wabaPayload.text.body", id="text-body-too-long"),
    pytest.param(envelope(bad_waba(text={"body": "x", "preview_url": "true"})), INVALID_PAYLOAD,
                 "wabaPayload.text.preview_url", id="text-preview-url-string"),
    pytest.param(envelope(bad_waba(text={"body": "x", "preview_url": None})), INVALID_PAYLOAD,
                 "wabaPayload.text", id="text-explicit-null"),
    pytest.param(envelope(bad_waba(text="Hello!")), INVALID_PAYLOAD, "wabaPayload.text",
                 id="text-object-a-string"),
    # media
    pytest.param(envelope(waba("image", {"id": "1", "link": IMAGE_LINK})), INVALID_PAYLOAD,
                 "wabaPayload.image", id="media-id-and-link"),
    pytest.param(envelope(waba("document", {"filename": "a.pdf"})), INVALID_PAYLOAD,
                 "wabaPayload.document", id="media-neither-id-nor-link"),
    pytest.param(envelope(waba("video", {"link": "ftp://v.example/1.mp4"})), INVALID_PAYLOAD,
                 "wabaPayload.video.link", id="media-link-not-http"),
    pytest.param(envelope(waba("audio", {"id": "1", "caption": "c"})), INVALID_PAYLOAD,
                 "wabaPayload.audio.caption", id="caption-on-audio"),
    pytest.param(envelope(waba("image", {"id": "1", "filename": "a.png"})), INVALID_PAYLOAD,
                 "wabaPayload.image.filename", id="filename-on-image"),
    pytest.param(envelope(waba("image", {"id": "1", "caption": "c" * 1025})), INVALID_PAYLOAD,
                 "wabaPayload.image.caption", id="caption-too-long"),
    # interactive
    pytest.param(interactive(action={"buttons": [reply(i) for i in range(4)]}), INVALID_PAYLOAD,
                 "wabaPayload.interactive.action.buttons", id="four-buttons"),
    pytest.param(interactive(action={"buttons": [reply(1), reply(1, "Other")]}), INVALID_PAYLOAD,
                 "wabaPayload.interactive.action", id="duplicate-button-ids"),
    pytest.param(interactive(action={"buttons": [reply(1, "t" * 21)]}), INVALID_PAYLOAD,
                 "wabaPayload.interactive.action.buttons[0].reply.title", id="button-title-long"),
    pytest.param(interactive(body={}), INVALID_PAYLOAD,
                 "wabaPayload.interactive.body.text", id="interactive-body-empty-object"),
    pytest.param(interactive(type="carousel_of_doom"), INVALID_PAYLOAD,
                 "wabaPayload.interactive.type", id="interactive-unknown-subtype"),
    pytest.param(interactive(type="list", header=DROP, action=list_action(6, 5)), INVALID_PAYLOAD,
                 "wabaPayload.interactive.action", id="list-eleven-rows"),
    pytest.param(interactive(type="list", header=DROP, action=list_action(*[1] * 11)),
                 INVALID_PAYLOAD, "wabaPayload.interactive.action.sections",
                 id="list-eleven-sections"),
    pytest.param(interactive(type="list", header={"type": "image", "image": {"id": "1"}},
                             action=list_action(2)),
                 INVALID_PAYLOAD, "wabaPayload.interactive.header.type", id="list-image-header"),
    pytest.param(interactive(footer={"text": "f" * 61}), INVALID_PAYLOAD,
                 "wabaPayload.interactive.footer.text", id="footer-too-long"),
    pytest.param(envelope(waba("interactive", {**CTA_URL, "action": {"name": "url"}})),
                 INVALID_PAYLOAD, "wabaPayload.interactive.action.name", id="cta-url-wrong-action"),
    pytest.param(envelope(waba("interactive", {**PRODUCT, "header": TEXT_HEADER})),
                 INVALID_PAYLOAD, "wabaPayload.interactive.header", id="product-with-header"),
    pytest.param(envelope(waba("interactive", {**FLOW, "action": {"name": "flow", "parameters": {
        "flow_message_version": "3", "flow_cta": "Go", "flow_id": "1", "flow_name": "n"}}})),
                 INVALID_PAYLOAD, "wabaPayload.interactive.action.parameters",
                 id="flow-id-and-name"),
    pytest.param(envelope(waba("interactive", {**CATALOG, "action": {"name": "flow"}})),
                 INVALID_PAYLOAD, "wabaPayload.interactive", id="catalog-wrong-action-name"),
    # location, contacts, reaction
    pytest.param(envelope(waba("location", {"latitude": 91, "longitude": 0})), INVALID_PAYLOAD,
                 "wabaPayload.location.latitude", id="latitude-91"),
    pytest.param(envelope(waba("location", {"latitude": 1, "longitude": "2.5"})),
                 INVALID_PAYLOAD, "wabaPayload.location.longitude", id="longitude-string"),
    pytest.param(envelope(waba("location", {"latitude": 1})), INVALID_PAYLOAD,
                 "wabaPayload.location.longitude", id="longitude-missing"),
    pytest.param(envelope(waba("contacts", [])), INVALID_PAYLOAD, "wabaPayload.contacts",
                 id="contacts-empty"),
    pytest.param(envelope(waba("contacts", [{"name": {"first_name": "A"}}])), INVALID_PAYLOAD,
                 "wabaPayload.contacts[0].name.formatted_name", id="contact-no-formatted-name"),
    pytest.param(envelope(waba("contacts", [{"name": {"formatted_name": "A"},
                                             "phones": {"phone": "1"}}])),
                 INVALID_PAYLOAD, "wabaPayload.contacts[0].phones", id="contact-phones-not-list"),
    pytest.param(envelope(waba("reaction", {"emoji": "x"})), INVALID_PAYLOAD,
                 "wabaPayload.reaction.message_id", id="reaction-without-message-id"),
    # template
    pytest.param(template(language=DROP), INVALID_PAYLOAD, "wabaPayload.template.language",
                 id="template-without-language"),
    pytest.param(template(name=""), INVALID_PAYLOAD, "wabaPayload.template.name",
                 id="template-name-empty"),
    pytest.param(template(language="en_US"), INVALID_PAYLOAD, "wabaPayload.template.language",
                 id="template-language-string"),
    pytest.param(template(components=[{"type": "sidebar"}]), INVALID_PAYLOAD,
                 "wabaPayload.template.components[0].type", id="template-component-type"),
    pytest.param(template(components=body_params({"type": "emoji", "emoji": "x"})),
                 INVALID_PAYLOAD, "wabaPayload.template.components[0].parameters[0].type",
                 id="template-parameter-type"),
    pytest.param(template(components=body_params({"type": "text", "payload": "x"})),
                 INVALID_PAYLOAD, "wabaPayload.template.components[0].parameters[0]",
                 id="template-parameter-without-its-value"),
    pytest.param(template(components=[{"type": "button", "sub_type": "url", "parameters": []}]),
                 INVALID_PAYLOAD, "wabaPayload.template.components[0]",
                 id="template-button-without-index"),
    pytest.param(template(components=[{"type": "button", "sub_type": "url", "index": "10"}]),
                 INVALID_PAYLOAD, "wabaPayload.template.components[0].index",
                 id="template-button-index-10"),
]
# fmt: on


@pytest.mark.parametrize(("data", "reason", "path"), MALFORMED)
def test_malformed_message_is_refused_with_reason_and_path(
    data: Any, reason: str, path: str
) -> None:
    body = data if isinstance(data, bytes) else encode(data)

    with pytest.raises(InvalidMessage) as caught:
        parse_body(body)

    assert caught.value.reason == reason
    assert caught.value.detail.startswith(f"{path}: "), caught.value.detail
    assert str(caught.value) == f"{reason}: {caught.value.detail}"


def test_malformed_table_is_large_and_covers_every_reason() -> None:
    assert len(MALFORMED) >= 30
    assert {p.values[1] for p in MALFORMED} == set(REASONS)


EXACT_DETAILS = [
    pytest.param(
        envelope(waba("text", {"body": "x"}), phoneNumberId=882555404932892),
        "metadata.phoneNumberId: must be a string",
        id="int-phone-number-id",
    ),
    pytest.param(
        {"metadata": META, "wabaPayload": "x"},
        "wabaPayload: must be a JSON object",
        id="waba-payload-string",
    ),
    pytest.param(
        envelope(waba("image", {"id": "1", "link": IMAGE_LINK})),
        "wabaPayload.image: exactly one of `id` or `link` is required",
        id="media-id-and-link",
    ),
    pytest.param(
        envelope(waba("audio", {"id": "1", "caption": "c"})),
        "wabaPayload.audio.caption: is not allowed",
        id="caption-on-audio",
    ),
    pytest.param(
        interactive(action={"buttons": [reply(1), reply(1, "Other")]}),
        "wabaPayload.interactive.action: button ids must be unique",
        id="duplicate-button-ids",
    ),
    pytest.param(
        interactive(type="list", header=DROP, action=list_action(6, 5)),
        "wabaPayload.interactive.action: at most 10 rows in total across sections",
        id="list-eleven-rows",
    ),
    pytest.param(
        envelope(bad_waba(image={"id": "1"})),
        'wabaPayload.image: is not allowed with type "text"',
        id="two-type-objects",
    ),
    pytest.param(
        envelope(bad_waba(text={"body": "x", "+91 98765": 1})),
        "wabaPayload.text.<key>: is not allowed",
        id="key-that-is-not-a-name",
    ),
    pytest.param(
        envelope(bad_waba(to="123456")),
        "wabaPayload.to: must have 7..15 digits, has 6",
        id="to-too-short",
    ),
    pytest.param(
        envelope(bad_waba(to="+34 600 000 0001")),
        "wabaPayload.to: is too long for country code 34: 10 digits after it; numbers there "
        "have 9 digits",
        id="to-too-long-for-its-country",
    ),
    pytest.param(
        template(language=DROP, name=""),
        "wabaPayload.template.name: String should have at least 1 character; "
        "wabaPayload.template.language: is required",
        id="two-template-problems",
    ),
]


@pytest.mark.parametrize(("data", "detail"), EXACT_DETAILS)
def test_exact_detail(data: Any, detail: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse_message(data)

    assert caught.value.detail == detail


def test_many_problems_are_summarised() -> None:
    contacts: list[dict[str, Any]] = [{"name": {}} for _ in range(8)]

    with pytest.raises(InvalidMessage) as caught:
        parse_message(envelope(waba("contacts", contacts)))

    assert caught.value.detail.count("formatted_name: is required") == 5
    assert caught.value.detail.endswith("; and 3 more problems")


LEAKS = [
    pytest.param(envelope(waba("text", {"body": "x"}), tenantId=f"{MARKER} !"), id="tenant-id"),
    pytest.param(envelope(waba("text", {"body": "x"}), phoneNumberId=f"{MARKER}"), id="phone-id"),
    pytest.param(envelope(waba("text", {"body": "x"}), messageId=f"{MARKER} x"), id="message-id"),
    pytest.param({"metadata": META, "wabaPayload": MARKER}, id="waba-payload"),
    pytest.param(envelope(bad_waba(to=f"+{MARKER}")), id="to"),
    pytest.param(envelope(bad_waba(to=f"0{MARKER}")), id="to-leading-zero"),
    pytest.param(envelope(bad_waba(type=MARKER)), id="type"),
    pytest.param(envelope(bad_waba(messaging_product=MARKER)), id="messaging-product"),
    pytest.param(envelope(bad_waba(recipient_type=MARKER)), id="recipient-type"),
    pytest.param(envelope(bad_waba(text={"body": MARKER * 500})), id="text-body"),
    pytest.param(envelope(bad_waba(text={"body": MARKER, "x": MARKER})), id="extra-field-value"),
    pytest.param(envelope(bad_waba(**{f"+{MARKER} 1": 1})), id="top-level-key-with-data"),
    pytest.param(envelope(bad_waba(text={"body": "x", f"{MARKER}@x": 1})), id="key-with-data"),
    pytest.param(envelope(bad_waba(context={"message_id": [MARKER]})), id="context"),
    pytest.param(envelope(waba("image", {"link": f"https://{MARKER} x"})), id="media-link"),
    pytest.param(envelope(waba("location", {"latitude": MARKER, "longitude": 0})), id="latitude"),
    pytest.param(interactive(type=MARKER), id="interactive-type"),
    pytest.param(interactive(header={"type": MARKER, "text": MARKER}), id="header-type"),
    pytest.param(interactive(action={"buttons": [reply(1, MARKER * 3)]}), id="button-title"),
    pytest.param(template(components=body_params({"type": MARKER})), id="template-parameter"),
    pytest.param(template(components=[{"type": "button", "index": MARKER}]), id="button-index"),
    pytest.param(template(name=MARKER * 100), id="template-name"),
    pytest.param(envelope(waba("contacts", [{"name": {}, "birthday": MARKER}])), id="birthday"),
]


@pytest.mark.parametrize("data", LEAKS)
def test_detail_never_repeats_a_value(data: Any) -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse_body(encode(data))

    assert MARKER not in caught.value.detail
    assert MARKER not in str(caught.value)
    assert MARKER not in repr(caught.value)


# The rule of docs/workers.md ("Recipients"): what the producer writes -> what Meta gets.
RECIPIENTS = [
    pytest.param("919876543220", "+919876543220", id="digits-only-is-international"),
    pytest.param("+919876543220", "+919876543220", id="plus"),
    pytest.param("+91 98765-43220", "+919876543220", id="plus-spaces-hyphen"),
    pytest.param("0091 98765 43220", "+919876543220", id="double-zero-prefix"),
    pytest.param("+44 7700 900123", "+447700900123", id="uk-plus"),
    pytest.param("0044 7700 900124", "+447700900124", id="uk-double-zero"),
    pytest.param("+44 (0)7700 900123", "+447700900123", id="uk-trunk-zero-dropped"),
    pytest.param("+1 (415) 555-0100", "+14155550100", id="us-formatted"),
    pytest.param("1.415.555.0100", "+14155550100", id="us-dots"),
    pytest.param(" 44\t7700\u00a0900123 ", "+447700900123", id="any-whitespace"),
    pytest.param("+39 06 1234 5678", "+390612345678", id="italy-keeps-its-leading-zero"),
    pytest.param("+54 9 11 2345 6789", "+5491123456789", id="argentina-mobile"),
    pytest.param("+683 4002", "+6834002", id="niue-seven-digits"),
    pytest.param("+800 1234 5678", "+80012345678", id="non-geographic-800"),
    pytest.param("+1 999 888 7776", "+19998887776", id="possible-not-valid-is-sent"),
]


@pytest.mark.parametrize(("raw", "expected"), RECIPIENTS)
def test_recipient_is_normalised(raw: str, expected: str) -> None:
    assert normalise_recipient(raw) == expected


def test_a_recipient_and_its_other_spellings_share_one_cache_entry() -> None:
    from whatsapp_worker import recipients

    recipients._e164.cache_clear()
    for raw in ("+91 98765-43220", "0091 98765 43220", "919876543220"):
        assert normalise_recipient(raw) == "+919876543220"
    info = recipients._e164.cache_info()
    assert (info.misses, info.hits, info.maxsize) == (1, 2, recipients.CACHE_SIZE)


# fmt: off
REJECTED_RECIPIENTS = [
    pytest.param("", "to: has no digits", id="empty"),
    pytest.param(" + ", "to: has no digits", id="only-plus"),
    pytest.param("9198765432a0", "to: may hold only digits, one leading +, spaces - . ( )",
                 id="letter"),
    pytest.param("+1 800 FLOWERS", "to: may hold only digits, one leading +, spaces - . ( )",
                 id="vanity-letters"),
    pytest.param("++919876543220", "to: may hold only digits, one leading +, spaces - . ( )",
                 id="two-plus"),
    pytest.param("91+9876543220", "to: may hold only digits, one leading +, spaces - . ( )",
                 id="inner-plus"),
    pytest.param("91/9876543220", "to: may hold only digits, one leading +, spaces - . ( )",
                 id="slash"),
    pytest.param("\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",
                 "to: may hold only digits, one leading +, spaces - . ( )", id="arabic-digits"),
    pytest.param("09876543220", "to: must start with a country code (not 0), after + or 00",
                 id="national-zero"),
    pytest.param("+0919876543220", "to: must start with a country code (not 0), after + or 00",
                 id="plus-then-zero"),
    pytest.param("000919876543220", "to: must start with a country code (not 0), after + or 00",
                 id="triple-zero"),
    pytest.param("123456", "to: must have 7..15 digits, has 6", id="six-digits"),
    pytest.param("+1234567890123456", "to: must have 7..15 digits, has 16", id="sixteen-digits"),
    pytest.param("00 1234 56", "to: must have 7..15 digits, has 6", id="short-after-00"),
    pytest.param("+999 1234 5678", "to: does not start with a country code in use",
                 id="unknown-country-code"),
    # digits only are international: a US number written without its 1 is Swiss, and too short
    pytest.param("(415) 555.0100", "to: is too short for country code 41: 8 digits after it; "
                 "numbers there have 9 or 12 digits", id="national-us-number-without-1"),
    pytest.param("+34 600 000 0001", "to: is too long for country code 34: 10 digits after it; "
                 "numbers there have 9 digits", id="too-long-for-spain"),
    pytest.param("+1 415 555", "to: is too short for country code 1: 6 digits after it; "
                 "numbers there have 10 digits", id="too-short-for-nanp"),
    pytest.param("12345678", "to: is a local number without its area code (country code 1)",
                 id="local-only"),
    pytest.param("+123456789012345", "to: is too long for country code 1: 14 digits after it; "
                 "numbers there have 10 digits", id="fifteen-digits-too-long-for-nanp"),
]
# fmt: on


@pytest.mark.parametrize(("raw", "detail"), REJECTED_RECIPIENTS)
def test_recipient_is_rejected(raw: str, detail: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        normalise_recipient(raw)

    assert caught.value.reason == INVALID_RECIPIENT
    assert caught.value.detail == detail


def test_recipient_must_be_a_string() -> None:
    with pytest.raises(InvalidMessage) as caught:
        normalise_recipient(919876543220)  # type: ignore[arg-type]

    assert (caught.value.reason, caught.value.detail) == (INVALID_RECIPIENT, "to: must be a string")


NON_JSON_VALUES = [
    pytest.param({"data": {"screen": "S", "x": {1, 2}}}, ".data.x", id="set"),
    pytest.param({"data": {"screen": "S", "x": float("nan")}}, ".data.x", id="nan"),
    pytest.param({"data": {1: "x"}}, ".data", id="int-key"),
]


@pytest.mark.parametrize(("payload", "where"), NON_JSON_VALUES)
def test_parse_message_refuses_values_json_cannot_hold(payload: Any, where: str) -> None:
    flow = copy.deepcopy(FLOW)
    flow["action"]["parameters"]["flow_action_payload"] = payload
    expected = "wabaPayload.interactive.action.parameters.flow_action_payload" + where

    with pytest.raises(InvalidMessage) as caught:
        parse_message(envelope(waba("interactive", flow)))

    assert caught.value.reason == INVALID_PAYLOAD
    assert caught.value.detail.startswith(f"{expected}: ")


def test_deep_nesting_is_refused_without_recursion_errors() -> None:
    deep: Any = "leaf"
    for _ in range(5000):
        deep = [deep]
    flow = copy.deepcopy(FLOW)
    flow["action"]["parameters"]["flow_action_payload"]["data"] = {"deep": deep}

    with pytest.raises(InvalidMessage) as caught:
        parse_message(envelope(waba("interactive", flow)))
    assert caught.value.reason == INVALID_PAYLOAD
    assert "nested deeper than 32 levels" in caught.value.detail

    with pytest.raises(InvalidMessage) as caught:
        parse_body(b"[" * 100_000 + b"]" * 100_000)
    assert caught.value.reason == NOT_JSON


def test_body_exactly_at_the_limit_is_parsed() -> None:
    data = encode(envelope(waba("text", {"body": "x"})))
    body = data + b" " * (MAX_BODY_BYTES - len(data))

    assert len(body) == MAX_BODY_BYTES
    assert parse_body(body).to == SENT_TO


def test_invalid_message_survives_pickling() -> None:
    error = InvalidMessage(INVALID_PAYLOAD, "wabaPayload.text.body: is required")

    copied = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object

    assert isinstance(copied, InvalidMessage)
    assert isinstance(copied, ValueError)
    assert (copied.reason, copied.detail) == (error.reason, error.detail)
    assert str(copied) == "invalid_payload: wabaPayload.text.body: is required"


def test_reasons_are_the_documented_strings() -> None:
    assert REASONS == (
        "not_json",
        "too_large",
        "invalid_envelope",
        "unknown_type",
        "invalid_payload",
        "invalid_recipient",
    )


def parsed(payload: dict[str, Any], **metadata: Any) -> OutboundMessage:
    return parse_message(envelope(payload, **metadata))


def test_message_key_is_stable_and_content_addressed() -> None:
    first = parsed(waba("text", {"body": "Hello!", "preview_url": False}))
    # the same message, keys in another order and `to` formatted differently
    again = parsed(
        {"text": {"preview_url": False, "body": "Hello!"}, "type": "text", "to": "+91 98765 43220"}
    )

    key = message_key(first)

    assert key.startswith("sha256:")
    assert len(key) == len("sha256:") + 32
    assert int(key.removeprefix("sha256:"), 16) >= 0
    assert message_key(again) == key
    assert message_key(first) == key


def test_message_key_tracks_payload_tenant_and_phone() -> None:
    base = message_key(parsed(waba("text", {"body": "Hello!"})))

    others = {
        message_key(parsed(waba("text", {"body": "Hello?"}))),
        message_key(parsed({**waba("text", {"body": "Hello!"}), "to": "919876543221"})),
        message_key(parsed(waba("text", {"body": "Hello!"}), tenantId="t_other")),
        message_key(parsed(waba("text", {"body": "Hello!"}), phoneNumberId="1")),
        message_key(parsed(waba("text", {"body": "Hello!"}, context={"message_id": "w"}))),
    }

    assert base not in others
    assert len(others) == 5


def test_message_key_prefers_the_producer_message_id() -> None:
    one = parsed(waba("text", {"body": "Hello!"}), messageId="order-17")
    other = parsed(waba("text", {"body": "Bye"}), messageId="order-17")

    assert message_key(one) == "order-17"
    assert message_key(other) == "order-17"
