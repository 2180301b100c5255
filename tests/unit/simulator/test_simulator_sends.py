"""Graph API simulator: send bodies validated as Meta validates them, where `to` lands, and
Meta's enforcement states. Messages reference:
https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from whatsapp_simulator import RunningSimulator, SimState, apply_seed
from whatsapp_simulator.numbers import country_calling_code, wa_id_for

APP, SECRET = "1111111111", "demo-app-secret"
WABA, PHONE, UK_PHONE = "102290129340398", "106540352242922", "106540352242999"
TOKEN = "EAAsendsToken"
SCOPES = ["whatsapp_business_management", "whatsapp_business_messaging"]
WORLD: dict[str, Any] = {
    "apps": [{"id": APP, "secret": SECRET}],
    "phones": [
        {"id": PHONE, "waba_id": WABA, "display_phone_number": "+1 555-0100", "pair_limit": False},
        {"id": UK_PHONE, "waba_id": WABA, "display_phone_number": "+44 7700 900000"},
    ],
    "tokens": [{"token": TOKEN, "app_id": APP, "scopes": SCOPES}],
}
TO = "+16505550123"


# sim and http: conftest.py (http on /v25.0)
@pytest.fixture
def sim_state() -> SimState:
    return apply_seed(SimState(), WORLD)


@pytest.fixture
def http_token() -> str:
    return TOKEN


def msg(kind: str, content: Any, **top: Any) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": TO, "type": kind, kind: content, **top}


def buttons(*titles: str) -> dict[str, Any]:
    return {
        "type": "button",
        "body": {"text": "Pick one"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": f"b{i}", "title": t}}
                for i, t in enumerate(titles)
            ]
        },
    }


def listing(
    rows: int = 1, title: str = "Row", description: str = "", button: str = "See"
) -> dict[str, Any]:
    row = {"id": "r", "title": title, **({"description": description} if description else {})}
    return {
        "type": "list",
        "body": {"text": "Choose"},
        "action": {"button": button, "sections": [{"title": "S", "rows": [row] * rows}]},
    }


TEMPLATE = {"name": "hello_world", "language": {"code": "en_US"}}
ACCEPTED = [
    ("text at 4096", msg("text", {"body": "x" * 4096, "preview_url": True})),
    ("type omitted is text", {"messaging_product": "whatsapp", "to": TO, "text": {"body": "x"}}),
    ("recipient_type individual", msg("text", {"body": "x"}, recipient_type="individual")),
    ("reply context", msg("text", {"body": "x"}, context={"message_id": "wamid.A"})),
    ("opaque data at 512", msg("text", {"body": "x"}, biz_opaque_callback_data="d" * 512)),
    ("image by id, caption 1024", msg("image", {"id": "1", "caption": "c" * 1024})),
    ("image by link", msg("image", {"link": "https://example.com/a.png"})),
    ("document with filename", msg("document", {"id": "1", "filename": "a.pdf", "caption": "c"})),
    ("audio", msg("audio", {"id": "1"})),
    ("video", msg("video", {"link": "https://example.com/a.mp4", "caption": "c"})),
    ("sticker", msg("sticker", {"id": "1"})),
    ("location", msg("location", {"latitude": 37.48, "longitude": "-122.14", "name": "HQ"})),
    (
        "contacts",
        msg(
            "contacts",
            [
                {
                    "name": {"formatted_name": "Ann", "first_name": "Ann"},
                    "phones": [{"phone": "+1 555", "type": "WORK"}],
                }
            ],
        ),
    ),
    ("reaction", msg("reaction", {"message_id": "wamid.A", "emoji": "\U0001f600"})),
    ("reaction removed", msg("reaction", {"message_id": "wamid.A", "emoji": ""})),
    (
        "template",
        msg(
            "template",
            {
                **TEMPLATE,
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ann"}]}],
            },
        ),
    ),
    ("3 buttons of 20", msg("interactive", buttons("a" * 20, "b", "c"))),
    ("list of 10 rows", msg("interactive", listing(rows=10, title="t" * 24, description="d" * 72))),
    (
        "cta_url",
        msg(
            "interactive",
            {
                "type": "cta_url",
                "body": {"text": "Go"},
                "action": {
                    "name": "cta_url",
                    "parameters": {"display_text": "Open", "url": "https://x.y"},
                },
            },
        ),
    ),
    (
        "interactive header 60, footer 60",
        msg(
            "interactive",
            {
                **buttons("a"),
                "header": {"type": "text", "text": "h" * 60},
                "footer": {"text": "f" * 60},
            },
        ),
    ),
]


@pytest.mark.parametrize(("case", "body"), ACCEPTED, ids=[c for c, _ in ACCEPTED])
async def test_meta_accepts(http: httpx.AsyncClient, case: str, body: dict[str, Any]) -> None:
    response = await http.post(f"/{PHONE}/messages", json=body)
    assert response.status_code == 200, (case, response.text)


INVALID = "(#100) Invalid parameter"
NOT_VALID = "(#131009) Parameter value is not valid"
REJECTED: list[tuple[str, Any, int, str, str | None]] = [
    # (case, body, code, message, details)
    (
        "product missing",
        {"to": TO, "type": "text", "text": {"body": "x"}},
        100,
        "(#100) The parameter messaging_product is required.",
        None,
    ),
    (
        "product wrong",
        {**msg("text", {"body": "x"}), "messaging_product": "sms"},
        100,
        '(#100) Param messaging_product must be one of {WHATSAPP} - got "sms".',
        None,
    ),
    (
        "to missing",
        {"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}},
        100,
        "(#100) The parameter to is required.",
        None,
    ),
    (
        "unknown type",
        msg("jpeg", {}),
        100,
        "(#100) Param type must be one of {AUDIO, CONTACTS, DOCUMENT, GIF, IMAGE, INTERACTIVE, "
        'LINK_PREVIEW, LOCATION, PIN, REACTION, STICKER, TEMPLATE, TEXT, VIDEO} - got "jpeg".',
        None,
    ),
    (
        "recipient_type wrong",
        msg("text", {"body": "x"}, recipient_type="broadcast"),
        100,
        '(#100) Param recipient_type must be one of {GROUP, INDIVIDUAL} - got "broadcast".',
        None,
    ),
    (
        "object missing",
        {"messaging_product": "whatsapp", "to": TO, "type": "image"},
        100,
        "(#100) The parameter image is required.",
        None,
    ),
    (
        "text body missing",
        msg("text", {}),
        100,
        "(#100) The parameter text['body'] is required.",
        None,
    ),
    (
        "text body too long",
        msg("text", {"body": "x" * 4097}),
        100,
        "(#100) Param text['body'] must be at most 4096 characters long.",
        None,
    ),
    (
        "caption on audio",
        msg("audio", {"id": "1", "caption": "c"}),
        100,
        '(#100) Unexpected key "caption" on param "audio".',
        None,
    ),
    (
        "filename on image",
        msg("image", {"id": "1", "filename": "a"}),
        100,
        '(#100) Unexpected key "filename" on param "image".',
        None,
    ),
    (
        "caption too long",
        msg("image", {"id": "1", "caption": "c" * 1025}),
        100,
        "(#100) Param image['caption'] must be at most 1024 characters long.",
        None,
    ),
    (
        "unknown top-level key",
        msg("text", {"body": "x"}, previewUrl=True),
        100,
        '(#100) Unexpected key "previewUrl" on param "message".',
        None,
    ),
    (
        "opaque data too long",
        msg("text", {"body": "x"}, biz_opaque_callback_data="d" * 513),
        100,
        "(#100) Param biz_opaque_callback_data must be at most 512 characters long.",
        None,
    ),
    (
        "context without message_id",
        msg("text", {"body": "x"}, context={}),
        100,
        "(#100) The parameter context['message_id'] is required.",
        None,
    ),
    (
        "location without latitude",
        msg("location", {"longitude": 1}),
        100,
        "(#100) The parameter location['latitude'] is required.",
        None,
    ),
    (
        "contact without formatted_name",
        msg("contacts", [{"name": {"first_name": "A"}}]),
        100,
        "(#100) The parameter contacts[0]['name']['formatted_name'] is required.",
        None,
    ),
    (
        "reaction without message_id",
        msg("reaction", {"emoji": "x"}),
        100,
        "(#100) The parameter reaction['message_id'] is required.",
        None,
    ),
    (
        "template without language",
        msg("template", {"name": "t"}),
        100,
        "(#100) The parameter template['language'] is required.",
        None,
    ),
    (
        "template text parameter empty",
        msg(
            "template",
            {**TEMPLATE, "components": [{"type": "body", "parameters": [{"type": "text"}]}]},
        ),
        100,
        INVALID,
        "Parameter 'text' is mandatory for component parameter type 'text'",
    ),
    (
        "button title 21",
        msg("interactive", buttons("a" * 21)),
        131009,
        NOT_VALID,
        "Button title length invalid. Min length: 1, Max length: 20",
    ),
    (
        "4 buttons",
        msg("interactive", buttons("a", "b", "c", "d")),
        131009,
        NOT_VALID,
        "Invalid buttons count. Min allowed buttons: 1, Max allowed buttons: 3",
    ),
    (
        "row title 25",
        msg("interactive", listing(title="t" * 25)),
        131009,
        NOT_VALID,
        "Row title length invalid. Min length: 1, Max length: 24",
    ),
    (
        "row description 73",
        msg("interactive", listing(description="d" * 73)),
        131009,
        NOT_VALID,
        "Row description length invalid. Min length: 0, Max length: 72",
    ),
    (
        "11 rows",
        msg("interactive", listing(rows=11)),
        131009,
        NOT_VALID,
        "Invalid rows count. Min allowed rows: 1, Max allowed rows: 10 - got 11",
    ),
    (
        "list button 21",
        msg("interactive", listing(button="b" * 21)),
        131009,
        NOT_VALID,
        "Button text length invalid. Min length: 1, Max length: 20",
    ),
    (
        "body 1025",
        msg("interactive", {**buttons("a"), "body": {"text": "b" * 1025}}),
        131009,
        NOT_VALID,
        "Body text length invalid. Min length: 1, Max length: 1024",
    ),
    (
        "header 61",
        msg("interactive", {**buttons("a"), "header": {"type": "text", "text": "h" * 61}}),
        131009,
        NOT_VALID,
        "Header text length invalid. Min length: 1, Max length: 60",
    ),
    (
        "footer 61",
        msg("interactive", {**buttons("a"), "footer": {"text": "f" * 61}}),
        131009,
        NOT_VALID,
        "Footer text length invalid. Min length: 1, Max length: 60",
    ),
    (
        "interactive type unknown",
        msg("interactive", {"type": "poll", "action": {}}),
        100,
        "(#100) Param interactive['type'] must be one of {ADDRESS_MESSAGE, BUTTON, "
        "CALL_PERMISSION_REQUEST, CAROUSEL, CATALOG_MESSAGE, CTA_URL, FLOW, LIST, "
        'LOCATION_REQUEST_MESSAGE, PRODUCT, PRODUCT_LIST, VOICE_CALL} - got "poll".',
        None,
    ),
    ("not an object", ["whatsapp"], 100, "(#100) The request body must be a JSON object", None),
]


@pytest.mark.parametrize(
    ("case", "body", "code", "message", "details"), REJECTED, ids=[r[0] for r in REJECTED]
)
async def test_meta_rejects(
    sim: RunningSimulator,
    http: httpx.AsyncClient,
    case: str,
    body: Any,
    code: int,
    message: str,
    details: str | None,
) -> None:
    response = await http.post(f"/{PHONE}/messages", json=body)
    assert response.status_code == 400, case
    err = response.json()["error"]
    assert (err["code"], err["message"], err["type"]) == (code, message, "OAuthException")
    if details is not None:
        assert err["error_data"]["details"] == details
    assert sim.state.messages == []


async def test_top_level_strictness_can_be_turned_off(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    await http.put(f"{sim.admin_url}/config", json={"strict_top_level_keys": False})
    response = await http.post(f"/{PHONE}/messages", json=msg("text", {"body": "x"}, extra=1))
    assert response.status_code == 200


async def test_template_send_says_accepted_or_held(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    # https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/template-pacing
    body = (await http.post(f"/{PHONE}/messages", json=msg("template", TEMPLATE))).json()
    assert body["messages"][0]["message_status"] == "accepted"
    await http.put(f"{sim.admin_url}/config", json={"held_templates": ["hello_world"]})
    body = (await http.post(f"/{PHONE}/messages", json=msg("template", TEMPLATE))).json()
    assert body["messages"][0]["message_status"] == "held_for_quality_assessment"


async def test_mark_as_read_shares_the_endpoint(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    # https://developers.facebook.com/docs/whatsapp/cloud-api/guides/mark-message-as-read
    read = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.A"}
    assert (await http.post(f"/{PHONE}/messages", json=read)).json() == {"success": True}
    typing = {**read, "typing_indicator": {"type": "text"}}
    assert (await http.post(f"/{PHONE}/messages", json=typing)).json() == {"success": True}
    assert sim.state.messages == []


# --- where `to` lands ------------------------------------------------------------------------
# https://developers.facebook.com/docs/whatsapp/cloud-api/reference/phone-numbers#phone-number-formats


@pytest.mark.parametrize(
    ("phone", "to", "wa_id"),
    [
        (PHONE, "447700900123", "1447700900123"),  # no plus: the sender's +1 is prepended
        (PHONE, "+447700900123", "447700900123"),
        (PHONE, "+1 (650) 555-0123", "16505550123"),
        (PHONE, "16505550123", "16505550123"),  # dialled in the US: 1 is the trunk prefix
        (PHONE, "919876543220", "1919876543220"),  # the seed producers' India number
        (UK_PHONE, "07700900123", "447700900123"),  # UK trunk prefix 0
        (UK_PHONE, "447700900123", "447700900123"),  # its own country code again
        (UK_PHONE, "7700900123", "447700900123"),
        (UK_PHONE, "+16505550123", "16505550123"),
    ],
)
async def test_to_reaches_the_wa_id_meta_derives(
    sim: RunningSimulator, http: httpx.AsyncClient, phone: str, to: str, wa_id: str
) -> None:
    response = await http.post(f"/{phone}/messages", json={**msg("text", {"body": "x"}), "to": to})
    assert response.json()["contacts"] == [{"input": to, "wa_id": wa_id}]
    [message] = sim.state.messages
    assert (message.to, message.wa_id) == (to, wa_id)
    listed = (await http.get(f"{sim.admin_url}/messages", params={"wa_id": wa_id})).json()[
        "messages"
    ]
    assert [m["to"] for m in listed] == [to]


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("+1 555-0100", "1"),
        ("+44 7700 900000", "44"),
        ("+91 98765 43210", "91"),
        ("+880 1712 345678", "880"),
        ("+7 900 000", "7"),
        ("", ""),
    ],
)
def test_country_calling_code(number: str, code: str) -> None:
    assert country_calling_code(number) == code


def test_no_display_number_means_no_prefix() -> None:
    assert wa_id_for("919876543220", "") == "919876543220"


# --- enforcement states --------------------------------------------------------------------
# https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes
# https://developers.facebook.com/docs/whatsapp/cloud-api/health-status

ENFORCEMENTS = [
    # (code, HTTP status, message, entity, health)
    (368, 403, "(#368) Temporarily blocked for policies violations", "WABA", "BLOCKED"),
    (
        130497,
        403,
        "(#130497) Business account is restricted from messaging users in this country.",
        "WABA",
        "LIMITED",
    ),
    (131031, 403, "(#131031) Account has been locked", "WABA", "BLOCKED"),
    (131042, 400, "(#131042) Business eligibility payment issue", "WABA", "BLOCKED"),
    (131048, 400, "(#131048) Spam rate limit hit", "PHONE_NUMBER", "BLOCKED"),
    (
        131037,
        400,
        "(#131037) WhatsApp provided number needs display name approval before message can "
        "be sent.",
        "PHONE_NUMBER",
        "BLOCKED",
    ),
    (131045, 500, "(#131045) Incorrect certificate", "PHONE_NUMBER", "BLOCKED"),
    (133010, 400, "(#133010) Phone number Not Registered", "PHONE_NUMBER", "BLOCKED"),
]


async def health(http: httpx.AsyncClient, phone: str = PHONE) -> dict[str, Any]:
    body = (await http.get(f"/{phone}", params={"fields": "health_status"})).json()
    result: dict[str, Any] = body["health_status"]
    return result


@pytest.mark.parametrize(("code", "status", "message", "entity", "state"), ENFORCEMENTS)
async def test_enforcement_blocks_sends_and_shows_in_health(
    sim: RunningSimulator,
    http: httpx.AsyncClient,
    code: int,
    status: int,
    message: str,
    entity: str,
    state: str,
) -> None:
    assert (
        await http.put(f"{sim.admin_url}/phones/{PHONE}/enforcement", json={"code": code})
    ).status_code == 200
    response = await http.post(f"/{PHONE}/messages", json=msg("text", {"body": "x"}))
    err = response.json()["error"]
    assert (response.status_code, err["code"], err["message"]) == (status, code, message)
    assert err["error_data"]["details"]
    status_now = await health(http)
    assert status_now["can_send_message"] == state
    [named] = [e for e in status_now["entities"] if e["entity_type"] == entity]
    assert named["can_send_message"] == state
    if state == "BLOCKED":
        assert named["errors"][0]["error_code"] == code
    else:
        assert named["additional_info"]
    await http.delete(f"{sim.admin_url}/phones/{PHONE}/enforcement")
    assert (
        await http.post(f"/{PHONE}/messages", json=msg("text", {"body": "x"}))
    ).status_code == 200
    assert (await health(http))["can_send_message"] == "AVAILABLE"


async def test_country_restriction_applies_to_its_countries(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    body = {"code": 130497, "countries": ["+55"]}
    await http.put(f"{sim.admin_url}/phones/{PHONE}/enforcement", json=body)
    brazil = await http.post(
        f"/{PHONE}/messages", json={**msg("text", {"body": "x"}), "to": "+5511987654321"}
    )
    assert brazil.json()["error"]["code"] == 130497
    assert (
        await http.post(f"/{PHONE}/messages", json=msg("text", {"body": "x"}))
    ).status_code == 200


async def test_waba_enforcement_blocks_every_number(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    await http.put(
        f"{sim.admin_url}/wabas/{WABA}/enforcement", json={"code": 131031, "details": "locked"}
    )
    for phone in (PHONE, UK_PHONE):
        err = (await http.post(f"/{phone}/messages", json=msg("text", {"body": "x"}))).json()[
            "error"
        ]
        assert (err["code"], err["error_data"]["details"]) == (131031, "locked")
        assert (await health(http, phone))["entities"][1]["errors"][0][
            "error_description"
        ] == "locked"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        (f"/phones/{PHONE}/enforcement", {"code": 131000}, 400),
        ("/phones/nope/enforcement", {"code": 368}, 404),
        ("/wabas/nope/enforcement", {"code": 368}, 404),
    ],
)
async def test_bad_enforcement_requests(
    sim: RunningSimulator, http: httpx.AsyncClient, path: str, body: dict[str, Any], status: int
) -> None:
    assert (await http.put(sim.admin_url + path, json=body)).status_code == status


def test_enforcement_from_a_seed() -> None:
    state = apply_seed(
        SimState(), {**WORLD, "phones": [{**WORLD["phones"][0], "enforcement": {"code": 368}}]}
    )
    enforcement = state.phones[PHONE].enforcement
    assert enforcement is not None
    assert enforcement.code == 368


async def test_unregistered_sender_is_133010_when_required(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    await http.put(f"{sim.admin_url}/config", json={"require_registered_sender": True})
    err = (await http.post(f"/{PHONE}/messages", json=msg("text", {"body": "x"}))).json()["error"]
    assert err["code"] == 133010
    sim.state.phones[PHONE].registered = True
    assert (
        await http.post(f"/{PHONE}/messages", json=msg("text", {"body": "x"}))
    ).status_code == 200
