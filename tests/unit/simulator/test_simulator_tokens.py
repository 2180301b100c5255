"""Graph API simulator: debug_token, token exchange, Embedded Signup codes, revocation."""

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

APP, SECRET = "1111111111", "demo-app-secret"
APP_TOKEN = f"{APP}|{SECRET}"
WABA = "102290129340398"
PHONE = "106540352242922"
TOKEN = "EAAdemoTOKEN0000000000000000000000000000000000000000000001"
SCOPES = ["whatsapp_business_management", "whatsapp_business_messaging", "business_management"]
DAY = 86400
EXTRA = {
    "apps": [{"id": "2222", "secret": "other-secret"}],
    "tokens": [
        {"token": "EAAexpiring", "app_id": APP, "scopes": SCOPES, "expires_in": 10 * DAY},
        {"token": "EAAotherApp", "app_id": "2222", "scopes": SCOPES},
    ],
}


# clock, sim and http: conftest.py (http on /v25.0)
@pytest.fixture
def sim_state(sim_state: SimState) -> SimState:
    return apply_seed(sim_state, EXTRA)  # the seed, then EXTRA


@pytest.fixture
def http_token() -> None:
    return None  # each call says its token


async def debug(
    http: httpx.AsyncClient, input_token: str, caller: str = APP_TOKEN
) -> httpx.Response:
    return await http.get(
        "/debug_token", params={"input_token": input_token, "access_token": caller}
    )


async def exchange(http: httpx.AsyncClient, old: str, **extra: str) -> httpx.Response:
    params = {
        "grant_type": "fb_exchange_token",
        "client_id": APP,
        "client_secret": SECRET,
        "fb_exchange_token": old,
        **extra,
    }
    return await http.get("/oauth/access_token", params=params)


async def redeem(
    http: httpx.AsyncClient, code: str, app: str = APP, secret: str = SECRET
) -> httpx.Response:
    params = {"client_id": app, "client_secret": secret, "code": code}
    return await http.get("/oauth/access_token", params=params)


async def works(http: httpx.AsyncClient, token: str) -> bool:
    response = await http.get(f"/{PHONE}", headers={"Authorization": f"Bearer {token}"})
    return response.status_code == 200


def error(response: httpx.Response) -> dict[str, Any]:
    err: dict[str, Any] = response.json()["error"]
    return err


@pytest.mark.parametrize("caller", [APP_TOKEN, TOKEN, "EAAexpiring"], ids=["app", "same", "other"])
async def test_debug_token_describes_a_valid_token(
    http: httpx.AsyncClient, clock: ManualClock, caller: str
) -> None:
    response = await debug(http, TOKEN, caller)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["app_id"] == APP
    assert data["application"] == "Demo App"
    assert data["type"] == "SYSTEM_USER"
    assert data["is_valid"] is True
    assert data["expires_at"] == 0
    assert data["data_access_expires_at"] == 0
    assert data["issued_at"] == int(clock.now)
    assert data["scopes"] == SCOPES
    assert data["granular_scopes"] == [
        {"scope": "whatsapp_business_management", "target_ids": [WABA]},
        {"scope": "whatsapp_business_messaging", "target_ids": [WABA]},
        {"scope": "business_management"},
    ]
    assert "error" not in data


