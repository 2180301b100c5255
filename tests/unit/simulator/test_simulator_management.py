"""Graph API simulator: phone number reads, WABA endpoints, registration, hourly limits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from whatsapp_simulator import (
    ManualClock,
    RunningSimulator,
    SimState,
    apply_seed,
)

APP = "1111111111"
WABA = "102290129340398"
PHONE = "106540352242922"
TOKEN = "EAAdemoTOKEN0000000000000000000000000000000000000000000001"
OTHER_WABA, OTHER_PHONE = "200000000000001", "200000000000002"
HOUR = 3600
EXTRA = {
    "phones": [
        {"id": OTHER_PHONE, "waba_id": OTHER_WABA, "throughput_level": "HIGH"},
        {"id": "106540352242923", "waba_id": WABA, "display_phone_number": "+1 555-0101"},
    ],
    "tokens": [
        {"token": "EAAmessagingOnly", "app_id": APP, "scopes": ["whatsapp_business_messaging"]},
        {"token": "EAAnoWhatsapp", "app_id": APP, "scopes": ["business_management"]},
        {
            "token": "EAAotherWaba",
            "app_id": APP,
            "scopes": ["whatsapp_business_management"],
            "targets": {"whatsapp_business_management": [OTHER_WABA]},
        },
    ],
}


# clock, sim and http: conftest.py (http on /v25.0 with the seed's TOKEN)
@pytest.fixture
def sim_state(sim_state: SimState) -> SimState:
    return apply_seed(sim_state, EXTRA)  # the seed, then EXTRA


def error(response: httpx.Response) -> dict[str, Any]:
    err: dict[str, Any] = response.json()["error"]
    return err


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(http: httpx.AsyncClient, pin: str = "123456") -> httpx.Response:
    return await http.post(f"/{PHONE}/register", json={"messaging_product": "whatsapp", "pin": pin})


async def test_phone_default_fields(http: httpx.AsyncClient) -> None:
    response = await http.get(f"/{PHONE}")
    assert response.json() == {
        "id": PHONE,
        "display_phone_number": "+1 555-0100",
        "verified_name": "Demo Tenant",
        "quality_rating": "GREEN",
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("throughput", {"level": "STANDARD"}),
        # (whatsapp_business_account is no field of the phone number node: nodes.py)
        ("code_verification_status", "VERIFIED"),
        ("name_status", "APPROVED"),
        ("platform_type", "CLOUD_API"),
        ("whatsapp_business_manager_messaging_limit", "TIER_2K"),
        ("quality_rating", "GREEN"),
        ("id", PHONE),
    ],
)
async def test_phone_fields(http: httpx.AsyncClient, field: str, value: Any) -> None:
    response = await http.get(f"/{PHONE}", params={"fields": f"{field},id"})
    assert response.status_code == 200
    assert response.json()[field] == value


async def test_phone_reflects_changes(sim: RunningSimulator, http: httpx.AsyncClient) -> None:
    phone = sim.state.phones[PHONE]
    phone.quality_rating, phone.throughput_level = "RED", "HIGH"
    body = (await http.get(f"/{PHONE}", params={"fields": "quality_rating,throughput"})).json()
    assert body == {"quality_rating": "RED", "throughput": {"level": "HIGH"}, "id": PHONE}


async def test_phone_unknown_field_is_100(http: httpx.AsyncClient) -> None:
    err = error(await http.get(f"/{PHONE}", params={"fields": "id,bogus"}))
    assert err["code"] == 100
    assert "bogus" in err["message"]


@pytest.mark.parametrize(
    ("path", "token", "code", "subcode"),
    [
        (f"/{PHONE}", "EAAnoWhatsapp", 200, None),
        (f"/{PHONE}", "EAAotherWaba", 200, None),
        ("/123", TOKEN, 100, 33),
        (f"/{OTHER_WABA}/phone_numbers", TOKEN, 200, None),
        (f"/{WABA}/phone_numbers", "EAAmessagingOnly", 200, None),
        ("/404/phone_numbers", TOKEN, 100, 33),
    ],
)
async def test_read_errors(
    http: httpx.AsyncClient, path: str, token: str, code: int, subcode: int | None
) -> None:
    response = await http.get(path, headers=bearer(token))
    # 200-299 are HTTP 403, 100 is 400 (Meta's error-codes page)
    assert response.status_code == (403 if code == 200 else 400)
    err = error(response)
    assert (err["code"], err.get("error_subcode")) == (code, subcode)
    assert err["error_data"]["messaging_product"] == "whatsapp"


async def test_phone_readable_with_messaging_scope(http: httpx.AsyncClient) -> None:
    assert (await http.get(f"/{PHONE}", headers=bearer("EAAmessagingOnly"))).status_code == 200


async def test_phone_numbers_lists_the_waba_numbers(http: httpx.AsyncClient) -> None:
    body = (await http.get(f"/{WABA}/phone_numbers")).json()
    assert [p["id"] for p in body["data"]] == [PHONE, "106540352242923"]
    first = body["data"][0]
    # default fields of the edge's items: id, display_phone_number, verified_name,
    # quality_rating (https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/phone-numbers)
    assert first == {
        "verified_name": "Demo Tenant",
        "display_phone_number": "+1 555-0100",
        "id": PHONE,
        "quality_rating": "GREEN",
    }
    assert set(body["paging"]["cursors"]) == {"before", "after"}
    custom = (await http.get(f"/{WABA}/phone_numbers", params={"fields": "id"})).json()
    assert custom["data"] == [{"id": PHONE}, {"id": "106540352242923"}]


async def test_subscribed_apps(sim: RunningSimulator, http: httpx.AsyncClient) -> None:
    assert (await http.post(f"/{WABA}/subscribed_apps")).json() == {"success": True}
    assert (await http.post(f"/{WABA}/subscribed_apps")).json() == {"success": True}
    assert sim.state.wabas[WABA].subscribed_apps == [APP]
    listed = (await http.get(f"/{WABA}/subscribed_apps")).json()
    assert listed == {"data": [{"whatsapp_business_api_data": {"id": APP, "name": "Demo App"}}]}
    assert (await http.delete(f"/{WABA}/subscribed_apps")).json() == {"success": True}
    assert sim.state.wabas[WABA].subscribed_apps == []
    denied = await http.post(f"/{WABA}/subscribed_apps", headers=bearer("EAAotherWaba"))
    assert error(denied)["code"] == 200


async def test_register_limit_is_10_per_72h_then_blocked_72h(
    sim: RunningSimulator, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    for i in range(10):
        assert (await register(http)).json() == {"success": True}, i
        clock.advance(HOUR)
    assert sim.state.phones[PHONE].registered
    err = error(await register(http))
    assert err["code"] == 133016
    assert err["message"] == "(#133016) Account register deregister rate limit exceeded"
    clock.advance(71 * HOUR)
    assert error(await register(http))["code"] == 133016
    clock.advance(HOUR)
    assert (await register(http)).status_code == 200


async def test_deregister_counts_towards_the_limit(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    await register(http)
    body = {"messaging_product": "whatsapp"}
    assert (await http.post(f"/{PHONE}/deregister", json=body)).json() == {"success": True}
    assert not sim.state.phones[PHONE].registered
    for _ in range(8):
        await register(http)
    assert error(await register(http))["code"] == 133016


@pytest.mark.parametrize(
    "body",
    [
        {"pin": "123456"},
        {"messaging_product": "whatsapp", "pin": "12"},
        {"messaging_product": "whatsapp"},
    ],
    ids=["no product", "short pin", "no pin"],
)
async def test_register_body_errors(http: httpx.AsyncClient, body: dict[str, str]) -> None:
    assert error(await http.post(f"/{PHONE}/register", json=body))["code"] == 100


async def test_management_limit_is_off_by_default(http: httpx.AsyncClient) -> None:
    for _ in range(250):
        assert (await http.get(f"/{PHONE}")).status_code == 200


async def test_management_limit_per_app_and_waba_per_hour(
    sim: RunningSimulator, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    sim.state.config.management_limit_per_hour = 3
    assert (await http.get(f"/{PHONE}")).status_code == 200
    assert (await http.get(f"/{WABA}/phone_numbers")).status_code == 200
    assert (await http.post(f"/{WABA}/subscribed_apps")).status_code == 200
    err = error(await http.get(f"/{WABA}/phone_numbers"))
    assert err["code"] == 80007
    other = await http.get(f"/{OTHER_PHONE}", headers=bearer("EAAmessagingOnly"))
    assert other.status_code == 200  # another WABA has its own budget
    clock.advance(HOUR)
    assert (await http.get(f"/{PHONE}")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "rest"),
    [
        ("GET", "/nope/deeper/path", "/deeper/path"),  # node "nope"
        ("POST", f"/{PHONE}/unknown_edge", "/unknown_edge"),
        ("GET", f"/{PHONE}/messages", "/messages"),
    ],
)
async def test_unknown_paths(http: httpx.AsyncClient, method: str, path: str, rest: str) -> None:
    response = await http.request(method, path)
    assert response.status_code == 400
    err = error(response)
    # Graph's code for unknown path components is 2500 (what users saw: arsduo/koala#611)
    assert err["code"] == 2500
    assert err["message"] == f"Unknown path components: {rest}"
