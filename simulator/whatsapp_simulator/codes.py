"""Meta's error codes as the simulator answers them: message, details and HTTP status.

Sources (docs/simulator.md has the confirmed/UNCONFIRMED row for each):
- Cloud API error codes, with an "HTTP status code" column per code:
  https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes
- Graph API error handling (envelope, OAuthException, `WWW-Authenticate`):
  https://developers.facebook.com/docs/graph-api/guides/error-handling
Meta says to decide by `code`, not by HTTP status; the status is still what clients see.
"""

from __future__ import annotations

from dataclasses import dataclass

ERROR_CODES_URL = (
    "https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes"
)
OAUTH = "OAuthException"
GRAPH_METHOD = "GraphMethodException"


@dataclass(frozen=True)
class Code:
    """One Meta error: the `message` title, the `error_data.details` text, the HTTP status."""

    message: str
    status: int
    details: str = ""


# `message` is "(#code) title" ("message: Combination of the error code and its title. For
# example: (#130429) Rate limit hit"), `details` the row's description, `status` the row's
# "HTTP status code". Rows as read from the page's revisions: English titles from an older
# revision (scribd.com/document/733119031), HTTP statuses from the 2026-01 revision
# (github.com/yvfl/api-whatsapp-docs docs/suporte/error_codes.md), details from the 2026-09
# English page (the same table as tests/contract/fixtures_errors.py).


def _row(code: int, title: str, details: str, status: int) -> tuple[int, Code]:
    return code, Code(f"(#{code}) {title}", status, details)


PERMISSION = "Permission is either not granted or has been removed."
CODES: dict[int, Code] = dict(
    [
        # Authorization errors
        _row(0, "AuthException", "We were unable to authenticate the app user.", 401),
        _row(3, "API Method", "Capability or permissions issue.", 500),
        _row(10, "Permission Denied", PERMISSION, 403),
        _row(190, "Access token has expired", "Your access token has expired.", 401),
        _row(200, "API Permission", PERMISSION, 403),
        # Integrity errors. 130497 has no English title on the page; users saw this one.
        _row(
            368,
            "Temporarily blocked for policies violations",
            "The WhatsApp Business Account associated with the app has been restricted or "
            "disabled for violating a platform policy.",
            403,
        ),
        _row(
            130497,
            "Business account is restricted from messaging users in this country.",
            "The WhatsApp Business Account is restricted from messaging to users in certain "
            "countries.",
            403,
        ),
        _row(
            131031,
            "Account has been locked",
            "The WhatsApp Business Account associated with the app has been restricted or "
            "disabled for violating a platform policy, or we were unable to verify data "
            "included in the request against data set on the WhatsApp Business Account (e.g, "
            "the two-step pin included in the request is incorrect).",
            403,
        ),
        # Throttling errors (users also saw 429: config `throttle_http_status`)
        _row(4, "API Too Many Calls", "The app has reached its API call rate limit.", 400),
        _row(
            80007,
            "Rate limit issues",
            "The WhatsApp Business Account has reached its rate limit.",
            400,
        ),
        _row(
            80008,
            "There have been too many calls to this WhatsApp Business account. Wait a bit and "
            "try again. For more info, please refer to "
            "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
            "There have been too many calls to this WhatsApp Business account.",
            400,
        ),
        _row(130429, "Rate limit hit", "Cloud API message throughput has been reached.", 400),
        _row(
            131048,
            "Spam rate limit hit",
            "Message failed to send because there are restrictions on how many messages can "
            "be sent from this phone number. This may be because too many previous messages "
            "were blocked or flagged as spam.",
            400,
        ),
        _row(
            131056,
            "(Business Account, Consumer Account) pair rate limit hit",
            "Too many messages sent from the sender phone number to the same recipient phone "
            "number in a short period of time.",
            400,
        ),
        _row(
            133016,
            "Account register deregister rate limit exceeded",
            "Registration or Deregistration failed because there were too many attempts for "
            "this phone number in a short period of time",
            400,
        ),
        # Other errors
        _row(1, "API Unknown", "Invalid request or possible server error.", 400),
        _row(2, "API Service", "Temporary due to downtime or due to being overloaded.", 503),
        _row(
            33, "Parameter value is not valid", "The business phone number has been deleted.", 400
        ),
        _row(
            100,
            "Invalid parameter",
            "The request included one or more unsupported or misspelled parameters.",
            400,
        ),
        _row(
            130472,
            "User's number is part of an experiment",
            "Message was not sent as part of an experiment.",
            400,
        ),
        _row(
            131000, "Something went wrong", "Message failed to send due to an unknown error.", 500
        ),
        _row(131005, "Access denied", PERMISSION, 403),
        _row(
            131008,
            "Required parameter is missing",
            "The request is missing a required parameter.",
            400,
        ),
        _row(
            131009, "Parameter value is not valid", "One or more parameter values are invalid.", 400
        ),
        _row(131016, "Service unavailable", "A service is temporarily unavailable.", 500),
        _row(
            131021,
            "Recipient cannot be sender",
            "Sender and recipient phone number is the same.",
            400,
        ),
        _row(131026, "Message Undeliverable", "Unable to deliver message.", 400),
        # 131037: no English title on the page; this wording is UNCONFIRMED
        _row(
            131037,
            "WhatsApp provided number needs display name approval before message can be sent.",
            "The 555 business phone number used to send the request does not have an "
            "approved display name.",
            400,
        ),
        _row(
            131042,
            "Business eligibility payment issue",
            "There was an error related to your payment method.",
            400,
        ),
        _row(
            131045,
            "Incorrect certificate",
            "Message failed to send due to a phone number registration error.",
            500,
        ),
        _row(
            131047,
            "Re-engagement message",
            "More than 24 hours have passed since the recipient last replied to the sender number.",
            400,
        ),
        _row(131051, "Unsupported message type", "Unsupported message type.", 400),
        _row(131053, "Media upload error", "Unable to upload the media used in the message.", 400),
        _row(131057, "Account in maintenance mode", "Business Account is in maintenance mode", 500),
        _row(
            132000,
            "Template Param Count Mismatch",
            "The number of variable parameter values included in the request did not match "
            "the number of variable parameters defined in the template.",
            400,
        ),
        _row(
            132001,
            "Template does not exist",
            "The template does not exist in the specified language or the template has not "
            "been approved.",
            404,
        ),
        _row(132005, "Template Hydrated Text Too Long", "Translated text is too long.", 400),
        _row(
            132007,
            "Template Format Character Policy Violated",
            "Template content violates a WhatsApp policy.",
            400,
        ),
        _row(
            132012,
            "Template Parameter Format Mismatch",
            "Variable parameter values formatted incorrectly.",
            400,
        ),
        _row(
            132015,
            "Template is Paused",
            "Template is paused due to low quality so it cannot be sent in a template message.",
            400,
        ),
        _row(
            132016,
            "Template is Disabled",
            "Template has been paused too many times due to low quality and is now "
            "permanently disabled.",
            400,
        ),
        _row(132068, "Flow is blocked", "Flow is in blocked state.", 400),
        _row(
            132069,
            "Flow is throttled",
            "Flow is in throttled state and 10 messages using this flow were already sent in "
            "the last hour.",
            400,
        ),
        _row(133000, "Incomplete Deregistration", "A previous deregistration attempt failed.", 500),
        _row(133004, "Server Temporarily Unavailable", "Server is temporarily unavailable.", 503),
        _row(
            133005,
            "Two step verification PIN Mismatch",
            "Two-step verification PIN incorrect.",
            400,
        ),
        _row(
            133006,
            "Phone number re-verification needed",
            "Phone number needs to be verified before registering.",
            400,
        ),
        _row(
            133008,
            "Too Many two step verification PIN Guesses",
            "Too many two-step verification PIN guesses for this phone number.",
            400,
        ),
        _row(
            133009,
            "Two step verification PIN Guessed Too Fast",
            "Two-step verification PIN was entered too quickly.",
            400,
        ),
        _row(
            133010,
            "Phone number Not Registered",
            "Phone number not registered on the WhatsApp Business Platform.",
            400,
        ),
        _row(
            133015,
            "Please wait a few minutes before attempting to register this phone number",
            "The phone number you are attempting to register was recently deleted, and "
            "deletion has not yet completed.",
            400,
        ),
        _row(
            135000,
            "Generic user error",
            "Message failed to send because of an unknown error with your request parameters.",
            400,
        ),
    ]
)
# Rows without an English title on the page (the title here repeats the details; UNCONFIRMED)
for _code, _details, _status in (
    (
        130403,
        "Unable to deliver the message. This business has blocked the end user on WhatsApp",
        400,
    ),
    (131049, "This message was not delivered to maintain healthy ecosystem engagement.", 400),
    (
        131050,
        "Unable to deliver the message. This recipient has chosen to stop receiving marketing "
        "messages on WhatsApp from your business.",
        400,
    ),
    (
        131064,
        "Message failed to send because this account has reached its messaging limit due to "
        "template classification violations. This applies to both template messages and "
        "direct send messages.",
        400,
    ),
    (
        134011,
        "Message failed to send because WhatsApp Payments terms of service acceptance is "
        "pending for this WhatsApp Business Account.",
        400,
    ),
):
    CODES[_code] = Code(f"(#{_code}) {_details}", _status, _details)
