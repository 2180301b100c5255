"""`POST /{version}/{phone-number-id}/messages`: Meta's documented sends and their 200 answers."""

from __future__ import annotations

from typing import Any

from .corpus import PHONE_NUMBER_ID, YVFL, Fixture, Request, Response

MESSAGES_PATH = "/{version}/{phone-number-id}/messages"
PAGES = "https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/"
WAMID = "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA"
# The 200 answer every message-type page shows for its example (recipient +16505551234).
ACCEPTED: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "contacts": [{"input": "+16505551234", "wa_id": "16505551234"}],
    "messages": [{"id": WAMID}],
}


def send(body: dict[str, Any], version: str = "v24.0") -> Request:
    return Request(
        "POST",
        MESSAGES_PATH,
        {"version": version, "phone-number-id": PHONE_NUMBER_ID},
        body=body,
    )


TEXT_BODY: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "+16505551234",
    "type": "text",
    "text": {
        "preview_url": True,
        "body": "As requested, here's the link to our latest product: "
        "https://www.meta.com/quest/quest-3/",
    },
}

FIXTURES: list[Fixture] = [
    # Source: https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/text-messages
    Fixture(
        name="send_text",
        call="send_message",
        request=send(TEXT_BODY),
        response=Response(200, ACCEPTED),
        source=PAGES + "text-messages",
        source_kind="meta-doc",
        seen_via=YVFL + " docs/mensagens/tipos_de_mensagens/text_messages.md (2025-12-20)",
    ),
    # Source: https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/image-messages
    Fixture(
        name="send_image_by_id",
        call="send_message",
        request=send(
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "+16505551234",
                "type": "image",
                "image": {"id": "1479537139650973", "caption": "The best succulent ever?"},
            }
        ),
        response=Response(200, ACCEPTED),
        source=PAGES + "image-messages",
        source_kind="meta-doc",
        seen_via=YVFL + " docs/mensagens/tipos_de_mensagens/image_messages.md (2025-12-20)",
    ),
    # Source: https://github.com/WhatsApp/WhatsApp-Nodejs-SDK
    # (website/docs/api-reference/messages/image.md; request: the SDK's `self_hosted_image`
    # example; answer: src/__tests__/messages.test.ts).
    # Meta's image page shows `link` only in its syntax block (<MEDIA_URL>), not in an example.
    Fixture(
        name="send_image_by_link",
        call="send_message",
        request=send(
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "12345678901",
                "type": "image",
                "image": {"link": "https://example.com/example.png", "caption": "My image"},
            }
        ),
        response=Response(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": "16505076520", "wa_id": "16505076520"}],
                "messages": [{"id": "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"}],
            },
        ),
        source="https://github.com/WhatsApp/WhatsApp-Nodejs-SDK",
        source_kind="sdk",
        notes="The SDK test's answer is for recipient 16505076520, not the image example's "
        "12345678901: only its shape is compared against a send to the example recipient.",
    ),
    # Source: https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/interactive-reply-buttons-messages
    Fixture(
        name="send_interactive_buttons",
        call="send_message",
        request=send(
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "+16505551234",
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "header": {"type": "image", "image": {"id": "2762702990552401"}},
                    "body": {
                        "text": "Hi Pablo! Your gardening workshop is scheduled for 9am "
                        "tomorrow. Use the buttons if you need to reschedule. Thank you!"
                    },
                    "footer": {"text": "Lucky Shrub: Your gateway to succulents!™"},
                    "action": {
                        "buttons": [
                            {"type": "reply", "reply": {"id": "change-button", "title": "Change"}},
                            {"type": "reply", "reply": {"id": "cancel-button", "title": "Cancel"}},
                        ]
                    },
                },
            }
        ),
        response=Response(200, ACCEPTED),
        source=PAGES + "interactive-reply-buttons-messages",
        source_kind="meta-doc",
        seen_via=YVFL + " docs/mensagens/tipos_de_mensagens/interactive_reply_buttons_messages.md",
    ),
    # Source: https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/interactive-list-messages
    Fixture(
        name="send_interactive_list",
        call="send_message",
        request=send(
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "+16505551234",
                "type": "interactive",
                "interactive": {
                    "type": "list",
                    "header": {"type": "text", "text": "Choose Shipping Option"},
                    "body": {"text": "Which shipping option do you prefer?"},
                    "footer": {"text": "Lucky Shrub: Your gateway to succulents™"},
                    "action": {
                        "button": "Shipping Options",
                        "sections": [
                            {
                                "title": "I want it ASAP!",
                                "rows": [
                                    {
                                        "id": "priority_express",
                                        "title": "Priority Mail Express",
                                        "description": "Next Day to 2 Days",
                                    },
                                    {
                                        "id": "priority_mail",
                                        "title": "Priority Mail",
                                        "description": "1\u20133 Days",
                                    },
                                ],
                            },
                            {
                                "title": "I can wait a bit",
                                "rows": [
                                    {
                                        "id": "usps_ground_advantage",
                                        "title": "USPS Ground Advantage",
                                        "description": "2\u20135 Days",
                                    },
                                    {
                                        "id": "media_mail",
                                        "title": "Media Mail",
                                        "description": "2\u20138 Days",
                                    },
                                ],
                            },
                        ],
                    },
                },
            }
        ),
        response=Response(200, ACCEPTED),
        source=PAGES + "interactive-list-messages",
        source_kind="meta-doc",
        seen_via=YVFL + " docs/mensagens/tipos_de_mensagens/interactive_list_messages.md",
    ),
    # Source: https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/reaction-messages
    Fixture(
        name="send_reaction",
        call="send_message",
        request=send(
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "+16505551234",
                "type": "reaction",
                "reaction": {
                    "message_id": "wamid.HBgLMTY0NjcwNDM1OTUVAgASGBQzQUZCMTY0MDc2MUYwNzBDNTY5MAA=",
                    "emoji": "\U0001f600",
                },
            }
        ),
        response=Response(200, ACCEPTED),
        source=PAGES + "reaction-messages",
        source_kind="meta-doc",
        seen_via=YVFL + " docs/mensagens/tipos_de_mensagens/reaction_messages.md",
    ),
    # Source: https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/location-messages
    Fixture(
        name="send_location",
        call="send_message",
        request=send(
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "+16505551234",
                "type": "location",
                "location": {
                    "latitude": "37.44216251868683",
                    "longitude": "-122.16153582049394",
                    "name": "Philz Coffee",
                    "address": "101 Forest Ave, Palo Alto, CA 94301",
                },
            }
        ),
        response=Response(200, ACCEPTED),
        source=PAGES + "location-messages",
        source_kind="meta-doc",
        seen_via=YVFL + " docs/mensagens/tipos_de_mensagens/location_messages.md",
        notes="Meta's example sends latitude/longitude as strings.",
    ),
    # Source: https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/contacts-messages
    Fixture(
        name="send_contacts",
        call="send_message",
        request=send(
            {
                "messaging_product": "whatsapp",
                "to": "+16505551234",
                "type": "contacts",
                "contacts": [
                    {
                        "addresses": [
                            {
                                "street": "1 Lucky Shrub Way",
                                "city": "Menlo Park",
                                "state": "CA",
                                "zip": "94025",
                                "country": "United States",
                                "country_code": "US",
                                "type": "Office",
                            },
                            {
                                "street": "1 Hacker Way",
                                "city": "Menlo Park",
                                "state": "CA",
                                "zip": "94025",
                                "country": "United States",
                                "country_code": "US",
                                "type": "Pop-Up",
                            },
                        ],
                        "birthday": "1999-01-23",
                        "emails": [
                            {"email": "bjohnson@luckyshrub.com", "type": "Work"},
                            {"email": "bjohnson@luckyshrubplants.com", "type": "Work (old)"},
                        ],
                        "name": {
                            "formatted_name": "Barbara J. Johnson",
                            "first_name": "Barbara",
                            "last_name": "Johnson",
                            "middle_name": "Joana",
                            "suffix": "Esq.",
                            "prefix": "Dr.",
                        },
                        "org": {
                            "company": "Lucky Shrub",
                            "department": "Legal",
                            "title": "Lead Counsel",
                        },
                        "phones": [
                            {"phone": "+16505559999", "type": "Landline"},
                            {"phone": "+19175559999", "type": "Mobile", "wa_id": "19175559999"},
                        ],
                        "urls": [
                            {"url": "https://www.luckyshrub.com", "type": "Company"},
                            {
                                "url": "https://www.facebook.com/luckyshrubplants",
                                "type": "Company (FB)",
                            },
                        ],
                    }
                ],
            }
        ),
        response=Response(200, ACCEPTED),
        source=PAGES + "contacts-messages",
        source_kind="meta-doc",
        seen_via=YVFL + " docs/mensagens/tipos_de_mensagens/contacts_messages.md",
    ),
    # Source: https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/utility-templates/utility-templates
    Fixture(
        name="send_template_accepted",
        call="send_message",
        request=send(
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "16505551234",
                "type": "template",
                "template": {
                    "name": "reservation_confirmation",
                    "language": {"code": "en_US"},
                    "components": [
                        {
                            "type": "header",
                            "parameters": [{"type": "image", "image": {"id": "2871834006348767"}}],
                        },
                        {
                            "type": "body",
                            "parameters": [
                                {
                                    "type": "text",
                                    "parameter_name": "number_of_guests",
                                    "text": "4",
                                },
                                {"type": "text", "parameter_name": "day", "text": "Saturday"},
                                {
                                    "type": "text",
                                    "parameter_name": "date",
                                    "text": "August 30th, 2025",
                                },
                                {"type": "text", "parameter_name": "time", "text": "7:30 pm"},
                            ],
                        },
                    ],
                },
            },
            version="v23.0",
        ),
        response=Response(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": "16505551234", "wa_id": "16505551234"}],
                "messages": [
                    {
                        "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJBRkJENzExMTRFRjk2NTI1OTEA",
                        "message_status": "accepted",
                    }
                ],
            },
        ),
        source="https://developers.facebook.com/documentation/business-messaging/whatsapp/"
        "templates/utility-templates/utility-templates",
        source_kind="meta-doc",
        seen_via=YVFL + " docs/modelos/modelos_de_utilidade/utility_templates.md (2025-12-20)",
        notes="send-messages says message_status is included only for template sends; the "
        "template-pacing page says Cloud API always includes it (accepted | "
        "held_for_quality_assessment).",
    ),
    # Source: https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/template-pacing
    Fixture(
        name="send_template_held_for_quality_assessment",
        call="send_message",
        request=send(
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "16505551234",
                "type": "template",
                "template": {"name": "reservation_confirmation", "language": {"code": "en_US"}},
            },
            version="v23.0",
        ),
        response=Response(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": "16505551234", "wa_id": "16505551234"}],
                "messages": [
                    {
                        "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJBRkJENzExMTRFRjk2NTI1OTEA",
                        "message_status": "held_for_quality_assessment",
                    }
                ],
            },
        ),
        source="https://developers.facebook.com/documentation/business-messaging/whatsapp/"
        "templates/template-pacing",
        source_kind="meta-doc",
        seen_via=YVFL + " docs/modelos/gerenciamento_de_modelos/template_pacing.md",
        derived="Meta gives no full example of a held answer: the page states message_status "
        "is `held_for_quality_assessment` for held messages; the body is the utility-template "
        "example answer with that value.",
    ),
]
