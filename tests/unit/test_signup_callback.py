"""The OAuth callback endpoint: HMAC over timestamp and body, freshness, replays, size and
input checks, all before anything is created (aiohttp's in-process test server)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import test_utils

from whatsapp_operator.runtime.kube import KubeUnavailable
from whatsapp_operator.signup import callback
from whatsapp_operator.signup.callback import (
    CallbackSettings,
    ReplayCache,
    SignupRequest,
    parse_request,
    sign,
    verify,
)

SECRET = "a-shared-secret-of-some-length"
NOW = 1_800_000_000
SETTINGS = CallbackSettings(secret=SECRET, namespace="signups", app_credentials_secret="meta-app")


def headers(body: bytes, *, stamp: int = NOW, secret: str = SECRET) -> dict[str, str]:
    return {
        "X-Timestamp": str(stamp),
        "X-Signature-256": sign(secret, str(stamp), body),
        "Content-Type": "application/json",
    }


def payload(**fields: Any) -> bytes:
    return json.dumps({"code": "AQBxyz123", "state": "t_a3eecb94bb822a92", **fields}).encode()


# --- pure parts ---------------------------------------------------------------------------


def test_settings_repr_hides_the_secret() -> None:
    assert SECRET not in repr(SETTINGS)
    assert "AQB" not in repr(SignupRequest("AQBxyz123", "t_1"))


@pytest.mark.parametrize(
    ("change", "ok"),
    [
        pytest.param({}, True, id="good"),
        pytest.param({"X-Signature-256": None}, False, id="no signature"),
        pytest.param({"X-Timestamp": None}, False, id="no timestamp"),
        pytest.param({"X-Timestamp": "12ab"}, False, id="timestamp not a number"),
        pytest.param({"X-Signature-256": "md5=00"}, False, id="other scheme"),
        pytest.param({"X-Signature-256": "sha256=" + "0" * 64}, False, id="wrong digest"),
        pytest.param({"X-Signature-256": "sha256=é"}, False, id="non-ASCII digest"),
    ],
)
def test_verify_headers(change: dict[str, str | None], ok: bool) -> None:
    body = payload()
    sent = {**headers(body), **change}
    got = verify(SETTINGS, {k: v for k, v in sent.items() if v is not None}, body, NOW)
    assert (got == "") is ok


def test_signature_covers_the_body_and_the_timestamp() -> None:
    body = payload()
    signed = headers(body)
    assert verify(SETTINGS, signed, payload(state="t_other"), NOW) == "bad signature"
    moved = {**signed, "X-Timestamp": str(NOW + 1)}
    assert verify(SETTINGS, moved, body, NOW) == "bad signature"
    assert verify(SETTINGS, headers(body, secret="another-secret-entirely"), body, NOW)


@pytest.mark.parametrize(
    ("stamp", "ok"),
    [
        pytest.param(NOW, True, id="now"),
        pytest.param(NOW - 300, True, id="5 minutes old"),
        pytest.param(NOW - 301, False, id="older than 5 minutes"),
        pytest.param(NOW + 60, True, id="1 minute ahead"),
        pytest.param(NOW + 61, False, id="more than 1 minute ahead"),
    ],
)
def test_verify_clock_window(stamp: int, ok: bool) -> None:
    body = payload()
    assert (verify(SETTINGS, headers(body, stamp=stamp), body, NOW) == "") is ok


def test_replay_cache_remembers_until_expiry_and_stays_bounded() -> None:
    cache = ReplayCache(capacity=2)
    assert cache.admit("a", expires=NOW + 10, now=NOW) == "new"
    assert cache.admit("a", expires=NOW + 10, now=NOW + 5) == "replay"
    assert cache.admit("b", expires=NOW + 20, now=NOW + 5) == "new"
    assert cache.admit("c", expires=NOW + 20, now=NOW + 5) == "full"
    assert cache.admit("c", expires=NOW + 30, now=NOW + 10) == "new"  # "a" expired
    assert len(cache) == 2


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(b"not json", "JSON", id="not JSON"),
        pytest.param(b"[]", "object", id="not an object"),
        pytest.param(json.dumps({"state": "t_1"}).encode(), "code", id="no code"),
        pytest.param(payload(code="a b"), "printable", id="code with a space"),
        pytest.param(payload(state="bad id!"), "tenant id", id="bad tenant id"),
        pytest.param(payload(state="x" * 51), "tenant id", id="tenant id too long"),
        pytest.param(payload(tenantId=["t_1"]), "tenantId", id="tenantId not a string"),
        pytest.param(payload(waba_id="12ab"), "waba_id", id="session WABA id not digits"),
        pytest.param(payload(phone_number_id=300), "phone_number_id", id="session id a number"),
        pytest.param(payload(business_id="1" * 31), "business_id", id="session id too long"),
        pytest.param(payload(waba_id="١٢٣"), "waba_id", id="non-ASCII digits"),
    ],
)
def test_parse_request_rejects(body: bytes, error: str) -> None:
    got = parse_request(body)
    assert isinstance(got, str)
    assert error in got
    assert "AQBxyz123" not in got


@pytest.mark.parametrize(
    ("fields", "session"),
    [
        pytest.param({}, {}, id="no session ids"),
        pytest.param(
            {"waba_id": "200", "phone_number_id": "300", "business_id": "400"},
            {"wabaId": "200", "phoneNumberId": "300", "businessId": "400"},
            id="what the Embedded Signup session message reported",
        ),
        pytest.param({"waba_id": "200"}, {"wabaId": "200"}, id="a WABA id only"),
    ],
)
def test_parse_request_takes_the_session_ids(
    fields: dict[str, str], session: dict[str, str]
) -> None:
    got = parse_request(payload(**fields))
    assert isinstance(got, SignupRequest)
    assert got.session == session


def test_parse_request_takes_the_tenant_id_from_state_or_tenant_id() -> None:
    assert parse_request(payload()) == SignupRequest("AQBxyz123", "t_a3eecb94bb822a92")
    explicit = json.dumps({"code": "c0de", "tenantId": "t_2"}).encode()
    assert parse_request(explicit) == SignupRequest("c0de", "t_2")


# --- over HTTP ----------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.requests: list[SignupRequest] = []
        self.fail = False

    async def __call__(self, request: SignupRequest) -> str:
        if self.fail:
            raise KubeUnavailable("creating WhatsAppSignup: HTTP 503")
        self.requests.append(request)
        return f"signup-{len(self.requests)}"


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def clock() -> Clock:
    return Clock()


Client = test_utils.TestClient[Any, Any]


@pytest.fixture
async def client(recorder: Recorder, clock: Clock) -> AsyncIterator[Client]:
    settings = CallbackSettings(
        secret=SECRET, namespace="signups", app_credentials_secret="meta-app", replay_capacity=3
    )
    app = callback.build_app(settings, recorder, clock)
    async with test_utils.TestClient(test_utils.TestServer(app)) as c:
        yield c


async def post(client: Client, body: bytes, hdrs: dict[str, str]) -> tuple[int, Any]:
    response = await client.post("/signup", data=body, headers=hdrs)
    return response.status, await response.json()


async def test_good_request_creates_a_signup(client: Client, recorder: Recorder) -> None:
    body = payload()
    status, answer = await post(client, body, headers(body))
    assert status == 202
    assert answer == {"signup": "signup-1", "namespace": "signups"}
    assert recorder.requests == [SignupRequest("AQBxyz123", "t_a3eecb94bb822a92")]


BadHeaders = Callable[[bytes], dict[str, str]]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda b: {}, id="unsigned"),
        pytest.param(lambda b: headers(b, secret="not-the-shared-secret"), id="wrong key"),
        pytest.param(lambda b: headers(b + b" "), id="signature of another body"),
        pytest.param(lambda b: headers(b, stamp=NOW - 600), id="stale"),
        pytest.param(lambda b: headers(b, stamp=NOW + 600), id="from the future"),
    ],
)
async def test_bad_hmac_or_clock_is_401_and_creates_nothing(
    client: Client, recorder: Recorder, bad: BadHeaders
) -> None:
    body = payload()
    status, answer = await post(client, body, bad(body))
    assert (status, answer) == (401, {"error": "unauthorized"})
    assert recorder.requests == []


async def test_replayed_request_is_401(client: Client, recorder: Recorder, clock: Clock) -> None:
    body = payload()
    signed = headers(body)
    assert (await post(client, body, signed))[0] == 202
    clock.now += 30
    assert await post(client, body, signed) == (401, {"error": "unauthorized"})
    assert len(recorder.requests) == 1
    clock.now += 600  # expired from the cache, and by then stale as well
    assert (await post(client, body, signed))[0] == 401
    resigned = headers(body, stamp=int(clock.now))
    assert (await post(client, body, resigned))[0] == 202


async def test_full_replay_cache_refuses_instead_of_forgetting(client: Client) -> None:
    for n in range(3):
        body = payload(code=f"code{n}")
        assert (await post(client, body, headers(body)))[0] == 202
    body = payload(code="code4")
    assert (await post(client, body, headers(body)))[0] == 503


async def test_bad_tenant_id_is_400_after_auth_and_creates_nothing(
    client: Client, recorder: Recorder
) -> None:
    body = payload(state="not a tenant id")
    status, answer = await post(client, body, headers(body))
    assert status == 400
    assert "tenant id" in answer["error"]
    assert recorder.requests == []
    status, _ = await post(client, body, {})
    assert status == 401  # an unsigned request learns nothing about its body


async def test_body_over_16_kib_is_413(client: Client, recorder: Recorder) -> None:
    body = payload(padding="x" * (16 * 1024))
    status, _ = await post(client, body, headers(body))
    assert status == 413
    assert recorder.requests == []


async def test_kubernetes_down_is_503(client: Client, recorder: Recorder) -> None:
    recorder.fail = True
    body = payload()
    status, answer = await post(client, body, headers(body))
    assert status == 503
    assert "AQBxyz123" not in json.dumps(answer)


async def test_only_post_on_the_signup_path(client: Client) -> None:
    assert (await client.get("/signup")).status == 405
    assert (await client.post("/api/whatsapp/signup")).status == 404