async def test_debug_token_bearer_caller(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/debug_token", params={"input_token": TOKEN}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.json()["data"]["is_valid"] is True


@pytest.mark.parametrize(("case", "subcode"), [("expired", 463), ("revoked", 467), ("set", 460)])
async def test_debug_token_reports_a_dead_token_inside_data(
    sim: RunningSimulator, http: httpx.AsyncClient, clock: ManualClock, case: str, subcode: int
) -> None:
    token = sim.state.tokens["EAAexpiring"]
    if case == "expired":
        clock.advance(10 * DAY)
    else:
        sim.state.revoke_token(token, subcode)
    response = await debug(http, "EAAexpiring")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["is_valid"] is False
    assert data["expires_at"] == token.expires_at
    assert (data["error"]["code"], data["error"]["subcode"]) == (190, subcode)
    assert data["error"]["message"].startswith("Error validating access token")


async def test_debug_token_unknown_input(http: httpx.AsyncClient) -> None:
    data = (await debug(http, "EAAnobody")).json()["data"]
    assert data["is_valid"] is False
    assert data["error"]["code"] == 190


@pytest.mark.parametrize(
    "caller", [f"{APP}|wrong", "999|x", "EAAnobody"], ids=["bad secret", "no app", "unknown"]
)
async def test_debug_token_invalid_caller_is_an_error_envelope(
    http: httpx.AsyncClient, caller: str
) -> None:
    response = await debug(http, TOKEN, caller)
    assert response.status_code == 401
    assert error(response)["code"] == 190
    assert "error_data" not in error(response)


async def test_debug_token_expired_caller_is_190_463(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    clock.advance(11 * DAY)
    err = error(await debug(http, TOKEN, "EAAexpiring"))
    assert (err["code"], err["error_subcode"]) == (190, 463)


async def test_debug_token_calls_are_counted_per_input_token(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    for _ in range(3):
        await debug(http, "EAAexpiring")
    assert sim.state.calls[("debug_token", fingerprint("EAAexpiring"), "ok")] == 3


async def test_exchange_mints_a_60_day_token_and_the_old_one_keeps_working(
    sim: RunningSimulator, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    response = await exchange(http, "EAAexpiring")
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 60 * DAY
    new = sim.state.tokens[body["access_token"]]
    old = sim.state.tokens["EAAexpiring"]
    assert (new.scopes, new.targets, new.type, new.user_id) == (
        old.scopes,
        old.targets,
        old.type,
        old.user_id,
    )
    assert new.expires_at == int(clock.now) + 60 * DAY
    assert await works(http, "EAAexpiring")
    assert await works(http, body["access_token"])
    clock.advance(10 * DAY)
    assert not await works(http, "EAAexpiring")
    assert await works(http, body["access_token"])


async def test_exchange_of_a_never_expiring_token(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    body = (await exchange(http, TOKEN)).json()
    assert "expires_in" not in body
    assert sim.state.tokens[body["access_token"]].expires_at == 0
    forced = (await exchange(http, TOKEN, set_token_expires_in_60_days="true")).json()
    assert forced["expires_in"] == 60 * DAY


async def test_exchange_lifetime_is_configurable(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    sim.state.config.exchanged_token_lifetime = 120
    assert (await exchange(http, "EAAexpiring")).json()["expires_in"] == 120


@pytest.mark.parametrize(
    ("case", "params", "code"),
    [
        ("unknown app", {"client_id": "999"}, 101),
        ("wrong secret", {"client_secret": "nope"}, 1),
        ("unknown old token", {"fb_exchange_token": "EAAnobody"}, 190),
        ("token of another app", {"fb_exchange_token": "EAAotherApp"}, 190),
    ],
)
async def test_exchange_errors(
    http: httpx.AsyncClient, case: str, params: dict[str, str], code: int
) -> None:
    response = await exchange(http, "EAAexpiring", **params)
    assert response.status_code in (400, 401), case
    assert error(response)["code"] == code
    if code == 1:
        assert error(response)["message"] == "Error validating client secret."


async def test_exchange_of_a_dead_token_fails(
    sim: RunningSimulator, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    clock.advance(10 * DAY)
    err = error(await exchange(http, "EAAexpiring"))
    assert (err["code"], err["error_subcode"]) == (190, 463)
    sim.state.revoke_token(sim.state.tokens[TOKEN])
    err = error(await exchange(http, TOKEN))
    assert (err["code"], err["error_subcode"]) == (190, 467)


async def test_code_is_exchanged_once(sim: RunningSimulator, http: httpx.AsyncClient) -> None:
    state = sim.state
    template = {
        "app_id": APP,
        "scopes": SCOPES,
        "targets": {"whatsapp_business_management": [WABA]},
    }
    apply_seed(state, {"codes": [{"code": "CODE1", "token": "EAAfromCode", **template}]})
    response = await redeem(http, "CODE1")
    assert response.status_code == 200
    assert response.json() == {"access_token": "EAAfromCode", "token_type": "bearer"}
    minted = state.tokens["EAAfromCode"]
    assert minted.targets == {"whatsapp_business_management": [WABA]}
    assert await works(http, "EAAfromCode")
    err = error(await redeem(http, "CODE1"))
    assert (err["code"], err["error_subcode"]) == (100, 36009)
    assert err["message"] == "This authorization code has been used."


async def test_code_expires_after_its_ttl(
    sim: RunningSimulator, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    apply_seed(sim.state, {"codes": [{"code": "C30", "app_id": APP, "scopes": SCOPES}]})
    apply_seed(sim.state, {"codes": [{"code": "C5", "app_id": APP, "ttl": 5, "expires_in": 60}]})
    clock.advance(6)
    err = error(await redeem(http, "C5"))
    assert (err["code"], err["error_subcode"]) == (100, 36007)
    body = (await redeem(http, "C30")).json()
    assert body["access_token"].startswith("EAA")
    assert "expires_in" not in body
    clock.advance(30)
    assert error(await redeem(http, "C30"))["error_subcode"] == 36009


async def test_code_errors(sim: RunningSimulator, http: httpx.AsyncClient) -> None:
    apply_seed(sim.state, {"codes": [{"code": "C", "app_id": APP}]})
    assert error(await redeem(http, "nope"))["code"] == 100
    assert (
        error(await redeem(http, "C", app="2222", secret="other-secret"))["error_subcode"] == 36008
    )
    assert error(await redeem(http, "C", secret="bad"))["code"] == 1
    missing = await http.get(
        "/oauth/access_token", params={"client_id": APP, "client_secret": SECRET}
    )
    assert error(missing)["code"] == 100


async def test_revoke_invalidates_the_token(sim: RunningSimulator, http: httpx.AsyncClient) -> None:
    params = {
        "client_id": APP,
        "client_secret": SECRET,
        "revoke_token": "EAAexpiring",
        "access_token": TOKEN,
    }
    response = await http.get("/oauth/revoke", params=params)
    assert response.json() == {"success": True}
    assert not await works(http, "EAAexpiring")
    err = error(await http.get(f"/{PHONE}", params={"access_token": "EAAexpiring"}))
    assert (err["code"], err["error_subcode"]) == (190, 467)
    assert (await debug(http, "EAAexpiring")).json()["data"]["error"]["subcode"] == 467
    assert await works(http, TOKEN)


@pytest.mark.parametrize(
    ("case", "params", "code"),
    [
        ("bad secret", {"client_secret": "x"}, 1),
        ("bad caller", {"access_token": "EAAnobody"}, 190),
        ("unknown token", {"revoke_token": "EAAnobody"}, 190),
        ("other app", {"revoke_token": "EAAotherApp"}, 190),
    ],
)
async def test_revoke_errors(
    sim: RunningSimulator, http: httpx.AsyncClient, case: str, params: dict[str, str], code: int
) -> None:
    base = {"client_id": APP, "client_secret": SECRET, "revoke_token": TOKEN, "access_token": TOKEN}
    response = await http.get("/oauth/revoke", params={**base, **params})
    assert error(response)["code"] == code, case
    assert await works(http, TOKEN)
