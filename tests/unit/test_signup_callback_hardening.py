"""The OAuth callback endpoint, hardened: replays refused across replicas and restarts (the
API server as the shared memory), a random OAuth `state` beside the tenant id, and read
timeouts for slow clients (signup/callback.py)."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import test_utils, web

from whatsapp_operator.signup import callback
from whatsapp_operator.signup.callback import (
    CallbackSettings,
    SignupRequest,
    parse_request,
    sign,
    signup_name,
)

SECRET = "a-shared-secret-of-some-length"
SETTINGS = CallbackSettings(secret=SECRET, namespace="signups", app_credentials_secret="meta-app")
STATE = "Zq3v_0bS2x9mYk4T8wF1pLr6"  # what an integrator should send: random, unguessable


def headers(body: bytes, stamp: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if stamp is None else stamp
    return {
        "X-Timestamp": str(stamp),
        "X-Signature-256": sign(SECRET, str(stamp), body),
        "Content-Type": "application/json",
    }


# --- state ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "tenant_id"),
    [
        pytest.param({"tenantId": "t_2", "state": STATE}, "t_2", id="random state and tenantId"),
        pytest.param({"tenantId": "t_2", "state": "x" * 1024}, "t_2", id="a long state"),
        pytest.param({"tenantId": "t_2", "state": "a b/c?=%"}, "t_2", id="any characters"),
        pytest.param({"tenantId": "t_2"}, "t_2", id="no state"),
        pytest.param({"state": "t_2"}, "t_2", id="the older form: state is the tenant id"),
        pytest.param({"state": "t_2", "tenantId": "t_2"}, "t_2", id="both, equal"),
    ],
)
def test_the_tenant_id_comes_with_any_state(fields: dict[str, str], tenant_id: str) -> None:
    got = parse_request(json.dumps({"code": "c0de", **fields}).encode())
    assert got == SignupRequest("c0de", tenant_id)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        pytest.param({"state": "Zq3v" * 16}, "tenant id", id="a random state needs tenantId"),
        pytest.param({"tenantId": "t_2", "state": "x" * 1025}, "state", id="state too long"),
        pytest.param({"tenantId": "t_2", "state": 7}, "state", id="state not a string"),
        pytest.param({"tenantId": 7, "state": "t_2"}, "tenantId", id="tenantId not a string"),
    ],
)
def test_state_and_tenant_id_errors(fields: dict[str, Any], error: str) -> None:
    got = parse_request(json.dumps({"code": "c0de", **fields}).encode())
    assert isinstance(got, str)
    assert error in got
    assert STATE not in got


# --- replays across replicas and restarts -----------------------------------------------


class ApiServer:
    """The part of the API server the callback uses: names are unique per kind."""

    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, Any]] = {}
        self.signups: dict[str, dict[str, Any]] = {}

    async def create_secret(self, namespace: str, body: dict[str, Any]) -> bool:
        await asyncio.sleep(0)  # let concurrent requests interleave
        name = body["metadata"]["name"]
        if name in self.secrets:
            return False
        self.secrets[name] = body
        return True

    async def create_custom(self, namespace: str, body: dict[str, Any], plural: str) -> bool:
        await asyncio.sleep(0)
        name = body["metadata"]["name"]
        if name in self.signups:
            return False
        self.signups[name] = {**body, "metadata": {**body["metadata"], "uid": f"uid-{name}"}}
        return True

    async def get_custom(self, namespace: str, name: str, plural: str) -> dict[str, Any] | None:
        return self.signups.get(name)

    async def patch_secret(self, namespace: str, name: str, patch: Any, _: Any) -> None:
        self.secrets[name]["metadata"].update(patch["metadata"])


def replica(api: ApiServer) -> web.Application:
    """One operator replica's endpoint: its own process memory, the shared API server."""
    create = functools.partial(callback.create_signup, api, SETTINGS)  # type: ignore[arg-type]
    return callback.build_app(SETTINGS, create)


Client = test_utils.TestClient[Any, Any]


@pytest.fixture
async def replicas() -> AsyncIterator[tuple[ApiServer, list[Client]]]:
    api = ApiServer()
    clients = [test_utils.TestClient(test_utils.TestServer(replica(api))) for _ in range(3)]
    for c in clients:
        await c.start_server()
    yield api, clients
    for c in clients:
        await c.close()


async def post(client: Client, body: bytes, hdrs: dict[str, str]) -> tuple[int, Any]:
    response = await client.post("/signup", data=body, headers=hdrs)
    return response.status, await response.json()