# 131030 (test numbers' allowed list) as users saw it, HTTP 400 (Neurotech-HQ/heyoo#94)
CODES[131030] = Code(
    "(#131030) Recipient phone number not in allowed list",
    400,
    "Recipient phone number not in allowed list: Add recipient phone number to recipient list "
    "and try again.",
)
# Graph codes outside the Cloud API table, as users saw them: 104 with HTTP 400
# (pellaeon/fb-post-bulk-privacy-edit#2, node-facebook/facebook-node-sdk#105); 2500
# "Unknown path components: ..." with HTTP 400 (arsduo/koala#611). 102 and 101: UNCONFIRMED.
CODES[104] = Code("An access token is required to request this resource.", 400)
CODES[102] = Code("Session key invalid or no longer valid", 401)
CODES[101] = Code("Error validating application. Invalid application ID.", 400)
CODES[2500] = Code("Unknown path components", 400)
PERMISSION_RANGE = range(200, 300)


def lookup(code: int) -> Code:
    """Meta's entry for `code`; unknown codes get a generic title and HTTP 400."""
    found = CODES.get(code)
    if found is not None:
        return found
    if code in PERMISSION_RANGE:  # "200-299 API Permission", 403
        return Code(f"(#{code}) API Permission", 403, PERMISSION)
    return Code(f"(#{code}) Simulated error", 400)


def www_authenticate(code: int, message: str) -> str:
    """Graph's `WWW-Authenticate` value on OAuthException errors.

    Users saw `OAuth "Facebook Platform" "invalid_token" "..."` for 190 and
    `"invalid_request" "(#100) Invalid parameter"` for a 400 (botpress/messaging#676,
    daroczig/fbRads#74).
    """
    kind = "invalid_token" if code in (190, 102) else "invalid_request"
    return f'OAuth "Facebook Platform" "{kind}" "{message}"'
