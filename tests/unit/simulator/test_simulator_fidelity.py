"""Graph API simulator against Meta's documentation: node fields, paging, versions, HTTP
status per code, appsecret_proof, debug_token. Each case names the Meta page it follows
(docs/simulator.md has the full table)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from whatsapp_simulator import (
    ManualClock,
    RunningSimulator,
    SimState,
    apply_seed,
)
from whatsapp_simulator.auth import appsecret_proof
from whatsapp_simulator.codes import lookup
from whatsapp_simulator.nodes import PHONE_FIELDS, split_fields
from whatsapp_simulator.versions import VERSIONS, resolve

APP, SECRET = "1111111111", "demo-app-secret"
WABA, PHONE = "102290129340398", "106540352242922"
TOKEN = "EAAfidelityToken"
SCOPES = ["whatsapp_business_management", "whatsapp_business_messaging"]
TODAY = datetime(2026, 12, 7, 12, tzinfo=UTC).timestamp()  # the brief's "today"
DAY = 86400
NONEXISTING = (
    "(#100) Tried accessing nonexisting field ({}) on node type (WhatsAppBusinessPhoneNumber)"
)
WORLD: dict[str, Any] = {
    "apps": [{"id": APP, "secret": SECRET, "name": "Demo App"}],
    "wabas": [{"id": WABA, "name": "Demo WABA", "business_id": "506914307656634"}],
    "phones": [
        {"id": PHONE, "waba_id": WABA, "display_phone_number": "+1 555-0100"},
        *({"id": f"20000000000000{i}", "waba_id": WABA} for i in range(6)),
    ],
    "tokens": [
        {"token": TOKEN, "app_id": APP, "scopes": SCOPES},
        {
            "token": "EAAuser",
            "app_id": APP,
            "type": "USER",
            "user_id": "42",
            "scopes": [*SCOPES, "whatsapp_business_manage_events", "public_profile"],
            "targets": {"whatsapp_business_management": [WABA]},
        },
    ],
}


# sim and http: conftest.py
@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(TODAY)


@pytest.fixture
def sim_state(clock: ManualClock) -> SimState:
    return apply_seed(SimState(clock=clock), WORLD)


@pytest.fixture
def http_root() -> str:
    return ""


@pytest.fixture
def http_token() -> str:
    return TOKEN


def error(response: httpx.Response) -> dict[str, Any]:
    err: dict[str, Any] = response.json()["error"]
    return err


async def fields(http: httpx.AsyncClient, names: str, version: str = "v25.0") -> httpx.Response:
    return await http.get(f"/{version}/{PHONE}", params={"fields": names})


# --- the phone number node -----------------------------------------------------------------
# https://developers.facebook.com/docs/graph-api/reference/whats-app-business-account-to-number-current-status/

DOCUMENTED = sorted(set(PHONE_FIELDS) - {"messaging_limit_tier"})


@pytest.mark.parametrize("name", DOCUMENTED)
async def test_documented_fields_are_answered(http: httpx.AsyncClient, name: str) -> None:
    response = await fields(http, name)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == PHONE


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("whatsapp_business_account", "v25.0"),  # what the simulator used to serve
        ("bogus", "v25.0"),
        ("messaging_limit_tier", "v24.0"),  # deprecated: v23.0 and older only
        ("whatsapp_business_manager_messaging_limit", "v23.0"),  # v24.0 and newer only
    ],
)
async def test_other_fields_are_meta_100(http: httpx.AsyncClient, name: str, version: str) -> None:
    response = await fields(http, f"id,{name}", version)
    assert response.status_code == 400
    err = error(response)
    assert (err["code"], err["type"], err["message"]) == (
        100,
        "OAuthException",
        NONEXISTING.format(name),
    )
    assert err["fbtrace_id"]
    assert response.headers["WWW-Authenticate"] == (
        f'OAuth "Facebook Platform" "invalid_request" "{NONEXISTING.format(name)}"'
    )


async def test_messaging_limit_fields_by_version(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    # messaging_limit_tier is deprecated and comes back empty (david-lev/pywa#221)
    assert (await fields(http, "messaging_limit_tier", "v23.0")).json() == {"id": PHONE}
    sim.state.phones[PHONE].messaging_limit_tier = "TIER_1K"
    assert (await fields(http, "messaging_limit_tier", "v23.0")).json()[
        "messaging_limit_tier"
    ] == "TIER_1K"
    body = (await fields(http, "whatsapp_business_manager_messaging_limit", "v24.0")).json()
    assert body == {"whatsapp_business_manager_messaging_limit": "TIER_2K", "id": PHONE}


async def test_default_fields_of_node_and_edge(http: httpx.AsyncClient) -> None:
    # the phone number reference ("default_response") and the phone_numbers examples of
    # https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/phone-numbers
    node = (await http.get(f"/v25.0/{PHONE}")).json()
    assert set(node) == {"id", "display_phone_number", "verified_name", "quality_rating"}
    edge = (await http.get(f"/v25.0/{WABA}/phone_numbers")).json()["data"][0]
    assert set(edge) == {"verified_name", "display_phone_number", "id", "quality_rating"}
    asked = await http.get(f"/v25.0/{PHONE}", params={"fields": "last_onboarded_time"})
    assert asked.json()["last_onboarded_time"] == "2026-12-07T12:00:00+0000"


async def test_country_fields(http: httpx.AsyncClient) -> None:
    body = (await fields(http, "country_code,country_dial_code,username")).json()
    assert body == {"country_code": "US", "country_dial_code": "1", "id": PHONE}


OBA = "is_official_business_account"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"filtering": '[{"field":"account_mode","operator":"EQUAL","value":"SANDBOX"}]'}, 1),
        ({"filtering": '[{"field":"account_mode","operator":"NOT_EQUAL","value":"SANDBOX"}]'}, 6),
        ({"filtering": json.dumps([{"field": OBA, "operator": "EQUAL", "value": True}])}, 0),
        ({"sort": "creation_time.desc"}, 7),
    ],
)
async def test_edge_filtering_and_sort(
    sim: RunningSimulator, http: httpx.AsyncClient, query: dict[str, str], expected: int
) -> None:
    # Meta's OpenAPI spec, GET /{WABA-ID}/phone_numbers (`filtering`, `sort`)
    sim.state.phones["200000000000003"].account_mode = "SANDBOX"
    body = (await http.get(f"/v25.0/{WABA}/phone_numbers", params=query)).json()
    assert len(body["data"]) == expected
    if "sort" in query:
        assert body["data"][-1]["id"] == PHONE


@pytest.mark.parametrize(
    "query",
    [
        {"filtering": "not json"},
        {"filtering": '[{"field":"verified_name","operator":"EQUAL","value":"x"}]'},
        {"filtering": '[{"field":"account_mode","operator":"LIKE","value":"x"}]'},
        {"sort": "name.asc"},
    ],
)
async def test_edge_filtering_errors(http: httpx.AsyncClient, query: dict[str, str]) -> None:
    response = await http.get(f"/v25.0/{WABA}/phone_numbers", params=query)
    assert (response.status_code, error(response)["code"]) == (400, 100)


async def test_edge_items_refuse_unknown_fields(http: httpx.AsyncClient) -> None:
    response = await http.get(
        f"/v25.0/{WABA}/phone_numbers", params={"fields": "id,whatsapp_business_account"}
    )
    assert (response.status_code, error(response)["message"]) == (
        400,
        NONEXISTING.format("whatsapp_business_account"),
    )


async def test_healthy_number_health_status(http: httpx.AsyncClient) -> None:
    # https://developers.facebook.com/docs/whatsapp/cloud-api/health-status
    health = (await fields(http, "health_status")).json()["health_status"]
    assert health == {
        "can_send_message": "AVAILABLE",
        "entities": [
            {"entity_type": "PHONE_NUMBER", "id": PHONE, "can_send_message": "AVAILABLE"},
            {"entity_type": "WABA", "id": WABA, "can_send_message": "AVAILABLE"},
            {"entity_type": "BUSINESS", "id": "506914307656634", "can_send_message": "AVAILABLE"},
            {"entity_type": "APP", "id": APP, "can_send_message": "AVAILABLE"},
        ],
    }


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ("id,throughput{level}", ["id", "throughput"]),
        (" a , b{c,d{e}},f ", ["a", "b", "f"]),
        ("", []),
    ],
)
def test_field_expansion_is_read_by_top_level_name(raw: str, names: list[str]) -> None:
    # https://developers.facebook.com/docs/graph-api/guides/field-expansion
    assert split_fields(raw) == names


# --- paging ---------------------------------------------------------------------------------
# https://developers.facebook.com/docs/graph-api/results (cursor-based pagination)


async def test_phone_numbers_pages_with_next_links(http: httpx.AsyncClient) -> None:
    url: str | None = f"/v25.0/{WABA}/phone_numbers?fields=id&limit=3"
    pages: list[list[str]] = []
    while url:
        body = (await http.get(url)).json()
        pages.append([p["id"] for p in body["data"]])
        assert set(body["paging"]["cursors"]) == {"before", "after"}
        assert ("previous" in body["paging"]) == (len(pages) > 1)
        url = body["paging"].get("next")
    assert [len(p) for p in pages] == [3, 3, 1]
    assert pages[0][0] == PHONE
    assert len({i for p in pages for i in p}) == 7


async def test_before_cursor_and_bad_limit(http: httpx.AsyncClient) -> None:
    first = (await http.get(f"/v25.0/{WABA}/phone_numbers", params={"limit": "2"})).json()
    second = (
        await http.get(
            f"/v25.0/{WABA}/phone_numbers",
            params={"limit": "2", "after": first["paging"]["cursors"]["after"]},
        )
    ).json()
    back = (
        await http.get(
            f"/v25.0/{WABA}/phone_numbers",
            params={"limit": "2", "before": second["paging"]["cursors"]["before"]},
        )
    ).json()
    assert [p["id"] for p in back["data"]] == [p["id"] for p in first["data"]]
    response = await http.get(f"/v25.0/{WABA}/phone_numbers", params={"limit": "-1"})
    assert (response.status_code, error(response)["code"]) == (400, 100)


# --- versions --------------------------------------------------------------------------------
# https://developers.facebook.com/docs/apps/versions: an expired version is served as the
# oldest usable one; a segment that is no version is 2500 (what users saw)


@pytest.mark.parametrize(
    ("asked", "served"),
    [
        ("v26.0", "v26.0"),
        ("v25.0", "v25.0"),
        ("v21.0", "v21.0"),
        ("v20.0", "v21.0"),  # expired 2026-09-24
        ("v18.0", "v21.0"),
        ("v3.2", "v21.0"),
    ],
)
async def test_version_served(
    sim: RunningSimulator, http: httpx.AsyncClient, asked: str, served: str
) -> None:
    response = await http.get(f"/{asked}/{PHONE}")
    assert response.status_code == 200
    assert response.headers["facebook-api-version"] == served
    assert sim.state.versions[(asked, served)] == 1


@pytest.mark.parametrize("asked", ["v27.0", "v2.80", "v25", "25.0", "vX.0"])
async def test_unknown_version_is_2500(http: httpx.AsyncClient, asked: str) -> None:
    response = await http.get(f"/{asked}/{PHONE}/phone_numbers")
    assert response.status_code == 400
    assert (error(response)["code"], error(response)["message"]) == (
        2500,
        f"Unknown path components: /{PHONE}/phone_numbers",
    )
    assert "facebook-api-version" not in response.headers


async def test_the_clock_moves_versions_out(http: httpx.AsyncClient, clock: ManualClock) -> None:
    clock.now = datetime(2027, 1, 21, 23, tzinfo=UTC).timestamp()  # v21.0's last day
    assert (await http.get(f"/v21.0/{PHONE}")).headers["facebook-api-version"] == "v21.0"
    clock.advance(DAY)
    assert (await http.get(f"/v21.0/{PHONE}")).headers["facebook-api-version"] == "v22.0"
    clock.now = datetime(2027, 10, 9, tzinfo=UTC).timestamp()  # v23.0 expired: served as v24.0
    upgraded = await fields(http, "whatsapp_business_manager_messaging_limit", "v23.0")
    assert (upgraded.status_code, upgraded.headers["facebook-api-version"]) == (200, "v24.0")


@pytest.mark.parametrize(
    ("day", "asked", "outcome"),
    [
        (date(2026, 7, 28), "v26.0", None),  # not released yet
        (date(2026, 7, 29), "v26.0", "v26.0"),
        (date(2028, 7, 30), "v25.0", "v26.0"),
        (date(2026, 12, 7), "v19.0", "v21.0"),
    ],
)
def test_resolve_against_the_table(day: date, asked: str, outcome: str | None) -> None:
    if outcome is None:
        with pytest.raises(Exception, match="Unknown path components"):
            resolve(asked, "/x", day)
        return
    assert resolve(asked, "/x", day).served.name == outcome


def test_the_version_table_is_ordered_and_dated() -> None:
    assert [v.name for v in VERSIONS][:2] == ["v26.0", "v25.0"]
    for newer, older in itertools.pairwise(VERSIONS):
        assert older.usable_until is not None
        assert newer.released <= older.usable_until


# --- HTTP status per code ---------------------------------------------------------------------
# https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (0, 401),
        (190, 401),
        (3, 500),
        (10, 403),
        (200, 403),
        (299, 403),
        (4, 400),
        (80007, 400),
        (130429, 400),
        (131048, 400),
        (131056, 400),
        (133016, 400),
        (368, 403),
        (130497, 403),
        (131031, 403),
        (1, 400),
        (2, 503),
        (100, 400),
        (131000, 500),
        (131005, 403),
        (131008, 400),
        (131009, 400),
        (131016, 500),
        (131042, 400),
        (131057, 500),
        (133010, 400),
        (2500, 400),
        (104, 400),  # users saw 400 (pellaeon/fb-post-bulk-privacy-edit#2)
        (131045, 500),
        (132001, 404),
        (133000, 500),
        (133004, 503),
    ],
)
def test_http_status_per_code(code: int, status: int) -> None:
    assert lookup(code).status == status
    assert lookup(code).message.startswith(f"(#{code}) ") or code in (104, 2500)


@pytest.mark.parametrize(
    ("subcode", "text"),
    [
        (458, "The user has not authorized application 1111111111."),
        (490, "The user is enrolled in a blocking, logged-in checkpoint"),
        (464, "Sessions for the user  are not allowed because the user is not a confirmed user."),
    ],
)
async def test_dead_token_texts_users_saw(
    sim: RunningSimulator, http: httpx.AsyncClient, subcode: int, text: str
) -> None:
    sim.state.revoke_token(sim.state.tokens[TOKEN], subcode)
    err = error(await http.get(f"/v25.0/{PHONE}"))
    message = f"Error validating access token: {text}"
    assert (err["code"], err["error_subcode"], err["message"]) == (190, subcode, message)


@pytest.mark.parametrize(("code", "status"), [(131000, 500), (2, 503), (368, 403), (190, 401)])
async def test_error_code_faults_answer_metas_status(
    http: httpx.AsyncClient, code: int, status: int
) -> None:
    await http.post("/_sim/faults", json={"action": "error_code", "kind": "phone", "code": code})
    response = await http.get(f"/v25.0/{PHONE}")
    assert (response.status_code, error(response)["code"]) == (status, code)


async def test_invalid_token_is_401_with_www_authenticate(http: httpx.AsyncClient) -> None:
    response = await http.get(f"/v25.0/{PHONE}", headers={"Authorization": "Bearer EAAnobody"})
    assert response.status_code == 401
    message = "Invalid OAuth access token - Cannot parse access token"
    assert (
        response.headers["WWW-Authenticate"]
        == f'OAuth "Facebook Platform" "invalid_token" "{message}"'
    )


# --- appsecret_proof ---------------------------------------------------------------------------
# https://developers.facebook.com/docs/graph-api/securing-requests#appsecret_proof

PROOF = appsecret_proof(SECRET, TOKEN)
MISSING = "API calls from the server require an appsecret_proof argument"
INVALID = "Invalid appsecret_proof provided in the API argument"
SEND = {
    "messaging_product": "whatsapp",
    "to": "+16505550123",
    "type": "text",
    "text": {"body": "x"},
}


@pytest.mark.parametrize(
    ("required", "query", "body", "outcome"),
    [
        (True, {}, {}, MISSING),
        (True, {"appsecret_proof": PROOF}, {}, None),
        (True, {}, {"appsecret_proof": PROOF}, None),  # Graph reads body parameters too
        (True, {"appsecret_proof": "00" * 32}, {}, INVALID),
        (False, {}, {}, None),
        (False, {"appsecret_proof": "00" * 32}, {}, INVALID),  # a proof sent is checked
    ],
)
async def test_appsecret_proof(
    http: httpx.AsyncClient,
    required: bool,
    query: dict[str, str],
    body: dict[str, str],
    outcome: str | None,
) -> None:
    await http.patch(f"/_sim/apps/{APP}", json={"require_app_secret_proof": required})
    response = await http.post(f"/v25.0/{PHONE}/messages", params=query, json={**SEND, **body})
    if outcome is None:
        assert response.status_code == 200, response.text
        return
    assert response.status_code == 400
    err = error(response)
    assert (err["code"], err["type"], err["message"]) == (100, "GraphMethodException", outcome)
    assert "WWW-Authenticate" not in response.headers


async def test_app_token_needs_no_proof(http: httpx.AsyncClient) -> None:
    await http.patch(f"/_sim/apps/{APP}", json={"require_app_secret_proof": True})
    params = {"input_token": TOKEN, "access_token": f"{APP}|{SECRET}"}
    response = await http.get("/v25.0/debug_token", params=params, headers={"Authorization": ""})
    assert response.json()["data"]["is_valid"] is True


def test_seed_sets_require_app_secret_proof() -> None:
    state = apply_seed(
        SimState(), {"apps": [{"id": "9", "secret": "s", "require_app_secret_proof": True}]}
    )
    assert state.apps["9"].require_app_secret_proof is True


# --- debug_token ------------------------------------------------------------------------------
# https://developers.facebook.com/docs/graph-api/reference/debug_token/


async def test_debug_token_of_a_user_token(http: httpx.AsyncClient, clock: ManualClock) -> None:
    params = {"input_token": "EAAuser", "access_token": f"{APP}|{SECRET}"}
    data = (await http.get("/v25.0/debug_token", params=params)).json()["data"]
    # Meta's Embedded Signup example of a USER token: no issued_at
    assert list(data) == [
        "app_id",
        "type",
        "application",
        "data_access_expires_at",
        "expires_at",
        "is_valid",
        "scopes",
        "granular_scopes",
        "user_id",
    ]
    assert (data["type"], data["user_id"]) == ("USER", "42")
    params["input_token"] = TOKEN  # a system user token has issued_at (permissions page)
    system = (await http.get("/v25.0/debug_token", params=params)).json()["data"]
    assert system["issued_at"] == int(clock.now)
    assert "public_profile" in data["scopes"]
    assert data["granular_scopes"] == [
        {"scope": "whatsapp_business_management", "target_ids": [WABA]},
        {"scope": "whatsapp_business_messaging"},  # no target_ids: every asset
        {"scope": "whatsapp_business_manage_events"},
    ]


async def test_unknown_token_type_is_refused_by_the_admin_api(http: httpx.AsyncClient) -> None:
    response = await http.post("/_sim/tokens", json={"token": "x", "app_id": APP, "type": "BOT"})
    assert response.status_code == 400
    assert "type must be one of" in response.json()["error"]
