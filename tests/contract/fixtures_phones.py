"""Phone numbers: `GET /{phone-number-id}` and `GET /{waba-id}/phone_numbers`."""

from __future__ import annotations

from .corpus import PHONE_NUMBER_ID, WABA_ID, YVFL, Fixture, Request, Response

PHONE_NUMBERS_GUIDE = (
    "https://developers.facebook.com/documentation/business-messaging/whatsapp/"
    "business-phone-numbers/phone-numbers"
)
PHONE_REFERENCE = (
    "https://developers.facebook.com/documentation/business-messaging/whatsapp/reference/"
    "whatsapp-business-phone-number/whatsapp-business-account-phone-number-api"
)
MESSAGING_LIMITS = (
    "https://developers.facebook.com/documentation/business-messaging/whatsapp/messaging-limits"
)
MANAGE_PHONE_NUMBERS = (
    "https://developers.facebook.com/documentation/business-messaging/whatsapp/"
    "solution-providers/manage-phone-numbers"
)
GUIDE_SEEN = YVFL + " docs/ativos_da_conta/telefones_comerciais/phone_numbers.md (2026-03-10)"


def phone(phone_id: str, version: str, fields: str | None = None) -> Request:
    query = {"fields": fields} if fields else {}
    return Request(
        "GET", "/{version}/{phone-number-id}", {"version": version, "phone-number-id": phone_id},
        query=query,
    )  # fmt: skip


def phone_numbers(waba_id: str = WABA_ID, **query: str) -> Request:
    return Request(
        "GET",
        "/{version}/{waba-id}/phone_numbers",
        {"version": "v25.0", "waba-id": waba_id},
        query=query,
    )


