"""Error envelopes for every code in `whatsapp_graph.errors`, from Meta's error-codes page.

Meta documents one envelope (the page's "Example response", code 130429) and, per code, a
table row: code, title (older revisions), `details` text and HTTP status (revisions up to
early 2026). `table_error` puts a row into that documented envelope: `message` is
``(#code) title`` (the page: "message: Combination of the error code and its title. For
example: (#130429) Rate limit hit"), `type` is the example's ``OAuthException`` and
`error_data` carries ``messaging_product`` and the row's `details`. Where the English title
is not documented the envelope has no `message` and the tests do not compare it; where the
HTTP status is not documented `Response.status` is None.
"""

from __future__ import annotations

from typing import Any

from .corpus import (
    ERRORS_SEEN_EN,
    ERRORS_SEEN_STATUS,
    ERRORS_SEEN_TITLES,
    META_ERROR_CODES,
    PHONE_NUMBER_ID,
    WABA_ID,
    Call,
    Fixture,
    Request,
    Response,
)
from .fixtures_messages import TEXT_BODY, send

REGISTER = Request(
    "POST",
    "/{version}/{phone-number-id}/register",
    {"version": "v21.0", "phone-number-id": PHONE_NUMBER_ID},
    # The embedded-signup page's register example; "<DESIRED_PIN>" filled with a 6-digit pin.
    body={"messaging_product": "whatsapp", "pin": "123456"},
)
PHONE_NUMBERS = Request(
    "GET", "/{version}/{waba-id}/phone_numbers", {"version": "v24.0", "waba-id": WABA_ID}
)
SEND = send(TEXT_BODY)
TABLE_DERIVED = (
    "Row of the page's error table put into the page's documented envelope (module doc): "
    "details from the 2026-09 English page, HTTP status from the 2026-01 revision, title "
    "from the older English revision."
)


def table_error(
    code: int,
    title: str | None,
    details: str,
    status: int | None,
    call: Call = "send_message",
    *,
    notes: str = "",
) -> Fixture:
    error: dict[str, Any] = {}
    if title is not None:
        error["message"] = f"(#{code}) {title}"
    error["type"] = "OAuthException"
    error["code"] = code
    error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    request = {"register_number": REGISTER, "waba_phone_numbers": PHONE_NUMBERS}.get(call, SEND)
    return Fixture(
        name=f"error_{code}",
        call=call,
        request=request,
        response=Response(status, {"error": error}),
        source=META_ERROR_CODES,
        source_kind="meta-doc",
        seen_via="; ".join(
            (ERRORS_SEEN_EN, ERRORS_SEEN_STATUS, ERRORS_SEEN_TITLES if title else "")
        ).rstrip("; "),
        derived=TABLE_DERIVED,
        notes=notes,
        title=title,
    )


