"""The simulator against Meta's documented answers: one case per corpus fixture.

Each case starts the simulator in-process, puts it in the state the fixture describes (a
working token, a registered number, or the error condition: the real one where the
simulator models it, otherwise an `error_code` fault that names only the code, so the
simulator must supply Meta's message, details and HTTP status itself), sends the fixture's
request and compares the answer with the fixture. Normalised: ids that the simulator mints
(wamids, tokens, cursors), fbtrace_id and times in messages. Compared: HTTP status (where
documented), error code/subcode/type/message/details, success keys and value types, and
the values the simulator was seeded with.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import fields
from typing import Any

import httpx
import pytest

from whatsapp_simulator import ManualClock, RunningSimulator, SimState, apply_seed
from whatsapp_simulator import run_simulator as start_simulator

from .corpus import PHONE_NUMBER_ID, WABA_ID, Fixture, all_fixtures

APP_ID, APP_SECRET, APP_NAME = "634974688087057", "contract-app-secret", "Lucky Shrub"
TOKEN = "EAAJBcontractSYSTEMUSERtoken0123456789"
CALLER = "EAAJicontractCALLERtoken9876543210"
INPUT_TOKEN = "EAAFlcontractINPUTtoken5555"
# Meta's examples pair phone number id 106540352242922 with display number 15550783881.
BUSINESS_DISPLAY_NUMBER = "15550783881"
SCOPES = ["whatsapp_business_management", "whatsapp_business_messaging"]
FAULT_KIND = {
    "send_message": "messages",
    "register_number": "register",
    "waba_phone_numbers": "phone_numbers",
    "phone_number": "phone",
    "debug_token": "debug_token",
}

FIXTURES = all_fixtures()


# --- the world ----------------------------------------------------------------------------


def base_seed() -> dict[str, Any]:
    return {
        "apps": [{"id": APP_ID, "secret": APP_SECRET, "name": APP_NAME}],
        "wabas": [{"id": WABA_ID, "name": "Lucky Shrub"}],
        "phones": [
            {
                "id": PHONE_NUMBER_ID,
                "waba_id": WABA_ID,
                "display_phone_number": BUSINESS_DISPLAY_NUMBER,
                "verified_name": "Lucky Shrub",
                "registered": True,
                "pair_limit": False,
            }
        ],
        "tokens": [
            {
                "token": TOKEN,
                "app_id": APP_ID,
                "scopes": SCOPES,
                "targets": {s: [WABA_ID] for s in SCOPES},
            },
            {"token": CALLER, "app_id": APP_ID, "scopes": SCOPES},
        ],
    }


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    state = apply_seed(SimState(clock=ManualClock()), base_seed())
    async with start_simulator(state=state) as running:
        yield running


@pytest.fixture
async def http(sim: RunningSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url, timeout=10.0) as client:
        yield client


def bearer(token: str | None = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def send_request(
    http: httpx.AsyncClient,
    fixture: Fixture,
    *,
    token: str | None = TOKEN,
    query: Mapping[str, str] | None = None,
) -> httpx.Response:
    request = fixture.request
    params = dict(request.query) if query is None else dict(query)
    return await http.request(
        request.method,
        request.url_path(),
        params=params or None,
        json=request.body,
        headers=bearer(token),
    )


def add_fault(state: SimState, fixture: Fixture) -> None:
    """Only the code (and subcode): Meta's texts and status are the simulator's to supply."""
    error = fixture.error
    rule: dict[str, Any] = {"action": "error_code", "kind": FAULT_KIND[fixture.call]}
    rule["code"] = error["code"]
    if error.get("error_subcode") is not None:
        rule["subcode"] = error["error_subcode"]
    state.faults.add(rule)


def require_proof(state: SimState) -> None:
    app = state.apps[APP_ID]
    names = [f.name for f in fields(app) if "proof" in f.name or "appsecret" in f.name]
    if not names:
        pytest.fail("the simulator's App has no 'Require App Secret' switch (appsecret_proof)")
    setattr(app, names[0], True)


# --- normalisation and comparison ---------------------------------------------------------

_TIMES = re.compile(r"(Session has expired on) .*?(\. The current time is) .*?\.$")
_IDS = re.compile(r"\b\d{6,}\w*")


def normalise_message(text: str) -> str:
    text = _TIMES.sub(r"\1 <T>\2 <T>.", " ".join(text.split()))
    return _IDS.sub("<ID>", text)


def shape(value: Any) -> Any:
    """Keys and value types, recursively (list items each)."""
    if isinstance(value, Mapping):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def problems_in_error(fixture: Fixture, response: httpx.Response) -> list[str]:
    found: list[str] = []
    want = fixture.error
    documented = fixture.response.status
    if documented is not None and response.status_code != documented:
        found.append(f"HTTP {response.status_code}, documented {documented}")
    try:
        got = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return [*found, f"no error envelope: {response.text[:200]}"]
    if got.get("code") != want["code"]:
        found.append(f"code {got.get('code')}, documented {want['code']}")
    if got.get("type") != want["type"]:
        found.append(f"type {got.get('type')!r}, documented {want['type']!r}")
    if "message" in want and normalise_message(str(got.get("message", ""))) != normalise_message(
        want["message"]
    ):
        found.append(f"message {got.get('message')!r}, documented {want['message']!r}")
    details = fixture.details
    data = got.get("error_data")
    got_details = data.get("details") if isinstance(data, Mapping) else None
    if details is not None and got_details != details:
        found.append(f"details {got_details!r}, documented {details!r}")
    if (want["code"] == 190 or fixture.source_kind == "observed") and got.get(
        "error_subcode"
    ) != want.get("error_subcode"):
        found.append(
            f"error_subcode {got.get('error_subcode')}, documented {want.get('error_subcode')}"
        )
    return found


def compare_error(fixture: Fixture, response: httpx.Response) -> None:
    found = problems_in_error(fixture, response)
    assert not found, f"{fixture.name} ({fixture.source}): " + "; ".join(found)


def compare_success(fixture: Fixture, response: httpx.Response) -> Any:
    assert response.status_code == 200, f"HTTP {response.status_code}: {response.text[:300]}"
    return response.json()


# --- one case per fixture -----------------------------------------------------------------


async def run_send(fixture: Fixture, sim: RunningSimulator, http: httpx.AsyncClient) -> None:
    request_body = fixture.request.body
    status = fixture.response.body["messages"][0].get("message_status")
    if status == "held_for_quality_assessment":  # Meta paces a new template (template-pacing)
        apply_seed(sim.state, {"config": {"held_templates": [request_body["template"]["name"]]}})
    body = compare_success(fixture, await send_request(http, fixture))
    want = fixture.response.body
    assert shape(body) == shape(want), f"keys/types differ: {body} vs documented {want}"
    assert body["messages"][0]["id"].startswith("wamid.")
    if request_body["to"] == want["contacts"][0]["input"]:
        assert body["contacts"] == want["contacts"]
    assert body["messages"][0].get("message_status") == status


def shift_times(data: Mapping[str, Any], delta: int) -> dict[str, Any]:
    out = dict(data)
    for key in ("expires_at", "data_access_expires_at", "issued_at"):
        if out.get(key):
            out[key] = out[key] + delta
    return out


async def run_debug_token(fixture: Fixture, sim: RunningSimulator, http: httpx.AsyncClient) -> None:
    want: Mapping[str, Any] = fixture.response.body["data"]
    now = int(sim.state.now())
    # The pages' tokens expired years ago: seed them shifted into the simulator's future
    # and shift the answer back (timestamps are normalised, not compared raw).
    delta = now + 30 * 86400 - want["expires_at"] if want["expires_at"] else 0
    seeded = shift_times(want, delta)
    targets = {g["scope"]: g["target_ids"] for g in want["granular_scopes"] if "target_ids" in g}
    token: dict[str, Any] = {
        "token": INPUT_TOKEN,
        "app_id": want["app_id"],
        "type": want["type"],
        "scopes": want["scopes"],
        "targets": targets,
        "expires_at": seeded["expires_at"],
        "data_access_expires_at": seeded["data_access_expires_at"],
        "user_id": want["user_id"],
    }
    if "issued_at" in seeded:
        token["issued_at"] = seeded["issued_at"]
    app = {"id": want["app_id"], "secret": "s3cret", "name": want["application"]}
    caller = {"token": CALLER + "2", "app_id": want["app_id"], "scopes": SCOPES}
    apply_seed(sim.state, {"apps": [app], "tokens": [token, caller]})
    response = await send_request(
        http, fixture, token=CALLER + "2", query={"input_token": INPUT_TOKEN}
    )
    data = compare_success(fixture, response)["data"]
    assert shift_times(data, -delta) == dict(want)


async def run_phone(fixture: Fixture, sim: RunningSimulator, http: httpx.AsyncClient) -> None:
    want: Mapping[str, Any] = fixture.response.body
    seed_phones(sim, [{**want, "id": fixture.request.path_params["phone-number-id"]}])
    body = compare_success(fixture, await send_request(http, fixture))
    assert body == dict(want)


def seed_phones(sim: RunningSimulator, phones: list[Mapping[str, Any]]) -> None:
    seeded = []
    for phone in phones:
        item: dict[str, Any] = {"id": phone["id"], "waba_id": WABA_ID, "registered": True}
        for key in (
            "display_phone_number",
            "verified_name",
            "quality_rating",
            "code_verification_status",
            "name_status",
        ):
            if key in phone:
                item[key] = phone[key]
        if "whatsapp_business_manager_messaging_limit" in phone:
            item["messaging_limit"] = phone["whatsapp_business_manager_messaging_limit"]
        if "account_mode" in phone:
            item["account_mode"] = phone["account_mode"]
        if phone.get("status") not in (None, "CONNECTED"):
            item["registered"] = False
        seeded.append(item)
    apply_seed(sim.state, {"phones": seeded})


async def run_phone_list(fixture: Fixture, sim: RunningSimulator, http: httpx.AsyncClient) -> None:
    want: Mapping[str, Any] = fixture.response.body
    sim.state.phones.pop(PHONE_NUMBER_ID, None)  # only the documented numbers in the WABA
    # A filtered listing (Meta's example filters on account_mode = SANDBOX): seed the numbers
    # so that they match the filter the page shows.
    mode = re.search(r'"field":"account_mode".*?"value":"(\w+)"', str(fixture.request.query))
    extra = {"account_mode": mode.group(1)} if mode else {}
    seed_phones(sim, [{**phone, **extra} for phone in want["data"]])
    body = compare_success(fixture, await send_request(http, fixture))
    assert body["data"] == want["data"]
    if "paging" in want:
        assert shape(body.get("paging")) == shape(want["paging"]), body.get("paging")


async def run_exchange(fixture: Fixture, sim: RunningSimulator, http: httpx.AsyncClient) -> None:
    query = fixture.request.query
    seed: dict[str, Any] = {"apps": [{"id": query["client_id"], "secret": query["client_secret"]}]}
    if fixture.call == "exchange_token":
        seed["tokens"] = [
            {
                "token": query["fb_exchange_token"],
                "app_id": query["client_id"],
                "type": "USER",
                "scopes": SCOPES,
                "expires_in": 3600,
            }
        ]
    else:
        code: dict[str, Any] = {"code": query["code"], "app_id": query["client_id"]}
        code["scopes"] = SCOPES
        if "expires_in" in fixture.response.body:  # a business token that expires
            code["expires_in"] = fixture.response.body["expires_in"]
        seed["codes"] = [code]
    apply_seed(sim.state, seed)
    body = compare_success(fixture, await send_request(http, fixture, token=None))
    want = fixture.response.body
    assert shape(body) == shape(want), f"keys/types differ: {body} vs documented {want}"
    assert body["token_type"] == want["token_type"]


Runner = Callable[[Fixture, RunningSimulator, httpx.AsyncClient], Any]
SUCCESS_RUNNERS: dict[str, Runner] = {
    "send_message": run_send,
    "debug_token": run_debug_token,
    "phone_number": run_phone,
    "waba_phone_numbers": run_phone_list,
    "exchange_token": run_exchange,
    "exchange_code": run_exchange,
}


async def provoke(fixture: Fixture, sim: RunningSimulator, http: httpx.AsyncClient) -> Any:
    """Put the simulator in the fixture's error condition and make the failing call."""
    state = sim.state
    name, code = fixture.name, fixture.error["code"]
    subcode = fixture.error.get("error_subcode")
    if name == "error_104_no_token":
        return await send_request(http, fixture, token=None)
    if name.startswith("error_appsecret_proof"):
        require_proof(state)
        if name.endswith("invalid"):
            return await send_request(http, fixture, query={"appsecret_proof": "0" * 64})
        return await send_request(http, fixture)
    if code == 190 and subcode == 463:
        state.expire_token(state.tokens[TOKEN])
        return await send_request(http, fixture)
    if code == 190 and subcode is not None:
        state.revoke_token(state.tokens[TOKEN], subcode)
        return await send_request(http, fixture)
    if name == "phone_nonexisting_field":
        return await send_request(http, fixture)
    if code == 130429:
        apply_seed(state, {"phones": [{**base_seed()["phones"][0], "mps": 1}]})
        await send_request(http, fixture)
        return await send_request(http, fixture)
    if code == 131056:
        pair = {"burst": 1, "refill_seconds": 600}
        apply_seed(state, {"phones": [{**base_seed()["phones"][0], "pair_limit": pair}]})
        await send_request(http, fixture)
        return await send_request(http, fixture)
    if code == 80007:
        apply_seed(state, {"config": {"management_limit_per_hour": 1}})
        await send_request(http, fixture)
        return await send_request(http, fixture)
    if code == 133016:
        for _ in range(10):
            await send_request(http, fixture)
        return await send_request(http, fixture)
    add_fault(state, fixture)
    return await send_request(http, fixture)


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.name)
async def test_simulator_answers_like_meta(
    fixture: Fixture, sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    if fixture.superseded_by:
        pytest.skip(f"an older page's answer; Meta's current page: {fixture.superseded_by}")
    if fixture.is_error:
        compare_error(fixture, await provoke(fixture, sim, http))
        return
    await SUCCESS_RUNNERS[fixture.call](fixture, sim, http)


def test_appsecret_proof_is_hmac_sha256_of_the_token() -> None:
    """Meta's definition (securing-requests page), which the simulator must accept."""
    proof = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    assert len(proof) == 64