FIXTURES: list[Fixture] = [
    # Source: https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/phone-numbers
    Fixture(
        name="phone_default_fields_guide",
        call="phone_number",
        request=phone("105954558954427", "v15.0"),
        response=Response(
            200,
            {
                "code_verification_status": "VERIFIED",
                "display_phone_number": "15555555555",
                "id": "105954558954427",
                "quality_rating": "GREEN",
                "verified_name": "Support Number",
            },
        ),
        source=PHONE_NUMBERS_GUIDE,
        source_kind="meta-doc",
        seen_via=GUIDE_SEEN,
        notes="The guide's default answer includes code_verification_status; the reference's "
        "default (phone_default_fields_reference) does not. Request on v15.0.",
        superseded_by="phone_default_fields_reference",
    ),
    # Source: https://developers.facebook.com/documentation/business-messaging/whatsapp/reference/whatsapp-business-phone-number/whatsapp-business-account-phone-number-api
    Fixture(
        name="phone_default_fields_reference",
        call="phone_number",
        request=phone("106853218861309", "v25.0"),
        response=Response(
            200,
            {
                "id": "106853218861309",
                "display_phone_number": "+1 555-555-5555",
                "verified_name": "Jaspers Market",
                "quality_rating": "GREEN",
            },
        ),
        source=PHONE_REFERENCE,
        source_kind="meta-doc",
        seen_via=YVFL + " docs/referencia/telefone_do_whatsapp_business/"
        "whatsapp_business_account_phone_number_api.md (2026-03-10): 'default_response'",
    ),
    # Source: https://developers.facebook.com/documentation/business-messaging/whatsapp/reference/whatsapp-business-phone-number/whatsapp-business-account-phone-number-api
    Fixture(
        name="phone_fields_name_and_verification_status",
        call="phone_number",
        request=phone(
            "106853218861309",
            "v25.0",
            "id,display_phone_number,verified_name,quality_rating,name_status,"
            "code_verification_status",
        ),
        response=Response(
            200,
            {
                "id": "106853218861309",
                "display_phone_number": "+1 555-555-5555",
                "verified_name": "Jaspers Market",
                "quality_rating": "GREEN",
                "name_status": "APPROVED",
                "code_verification_status": "VERIFIED",
            },
        ),
        source=PHONE_REFERENCE,
        source_kind="meta-doc",
        seen_via=YVFL + " (2026-03-10): 'comprehensive_response'",
        derived="The reference shows the answer but not the fields= that produced it; the "
        "request asks for exactly the answer's fields.",
    ),
    # Source: https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/phone-numbers
    Fixture(
        name="phone_fields_name_status",
        call="phone_number",
        request=phone("105954558954427", "v15.0", "name_status"),
        response=Response(
            200, {"id": "105954558954427", "name_status": "AVAILABLE_WITHOUT_REVIEW"}
        ),
        source=PHONE_NUMBERS_GUIDE,
        source_kind="meta-doc",
        seen_via=GUIDE_SEEN,
        notes="`id` comes back although not asked for.",
    ),
    # Source: https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/phone-numbers
    Fixture(
        name="phone_fields_status",
        call="phone_number",
        request=phone(PHONE_NUMBER_ID, "v25.0", "status"),
        response=Response(200, {"status": "CONNECTED", "id": PHONE_NUMBER_ID}),
        source=PHONE_NUMBERS_GUIDE,
        source_kind="meta-doc",
        seen_via=GUIDE_SEEN,
    ),
    # Source: https://developers.facebook.com/documentation/business-messaging/whatsapp/messaging-limits
    Fixture(
        name="phone_fields_messaging_limit",
        call="phone_number",
        request=phone(PHONE_NUMBER_ID, "v24.0", "whatsapp_business_manager_messaging_limit"),
        response=Response(
            200,
            {"whatsapp_business_manager_messaging_limit": "TIER_250", "id": PHONE_NUMBER_ID},
        ),
        source=MESSAGING_LIMITS,
        source_kind="meta-doc",
        seen_via=YVFL + " docs/mensagens/limites_de_mensagens/messaging_limits.md (2026-01-24)",
        notes="Field added in v24.0 (changelog); messaging_limit_tier is deprecated.",
    ),
    # Source: https://github.com/PipedreamHQ/pipedream/issues/9004 (as seen by users: the same
    # error, HTTP 400, on node type (Business)); https://developers.facebook.com/docs/graph-api/guides/error-handling
    Fixture(
        name="phone_nonexisting_field",
        call="phone_number",
        request=phone(PHONE_NUMBER_ID, "v25.0", "display_name"),
        response=Response(
            400,
            {
                "error": {
                    "message": "(#100) Tried accessing nonexisting field (display_name) on "
                    "node type (WhatsAppBusinessPhoneNumber)",
                    "type": "OAuthException",
                    "code": 100,
                    "fbtrace_id": "AZwsqIu9s-AdksGdQXIH5hs",
                }
            },
        ),
        source="https://github.com/PipedreamHQ/pipedream/issues/9004",
        source_kind="observed",
        observed="https://github.com/PipedreamHQ/pipedream/issues/9004",
        derived="The report's envelope is for field (message_templates) on node type "
        "(Business); field and node type are put in for a phone number node (display_name is "
        "not a phone number field: the name is verified_name). Projects' tests quote this "
        "exact text for (WhatsAppBusinessPhoneNumber).",
    ),
    # Source: https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/phone-numbers
    Fixture(
        name="waba_phone_numbers",
        call="waba_phone_numbers",
        request=phone_numbers(),
        response=Response(
            200,
            {
                "data": [
                    {
                        "verified_name": "Jasper's Market",
                        "display_phone_number": "+1 631-555-5555",
                        "id": "1906385232743451",
                        "quality_rating": "GREEN",
                    },
                    {
                        "verified_name": "Jasper's Ice Cream",
                        "display_phone_number": "+1 631-555-5556",
                        "id": "1913623884432103",
                        "quality_rating": "NA",
                    },
                ]
            },
        ),
        source=PHONE_NUMBERS_GUIDE,
        source_kind="meta-doc",
        seen_via=GUIDE_SEEN,
        notes="No paging object in this example.",
    ),
    # Source: https://developers.facebook.com/documentation/business-messaging/whatsapp/solution-providers/manage-phone-numbers
    Fixture(
        name="waba_phone_numbers_paging",
        call="waba_phone_numbers",
        request=phone_numbers(
            filtering='[{"field":"account_mode","operator":"EQUAL","value":"SANDBOX"}]'
        ),
        response=Response(
            200,
            {
                "data": [
                    {
                        "id": "1972385232742141",
                        "display_phone_number": "+1 631-555-1111",
                        "verified_name": "John\u2019s Cake Shop",
                        "quality_rating": "UNKNOWN",
                    }
                ],
                "paging": {"cursors": {"before": "abcdefghij", "after": "klmnopqr"}},
            },
        ),
        source=MANAGE_PHONE_NUMBERS,
        source_kind="meta-doc",
        seen_via=YVFL + " docs/parceiros/gerenciamento/gerenciar_ativos_do_cliente/"
        "numeros_de_telefone/manage_phone_numbers.md (2025-12-20)",
        notes="The page's JSON has a trailing comma and a missing comma (fixed here). "
        "Cursors only, no `next`: the last page.",
    ),
]