# Source: https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes
# (every row below; "Example response" for error_130429_example).
FIXTURES: list[Fixture] = [
    # The page's own example, verbatim.
    Fixture(
        name="error_130429_example",
        call="send_message",
        request=SEND,
        response=Response(
            400,
            {
                "error": {
                    "message": "(#130429) Rate limit hit",
                    "type": "OAuthException",
                    "code": 130429,
                    "error_data": {
                        "messaging_product": "whatsapp",
                        "details": "Cloud API message throughput has been reached.",
                    },
                    "error_subcode": 2494055,
                    "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
                }
            },
        ),
        source=META_ERROR_CODES,
        source_kind="meta-doc",
        seen_via=f"{ERRORS_SEEN_EN}; {ERRORS_SEEN_STATUS}",
        notes="The page marks error_subcode 'Deprecated. Will not be returned in v16.0+ "
        "responses', yet its example carries one. Status 400 from the table row.",
        title="Rate limit hit",
    ),
    # --- Authorization errors ---
    table_error(0, "AuthException", "We were unable to authenticate the app user.", 401),
    table_error(3, "API Method", "Capability or permissions issue.", 500),
    table_error(
        10, "Permission Denied", "Permission is either not granted or has been removed.", 403
    ),
    table_error(190, "Access token has expired", "Your access token has expired.", 401),
    table_error(
        200,
        "API Permission",
        "Permission is either not granted or has been removed.",
        403,
        notes="Row '200-299'. The 2026-09 page adds a second 200 row: no token on some GET "
        "endpoints, message 'Provide valid app ID'.",
    ),
    # --- Integrity errors ---
    table_error(
        368,
        "Temporarily blocked for policies violations",
        "The WhatsApp Business Account associated with the app has been restricted or "
        "disabled for violating a platform policy.",
        403,
    ),
    table_error(
        130497,
        None,
        "The WhatsApp Business Account is restricted from messaging to users in certain countries.",
        403,
        notes="English title not found (pt_BR: 'A conta comercial está impedida de enviar "
        "mensagens a usuários neste país.').",
    ),
    table_error(
        131031,
        "Account has been locked",
        "The WhatsApp Business Account associated with the app has been restricted or "
        "disabled for violating a platform policy, or we were unable to verify data included "
        "in the request against data set on the WhatsApp Business Account (e.g, the two-step "
        "pin included in the request is incorrect).",
        403,
    ),
    # --- Throttling errors ---
    table_error(
        4,
        "API Too Many Calls",
        "The app has reached its API call rate limit.",
        400,
        "waba_phone_numbers",
    ),
    table_error(
        80007,
        "Rate limit issues",
        "The WhatsApp Business Account has reached its rate limit.",
        400,
        "waba_phone_numbers",
    ),
    table_error(
        131048,
        "Spam rate limit hit",
        "Message failed to send because there are restrictions on how many messages can be "
        "sent from this phone number. This may be because too many previous messages were "
        "blocked or flagged as spam.",
        400,
    ),
    table_error(
        131056,
        "(Business Account, Consumer Account) pair rate limit hit",
        "Too many messages sent from the sender phone number to the same recipient phone "
        "number in a short period of time.",
        400,
        notes="Users report this code with HTTP 429 too (dualhook.com/docs/whatsapp-error-"
        "131056, learn.turn.io); Meta's table says 400.",
    ),
    table_error(
        133016,
        "Account register deregister rate limit exceeded",
        "Registration or Deregistration failed because there were too many attempts for this "
        "phone number in a short period of time",
        400,
        "register_number",
    ),
    table_error(
        131064,
        None,
        "Message failed to send because this account has reached its messaging limit due to "
        "template classification violations. This applies to both template messages and "
        "direct send messages.",
        None,
        notes="Only on the 2026-09 page: no title, no HTTP status documented.",
    ),
    # --- Other errors ---
    table_error(1, "API Unknown", "Invalid request or possible server error.", 400),
    table_error(2, "API Service", "Temporary due to downtime or due to being overloaded.", 503),
    table_error(
        100,
        "Invalid parameter",
        "The request included one or more unsupported or misspelled parameters.",
        400,
    ),
    table_error(
        130403,
        None,
        "Unable to deliver the message. This business has blocked the end user on WhatsApp",
        None,
        notes="Only on the 2026-09 page: no title, no HTTP status documented.",
    ),
    table_error(
        130472,
        "User's number is part of an experiment",
        "Message was not sent as part of an experiment.",
        400,
    ),
    table_error(
        131000, "Something went wrong", "Message failed to send due to an unknown error.", 500
    ),
    table_error(
        131005, "Access denied", "Permission is either not granted or has been removed.", 403
    ),
    table_error(
        131008, "Required parameter is missing", "The request is missing a required parameter.", 400
    ),
    table_error(
        131009, "Parameter value is not valid", "One or more parameter values are invalid.", 400
    ),
    table_error(131016, "Service unavailable", "A service is temporarily unavailable.", 500),
    table_error(
        131021, "Recipient cannot be sender", "Sender and recipient phone number is the same.", 400
    ),
    table_error(
        131026,
        "Message Undeliverable",
        "Unable to deliver message.",
        400,
        notes="details: the first sentence of the row; the row goes on with the list of "
        "reasons (not a WhatsApp number, terms not accepted, old client version).",
    ),
    table_error(
        131037,
        None,
        "The 555 business phone number used to send the request does not have an approved "
        "display name.",
        400,
        notes="English title not found (pt_BR row gives status 400).",
    ),
    table_error(
        131042,
        "Business eligibility payment issue",
        "There was an error related to your payment method.",
        400,
    ),
    table_error(
        131045,
        "Incorrect certificate",
        "Message failed to send due to a phone number registration error.",
        500,
    ),
    table_error(
        131047,
        "Re-engagement message",
        "More than 24 hours have passed since the recipient last replied to the sender number.",
        400,
    ),
    table_error(
        131049,
        None,
        "This message was not delivered to maintain healthy ecosystem engagement.",
        400,
        notes="English title not found (pt_BR: 'A Meta escolheu não entregar a mensagem.').",
    ),
    table_error(
        131050,
        None,
        "Unable to deliver the message. This recipient has chosen to stop receiving marketing "
        "messages on WhatsApp from your business.",
        400,
        notes="English title not found.",
    ),
    table_error(131051, "Unsupported message type", "Unsupported message type.", 400),
    table_error(
        131053, "Media upload error", "Unable to upload the media used in the message.", 400
    ),
    table_error(
        131057,
        "Account in maintenance mode",
        "Business Account is in maintenance mode",
        500,
        notes="The table reads '500 Bad Request' (sic).",
    ),
    table_error(
        132000,
        "Template Param Count Mismatch",
        "The number of variable parameter values included in the request did not match the "
        "number of variable parameters defined in the template.",
        400,
    ),
    table_error(
        132001,
        "Template does not exist",
        "The template does not exist in the specified language or the template has not been "
        "approved.",
        404,
    ),
    table_error(132005, "Template Hydrated Text Too Long", "Translated text is too long.", 400),
    table_error(
        132007,
        "Template Format Character Policy Violated",
        "Template content violates a WhatsApp policy.",
        400,
    ),
    table_error(
        132012,
        "Template Parameter Format Mismatch",
        "Variable parameter values formatted incorrectly.",
        400,
    ),
    table_error(
        132015,
        "Template is Paused",
        "Template is paused due to low quality so it cannot be sent in a template message.",
        400,
    ),
    table_error(
        132016,
        "Template is Disabled",
        "Template has been paused too many times due to low quality and is now permanently "
        "disabled.",
        400,
    ),
    table_error(132068, "Flow is blocked", "Flow is in blocked state.", 400),
    table_error(
        132069,
        "Flow is throttled",
        "Flow is in throttled state and 10 messages using this flow were already sent in the "
        "last hour.",
        400,
    ),
    table_error(
        133000,
        "Incomplete Deregistration",
        "A previous deregistration attempt failed.",
        500,
        "register_number",
    ),
    table_error(
        133004,
        "Server Temporarily Unavailable",
        "Server is temporarily unavailable.",
        503,
        "register_number",
    ),
    table_error(
        133005,
        "Two step verification PIN Mismatch",
        "Two-step verification PIN incorrect.",
        400,
        "register_number",
    ),
    table_error(
        133006,
        "Phone number re-verification needed",
        "Phone number needs to be verified before registering.",
        400,
        "register_number",
    ),
    table_error(
        133008,
        "Too Many two step verification PIN Guesses",
        "Too many two-step verification PIN guesses for this phone number.",
        400,
        "register_number",
    ),
    table_error(
        133009,
        "Two step verification PIN Guessed Too Fast",
        "Two-step verification PIN was entered too quickly.",
        400,
        "register_number",
    ),
    table_error(
        133010,
        "Phone number Not Registered",
        "Phone number not registered on the WhatsApp Business Platform.",
        400,
        "register_number",
    ),
    table_error(
        133015,
        "Please wait a few minutes before attempting to register this phone number",
        "The phone number you are attempting to register was recently deleted, and deletion "
        "has not yet completed.",
        400,
        "register_number",
    ),
    table_error(
        134011,
        None,
        "Message failed to send because WhatsApp Payments terms of service acceptance is "
        "pending for this WhatsApp Business Account.",
        400,
        notes="English title not found (pt_BR row gives status 400).",
    ),
    table_error(
        135000,
        "Generic user error",
        "Message failed to send because of an unknown error with your request parameters.",
        400,
    ),
    # Source: https://developers.facebook.com/docs/graph-api/reference/whats-app-business-account/message_templates/
    # ("Error Codes" table of a WhatsApp Business Account edge: "80008 | There have been too
    # many calls to this WhatsApp Business account. Wait a bit and try again. ...")
    Fixture(
        name="error_80008",
        call="waba_phone_numbers",
        request=PHONE_NUMBERS,
        response=Response(
            None,
            {
                "error": {
                    "message": "(#80008) There have been too many calls to this WhatsApp "
                    "Business account. Wait a bit and try again. For more info, please refer "
                    "to https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
                    "type": "OAuthException",
                    "code": 80008,
                }
            },
        ),
        source="https://developers.facebook.com/docs/graph-api/reference/"
        "whats-app-business-account/message_templates/",
        source_kind="meta-doc",
        derived="The edge's error table gives code and text only; the text is put in "
        "`message` as '(#code) text' like the other Graph errors. No HTTP status documented.",
    ),
    # Source: https://github.com/Neurotech-HQ/heyoo/issues/94 (as seen by users: status 400
    # and the whole envelope; 131030 is not on the current error-codes page).
    Fixture(
        name="error_131030",
        call="send_message",
        request=SEND,
        response=Response(
            400,
            {
                "error": {
                    "message": "(#131030) Recipient phone number not in allowed list",
                    "type": "OAuthException",
                    "code": 131030,
                    "error_data": {
                        "messaging_product": "whatsapp",
                        "details": "Recipient phone number not in allowed list: Add recipient "
                        "phone number to recipient list and try again.",
                    },
                }
            },
        ),
        source="https://github.com/Neurotech-HQ/heyoo/issues/94",
        source_kind="observed",
        observed="https://github.com/Neurotech-HQ/heyoo/issues/94",
        notes="fbtrace_id masked in the report.",
        title="Recipient phone number not in allowed list",
    ),
]