async def test_a_replay_to_another_replica_or_after_a_restart_creates_nothing(
    replicas: tuple[ApiServer, list[Client]],
) -> None:
    api, (a, b, restarted) = replicas
    body = json.dumps({"code": "AQB-code-1", "tenantId": "t_acme", "state": STATE}).encode()
    signed = headers(body)
    status, first = await post(a, body, signed)
    assert status == 202
    name = first["signup"]
    assert name == signup_name(SECRET, SignupRequest("AQB-code-1", "t_acme"))
    assert await post(b, body, signed) == (
        409,
        {"error": "this code was submitted already", "signup": name, "namespace": "signups"},
    )
    assert (await post(restarted, body, signed))[0] == 409  # a new process: an empty cache
    assert (await post(a, body, signed))[0] == 401  # this replica saw the signature itself
    resigned = headers(body, stamp=int(time.time()) + 1)
    assert (await post(b, body, resigned))[0] == 409  # a retry, signed again
    assert list(api.signups) == [name]
    assert list(api.secrets) == [f"{name}-code"]
    owner = api.secrets[f"{name}-code"]["metadata"]["ownerReferences"][0]
    assert owner["name"] == name


async def test_the_same_request_on_two_replicas_at_once_makes_one_signup(
    replicas: tuple[ApiServer, list[Client]],
) -> None:
    api, (a, b, _) = replicas
    body = json.dumps({"code": "AQB-code-2", "tenantId": "t_acme"}).encode()
    signed = headers(body)
    answers = await asyncio.gather(post(a, body, signed), post(b, body, signed))
    assert sorted(status for status, _ in answers) == [202, 409]
    assert len(api.signups) == 1
    assert len(api.secrets) == 1


async def test_different_codes_make_different_signups(
    replicas: tuple[ApiServer, list[Client]],
) -> None:
    api, (a, b, _) = replicas
    for client, code in ((a, "code-x"), (b, "code-y")):
        body = json.dumps({"code": code, "tenantId": "t_acme"}).encode()
        assert (await post(client, body, headers(body)))[0] == 202
    assert len(api.signups) == 2
    assert all(name.startswith("t-acme-") for name in api.signups)


def test_the_name_depends_on_the_code_and_the_key_only() -> None:
    one = signup_name(SECRET, SignupRequest("code-1", "t_acme"))
    assert one == signup_name(SECRET, SignupRequest("code-1", "t_acme", {"wabaId": "1"}))
    assert one != signup_name(SECRET, SignupRequest("code-2", "t_acme"))
    assert one != signup_name("another-secret-value", SignupRequest("code-1", "t_acme"))
    assert "code-1" not in one
    long = signup_name(SECRET, SignupRequest("c", "t" * 50))
    assert len(long) <= 63  # it is a label's value too


# --- slow clients ---------------------------------------------------------------------


BOUND = 0.5  # the timeouts of these tests, in seconds


@pytest.fixture
async def server() -> AsyncIterator[int]:
    settings = CallbackSettings(
        secret=SECRET, namespace="signups", app_credentials_secret="meta-app",
        header_timeout=BOUND, body_timeout=BOUND,
    )  # fmt: skip

    async def create(request: SignupRequest) -> str:
        return "signup-1"

    runner = await callback.serve(
        callback.build_app(settings, create), "127.0.0.1", 0, header_timeout=BOUND
    )
    port = runner.addresses[0][1]
    yield port
    await runner.cleanup()


async def closed_after(reader: asyncio.StreamReader, limit: float) -> tuple[float, bytes]:
    """(seconds until the server closed the connection, what it sent before)."""
    started = time.monotonic()
    data = await asyncio.wait_for(reader.read(), limit)  # until EOF
    return time.monotonic() - started, data


async def test_headers_sent_slowly_are_cut_off(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    request = b"POST /signup HTTP/1.1\r\nHost: x\r\nX-Timestamp: 1"

    async def trickle() -> None:
        for byte in request:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)

    sender = asyncio.create_task(trickle())
    try:
        took, data = await closed_after(reader, 5 * BOUND)
    finally:
        sender.cancel()
        writer.close()
    assert took < 3 * BOUND
    assert data == b""  # nothing was handled


async def test_a_connection_that_sends_nothing_is_cut_off(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    try:
        took, _ = await closed_after(reader, 5 * BOUND)
    finally:
        writer.close()
    assert took < 3 * BOUND


async def test_a_body_that_never_finishes_is_408_and_cut_off(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    body = json.dumps({"code": "c0de", "tenantId": "t_acme"}).encode()
    head = (
        f"POST /signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
    )
    signed = "".join(f"{k}: {v}\r\n" for k, v in headers(body).items() if k != "Content-Type")
    writer.write(f"{head}{signed}\r\n".encode() + body[:5])  # the rest never comes
    await writer.drain()
    try:
        took, data = await closed_after(reader, 5 * BOUND)
    finally:
        writer.close()
    assert took < 3 * BOUND
    assert data.startswith(b"HTTP/1.1 408")
