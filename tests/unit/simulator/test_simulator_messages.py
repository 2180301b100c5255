"""Graph API simulator: sending messages, auth, permissions, throughput and pair limits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from whatsapp_simulator import (
    ManualClock,
    RunningSimulator,
    SimState,
    apply_seed,
    fingerprint,
)

APP = "1111111111"
WABA = "102290129340398"
PHONE = "106540352242922"
TOKEN = "EAAdemoTOKEN0000000000000000000000000000000000000000000001"
OTHER_WABA, OTHER_PHONE = "200000000000001", "200000000000002"
EXTRA = {
    "phones": [{"id": OTHER_PHONE, "waba_id": OTHER_WABA, "display_phone_number": "+1 555-0199"}],
    "tokens": [
        {"token": "EAAnoMessaging", "app_id": APP, "scopes": ["whatsapp_business_management"]},
        {
            "token": "EAAotherWaba",
            "app_id": APP,
            "scopes": ["whatsapp_business_messaging"],
            "targets": {"whatsapp_business_messaging": [OTHER_WABA]},
        },
        {"token": "EAAexpiring", "app_id": APP, "scopes": ["whatsapp_business_messaging"]},
        {"token": "EAAadmin", "app_id": APP, "scopes": ["whatsapp_business_messaging"]},
    ],
}


def text(to: str = "+16505550123", body: str = "hello") -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}}


# clock, sim and http: conftest.py
@pytest.fixture
def sim_state(sim_state: SimState) -> SimState:
    return apply_seed(sim_state, EXTRA)  # the seed, then EXTRA


@pytest.fixture
def http_root() -> str:
    return ""


@pytest.fixture
def http_token() -> None:
    return None  # each call says its token (send)


async def send(
    http: httpx.AsyncClient,
    body: dict[str, Any] | None = None,
    *,
    token: str | None = TOKEN,
    phone: str = PHONE,
    version: str = "v25.0",
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await http.post(f"/{version}/{phone}/messages", json=body or text(), headers=headers)


def error(response: httpx.Response) -> dict[str, Any]:
    err: dict[str, Any] = response.json()["error"]
    return err


async def test_send_accepts_and_records_the_message(
    sim: RunningSimulator, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    response = await send(http, text(to="+1 (650) 555-0123"))
    assert response.status_code == 200
    body = response.json()
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "+1 (650) 555-0123", "wa_id": "16505550123"}]
    wamid = body["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    [recorded] = sim.state.messages
    assert recorded.wamid == wamid
    assert recorded.phone_number_id == PHONE
    assert recorded.to == "+1 (650) 555-0123"
    assert recorded.type == "text"
    assert recorded.body == text(to="+1 (650) 555-0123")
    assert recorded.token_fingerprint == fingerprint(TOKEN)
    assert recorded.time == clock.now


async def test_wamids_are_unique(http: httpx.AsyncClient) -> None:
    ids = {
        (await send(http, text(to=f"1650555{i:04d}"))).json()["messages"][0]["id"]
        for i in range(20)
    }
    assert len(ids) == 20


@pytest.mark.parametrize("version", ["v25.0", "v18.0", "v26.0", "v3.2"])
async def test_any_version_prefix_is_accepted(http: httpx.AsyncClient, version: str) -> None:
    assert (await send(http, version=version)).status_code == 200


@pytest.mark.parametrize("path", ["/v25/x/messages", "/25.0/x/messages", "/vX.0/x/messages"])
async def test_malformed_version_is_an_unknown_path(http: httpx.AsyncClient, path: str) -> None:
    # what users saw for a bad version segment: code 2500 "Unknown path components: /..."
    # (arsduo/koala#611, owlstacks/owlstack-laravel#8); versions.py
    response = await http.post(path, json=text(), headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 400
    assert error(response)["code"] == 2500
    assert error(response)["message"] == "Unknown path components: /x/messages"


async def test_token_in_the_query_string_works(http: httpx.AsyncClient) -> None:
    response = await http.post(
        f"/v25.0/{PHONE}/messages", params={"access_token": TOKEN}, json=text()
    )
    assert response.status_code == 200


async def test_unknown_token_is_190_without_subcode(http: httpx.AsyncClient) -> None:
    response = await send(http, token="EAAnobody")
    assert response.status_code == 401
    err = error(response)
    assert err["code"] == 190
    assert "error_subcode" not in err
    assert err["message"] == "Invalid OAuth access token - Cannot parse access token"
    assert err["type"] == "OAuthException"
    assert err["fbtrace_id"].startswith("A")
    assert err["error_data"]["messaging_product"] == "whatsapp"


async def test_missing_token_is_rejected(http: httpx.AsyncClient) -> None:
    response = await send(http, token=None)
    # 104 with HTTP 400, as users saw it (pellaeon/fb-post-bulk-privacy-edit#2); codes.py
    assert response.status_code == 400
    assert error(response)["code"] == 104


@pytest.mark.parametrize(
    ("case", "subcode"),
    [
        ("expired", 463),
        ("revoked", 467),
        ("app removed", 458),
        ("checkpoint", 459),
        ("password changed", 460),
        ("unconfirmed user", 464),
    ],
)
async def test_token_that_stopped_working_is_190_with_subcode(
    sim: RunningSimulator, http: httpx.AsyncClient, clock: ManualClock, case: str, subcode: int
) -> None:
    token = sim.state.tokens["EAAexpiring"]
    assert (await send(http, token="EAAexpiring")).status_code == 200
    if case == "expired":
        token.expires_at = int(clock.now) + 60
        clock.advance(61)
    else:
        sim.state.revoke_token(token, subcode)
    response = await send(http, token="EAAexpiring")
    assert response.status_code == 401
    err = error(response)
    assert (err["code"], err["error_subcode"]) == (190, subcode)
    assert err["message"].startswith("Error validating access token")
    if case == "expired":
        assert "Session has expired" in err["message"]


@pytest.mark.parametrize(
    ("token", "code"),
    [("EAAnoMessaging", 10), ("EAAotherWaba", 200)],
    ids=["scope missing", "scope not covering the WABA"],
)
async def test_permission_errors(http: httpx.AsyncClient, token: str, code: int) -> None:
    response = await send(http, token=token)
    # 10 and 200-299 are HTTP 403 on Meta's error-codes page
    # https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes
    assert response.status_code == 403
    assert error(response)["code"] == code


async def test_scope_without_target_ids_covers_every_waba(http: httpx.AsyncClient) -> None:
    assert (await send(http, token="EAAadmin", phone=OTHER_PHONE)).status_code == 200


async def test_unknown_phone_is_100_subcode_33(http: httpx.AsyncClient) -> None:
    response = await send(http, phone="999")
    err = error(response)
    assert (response.status_code, err["code"], err["error_subcode"]) == (400, 100, 33)
    assert "Object with ID '999' does not exist" in err["message"]


@pytest.mark.parametrize(
    ("case", "body"),
    [
        ("product missing", {"to": "1", "type": "text", "text": {"body": "x"}}),
        ("product wrong", {**text(), "messaging_product": "sms"}),
        ("to missing", {"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}),
        # (`type` may be omitted: it defaults to text, so this case moved to the accepted ones)
        ("object missing", {"messaging_product": "whatsapp", "to": "1", "type": "image"}),
        ("text body missing", {**text(), "text": {}}),
        ("text body too long", text(body="x" * 4097)),
        ("not an object", ["whatsapp"]),
    ],
)
async def test_invalid_bodies_are_code_100(
    sim: RunningSimulator, http: httpx.AsyncClient, case: str, body: Any
) -> None:
    response = await http.post(
        f"/v25.0/{PHONE}/messages", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 400, case
    assert error(response)["code"] == 100
    assert sim.state.messages == []


async def test_text_at_the_limit_and_other_types_are_accepted(http: httpx.AsyncClient) -> None:
    assert (await send(http, text(body="x" * 4096))).status_code == 200
    template = {
        "messaging_product": "whatsapp",
        "to": "16505550123",
        "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}},
    }
    assert (await send(http, template)).status_code == 200


@pytest.mark.parametrize(
    ("level", "mps", "allowed"),
    [("STANDARD", None, 80), ("HIGH", None, 1000), ("STANDARD", 5, 5)],
    ids=["standard", "high", "override"],
)
async def test_per_number_throughput_limit(
    sim: RunningSimulator,
    http: httpx.AsyncClient,
    clock: ManualClock,
    level: str,
    mps: int | None,
    allowed: int,
) -> None:
    phone = sim.state.phones[PHONE]
    phone.throughput_level, phone.mps, phone.pair_limit_enabled = level, mps, False
    for _ in range(allowed):
        assert sim.state.admit_message(phone, "1") is None
    response = await send(http)
    assert response.status_code == 400
    err = error(response)
    assert err["code"] == 130429
    assert err["message"] == "(#130429) Rate limit hit"
    clock.advance(1.0)
    assert (await send(http)).status_code == 200
    assert sim.state.throttled[(PHONE, 130429)] == 1


async def test_throughput_limit_can_be_disabled_and_answer_429(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    phone = sim.state.phones[PHONE]
    phone.mps, phone.pair_limit_enabled = 2, False
    sim.state.config.throttle_http_status = 429
    assert [(await send(http)).status_code for _ in range(3)] == [200, 200, 429]
    phone.mps = 0
    assert [(await send(http)).status_code for _ in range(5)] == [200] * 5


async def test_pair_limit_bursts_45_then_refills_one_per_6s(
    sim: RunningSimulator, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    for i in range(45):
        assert (await send(http)).status_code == 200, i
        clock.advance(0.02)  # stays inside the per-number window
    response = await send(http)
    err = error(response)
    assert err["code"] == 131056
    assert err["message"] == "(#131056) (Business Account, Consumer Account) pair rate limit hit"
    assert (await send(http, text(to="16505559999"))).status_code == 200  # another recipient
    clock.advance(6.0)
    assert (await send(http)).status_code == 200
    assert error(await send(http))["code"] == 131056
    assert sim.state.throttled[(PHONE, 131056)] == 2


async def test_pair_limit_can_be_overridden_or_disabled(
    sim: RunningSimulator, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    phone = sim.state.phones[PHONE]
    phone.pair_burst, phone.pair_refill_seconds = 2, 1.0
    assert [(await send(http)).status_code for _ in range(3)] == [200, 200, 400]
    clock.advance(1.0)
    assert (await send(http)).status_code == 200
    phone.pair_limit_enabled = False
    assert [(await send(http)).status_code for _ in range(3)] == [200] * 3


async def test_calls_are_counted_by_kind_token_and_outcome(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    await send(http)
    await send(http, token="EAAnobody")
    calls = sim.state.calls
    assert calls[("messages", fingerprint(TOKEN), "ok")] == 1
    assert calls[("messages", fingerprint("EAAnobody"), "190")] == 1
