"""GraphClient over httpx.MockTransport: requests sent, errors mapped, tokens never leaked."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from whatsapp_graph.client import GraphClient, appsecret_proof
from whatsapp_graph.errors import (
    ErrorClass,
    GraphApiError,
    GraphError,
    GraphUnavailable,
    ThrottleScope,
)
from whatsapp_graph.http import without_cookies
from whatsapp_graph.transport import _parsed

TOKEN = "EAAGtenantTOKEN0123456789abcdefXYZ"
CALLER = "EAAGcallerTOKEN9876543210zyxwvuABC"
APP_SECRET = "0123456789abcdef0123456789abcdef"
BASE = "https://graph.test"

Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler) -> GraphClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return GraphClient(http, base_url=BASE + "/", version="v25.0")


class Recorder:
    """A handler that answers with a fixed response and keeps the requests it saw."""

    def __init__(self, status: int = 200, body: Any = None, content: bytes | None = None):
        self.requests: list[httpx.Request] = []
        self.status = status
        self.body = body
        self.content = content

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.content is not None:
            return httpx.Response(self.status, content=self.content)
        return httpx.Response(self.status, json=self.body)


DEBUG_DATA = {
    "app_id": "1234567890",
    "type": "SYSTEM_USER",
    "application": "Tenant App",
    "is_valid": True,
    "expires_at": 0,
    "scopes": ["whatsapp_business_management", "whatsapp_business_messaging"],
}


async def test_debug_token_sends_token_as_bearer_and_input_token() -> None:
    rec = Recorder(body={"data": DEBUG_DATA})
    data = await _client(rec).debug_token(TOKEN)
    assert data == DEBUG_DATA
    (req,) = rec.requests
    assert req.method == "GET"
    assert req.url.path == "/v25.0/debug_token"
    assert req.url.params["input_token"] == TOKEN
    assert req.headers["authorization"] == f"Bearer {TOKEN}"


async def test_debug_token_with_a_caller_token_and_version() -> None:
    rec = Recorder(body={"data": DEBUG_DATA})
    await _client(rec).debug_token(TOKEN, caller_token=CALLER, version="v23.0")
    (req,) = rec.requests
    assert req.url.path == "/v23.0/debug_token"
    assert req.url.params["input_token"] == TOKEN
    assert req.headers["authorization"] == f"Bearer {CALLER}"


async def test_debug_token_without_data_is_unavailable() -> None:
    with pytest.raises(GraphUnavailable):
        await _client(Recorder(body={"nodata": True})).debug_token(TOKEN)


async def test_send_message_adds_messaging_product() -> None:
    accepted = {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "+16505551234", "wa_id": "16505551234"}],
        "messages": [{"id": "wamid.HBgL"}],
    }
    rec = Recorder(body=accepted)
    payload = {"to": "+16505551234", "type": "text", "text": {"body": "hi"}}
    body = await _client(rec).send_message(TOKEN, "106540352242922", payload)
    assert body == accepted
    (req,) = rec.requests
    assert req.method == "POST"
    assert req.url.path == "/v25.0/106540352242922/messages"
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert json.loads(req.content) == {"messaging_product": "whatsapp", **payload}


async def test_phone_number_asks_for_fields() -> None:
    rec = Recorder(body={"id": "106540352242922", "display_phone_number": "+1 555 0100"})
    body = await _client(rec).phone_number(TOKEN, "106540352242922", fields=("id", "throughput"))
    assert body["id"] == "106540352242922"
    (req,) = rec.requests
    assert req.url.path == "/v25.0/106540352242922"
    assert req.url.params["fields"] == "id,throughput"


@pytest.mark.parametrize(
    ("body", "code", "subcode", "error_class", "scope"),
    [
        pytest.param(
            {
                "error": {
                    "message": "(#130429) Rate limit hit",
                    "type": "OAuthException",
                    "code": 130429,
                    "error_subcode": 2494055,
                    "fbtrace_id": "Abc",
                }
            },
            130429,
            2494055,
            ErrorClass.THROTTLE,
            ThrottleScope.PHONE_NUMBER,
            id="rate limit is a phone number throttle",
        ),
        pytest.param(
            {"error": {"message": "Session has expired", "code": 190, "error_subcode": 463}},
            190,
            463,
            ErrorClass.CREDENTIAL,
            None,
            id="expired token is a credential error",
        ),
        pytest.param(
            {"error": {"message": "Unsupported get request", "code": 100}},
            100,
            None,
            ErrorClass.PERMANENT,
            None,
            id="unknown object is permanent",
        ),
    ],
)
@pytest.mark.parametrize("http_status", [400, 429, 500])
async def test_meta_error_envelope_is_a_graph_api_error(
    body: Any,
    code: int,
    subcode: int | None,
    error_class: ErrorClass,
    scope: ThrottleScope | None,
    http_status: int,
) -> None:
    with pytest.raises(GraphApiError) as caught:
        await _client(Recorder(http_status, body)).phone_number(TOKEN, "1")
    err = caught.value
    assert (err.code, err.subcode) == (code, subcode)
    assert err.info.http_status == http_status
    assert err.classification.error_class is error_class
    assert err.classification.throttle_scope is scope


@pytest.mark.parametrize(
    ("status", "content"),
    [
        pytest.param(500, b"Internal Server Error", id="500 with text"),
        pytest.param(502, b"<html>Bad Gateway</html>", id="502 with html"),
        pytest.param(503, b"", id="503 empty"),
        pytest.param(429, b"slow down", id="429 without an envelope"),
        pytest.param(404, b"not found", id="404 without an envelope"),
        pytest.param(200, b"not json", id="200 that is not JSON"),
        pytest.param(500, b'{"error": "oops"}', id="500 with a JSON body that is not Meta's"),
    ],
)
async def test_failure_without_envelope_is_unavailable(status: int, content: bytes) -> None:
    with pytest.raises(GraphUnavailable) as caught:
        await _client(Recorder(status, content=content)).phone_number(TOKEN, "1")
    assert caught.value.maybe_sent is True
    assert "phone_number" in str(caught.value)


def _raising(exc_type: type[httpx.TransportError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        # Errors whose text carries the full URL (query string included) and the header.
        raise exc_type(
            f"failed {request.method} {request.url} auth={request.headers.get('authorization')}",
            request=request,
        )

    return handler


@pytest.mark.parametrize(
    ("exc_type", "maybe_sent"),
    [
        pytest.param(httpx.ReadTimeout, True, id="read timeout may have sent"),
        pytest.param(httpx.WriteTimeout, True, id="write timeout may have sent"),
        pytest.param(httpx.ConnectTimeout, False, id="connect timeout did not send"),
        pytest.param(httpx.PoolTimeout, False, id="pool timeout did not send"),
        pytest.param(httpx.ConnectError, False, id="connect error did not send"),
        pytest.param(httpx.ReadError, True, id="read error may have sent"),
        pytest.param(httpx.RemoteProtocolError, True, id="protocol error may have sent"),
    ],
)
async def test_transport_failures_are_unavailable(
    exc_type: type[httpx.TransportError], maybe_sent: bool
) -> None:
    with pytest.raises(GraphUnavailable) as caught:
        await _client(_raising(exc_type)).send_message(TOKEN, "1", {"to": "+1", "type": "text"})
    assert caught.value.maybe_sent is maybe_sent
    assert "send_message" in str(caught.value)


# Tokens and secrets with characters that URL encoding changes, as well as plain ones.
ODD_TOKEN = "EAAG|odd+token/with=chars~0123456789"


def _calls(token: str, label: str = "") -> list[Any]:
    """Each client method that carries a secret, with the secrets it carries."""
    calls = [
        pytest.param(lambda g: g.debug_token(token), (token,), id="debug_token"),
        pytest.param(
            lambda g: g.debug_token(token, caller_token=CALLER),
            (token, CALLER),
            id="debug_token with caller",
        ),
        pytest.param(lambda g: g.phone_number(token, "1"), (token,), id="phone_number"),
        pytest.param(lambda g: g.waba_phone_numbers(token, "2"), (token,), id="phone_numbers"),
        pytest.param(
            lambda g: g.send_message(token, "1", {"to": "+1"}), (token,), id="send_message"
        ),
        pytest.param(
            lambda g: g.exchange_token("1", APP_SECRET, token),
            (APP_SECRET, token),
            id="exchange_token",
        ),
        pytest.param(
            lambda g: g.exchange_code("1", APP_SECRET, token),
            (APP_SECRET, token),
            id="exchange_code",
        ),
        pytest.param(
            lambda g: g.revoke_token("1", APP_SECRET, token, CALLER),
            (APP_SECRET, token, CALLER),
            id="revoke_token",
        ),
        pytest.param(lambda g: g.subscribe_app(token, "2"), (token,), id="subscribe_app"),
        pytest.param(
            lambda g: g.register_number(token, "1", "123456"), (token,), id="register_number"
        ),
    ]
    return [pytest.param(*p.values, id=f"{p.id}{label}") for p in calls]


def _echoing_envelope(request: httpx.Request) -> httpx.Response:
    """Meta (or a proxy) echoing the request back inside its error envelope."""
    text = f"bad request {request.url} {request.headers.get('authorization')} {request.content!r}"
    return httpx.Response(
        400,
        json={
            "error": {
                "message": text,
                "code": 190,
                "error_data": {"details": text},
                "fbtrace_id": "x",
            }
        },
    )


FAILURES: list[Any] = [
    pytest.param(_raising(httpx.ReadTimeout), id="read timeout"),
    pytest.param(_raising(httpx.ConnectError), id="connect error"),
    pytest.param(_raising(httpx.ReadError), id="read error"),
    pytest.param(_raising(httpx.UnsupportedProtocol), id="unsupported protocol"),
    pytest.param(_echoing_envelope, id="error envelope echoing the request"),
    pytest.param(lambda r: httpx.Response(503, text=str(r.url)), id="503 echoing the URL"),
]


@pytest.mark.parametrize("handler", FAILURES)
@pytest.mark.parametrize(
    ("call", "secrets"), _calls(TOKEN) + _calls(ODD_TOKEN, " (token with |+/=)")
)
async def test_secrets_never_appear_in_errors(
    handler: Handler, call: Callable[[GraphClient], Any], secrets: tuple[str, ...]
) -> None:
    with pytest.raises(GraphError) as caught:
        await call(_client(handler))
    err = caught.value
    shown = " ".join([str(err), repr(err), repr(err.args), repr(vars(err))])
    for secret in secrets:
        assert secret not in shown
        assert str(httpx.QueryParams({"x": secret}))[2:] not in shown  # URL-encoded form


def test_appsecret_proof_is_hmac_sha256_of_token_keyed_by_secret() -> None:
    expected = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    proof = appsecret_proof(TOKEN, APP_SECRET)
    assert proof == expected
    assert len(proof) == 64
    assert proof != appsecret_proof(TOKEN, APP_SECRET + "x")
    assert proof != appsecret_proof(TOKEN + "x", APP_SECRET)


def test_appsecret_proof_known_value() -> None:
    # Computed once with: printf %s 'token' | openssl dgst -sha256 -hmac 'secret'
    assert appsecret_proof("token", "secret") == (
        "e941110e3d2bfe82621f0e3e1434730d7305d106c5f68c87165d0b27a4611a4a"
    )


async def test_a_parsed_url_is_reused_and_no_request_changes_it_for_the_next() -> None:
    """Sends' URLs are parsed once and shared between requests (a worker posts to the same
    numbers' URLs again and again): one request's query must never stick to the shared URL."""
    recorder = Recorder(body={"id": "1"})
    graph = _client(recorder)
    assert graph._url("1555/messages", None, True) is graph._url("1555/messages", None, True)
    assert graph._url("1555", None, False) is not graph._url("1555", None, False)  # not kept
    reuse = {"reuse_url": True}
    await graph.request("GET", "1555", operation="a", params={"fields": "id"}, **reuse)
    await graph.request("GET", "1555", operation="b", **reuse)
    await graph.request(
        "GET", "1555", operation="c", params={"fields": "name"}, version="v24.0", **reuse
    )
    assert [str(r.url) for r in recorder.requests] == [
        f"{BASE}/v25.0/1555?fields=id",
        f"{BASE}/v25.0/1555",
        f"{BASE}/v24.0/1555?fields=name",
    ]


async def test_a_cookie_from_one_tenants_answer_is_not_sent_with_the_next_tenants_request() -> None:
    """httpx's own client would send tenant A's cookie to Meta with tenant B's request (it
    does: the same requests without `without_cookies` carry `session=tenant-a`)."""
    cookies: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        cookies.append(request.headers.get("cookie"))
        return httpx.Response(200, json={"id": "1"}, headers={"set-cookie": "session=tenant-a"})

    for client, expected in (
        (httpx.AsyncClient(transport=httpx.MockTransport(handler)), "session=tenant-a"),
        (without_cookies(httpx.AsyncClient(transport=httpx.MockTransport(handler))), None),
    ):
        cookies.clear()
        async with client:
            graph = GraphClient(client, base_url=BASE, version="v25.0")
            await graph.request("GET", "1", operation="tenant A", token="A" * 20)
            await graph.request("GET", "2", operation="tenant B", token="B" * 20)
        assert cookies == [None, expected]


async def test_sends_reuse_their_parsed_url_and_checks_do_not_keep_theirs() -> None:
    recorder = Recorder(body={"messages": [{"id": "wamid.1"}]})
    graph = _client(recorder)
    before = _parsed.cache_info()
    for _ in range(3):
        await graph.send_message("tok", "16505550001", {"to": "1", "type": "text"})
    await graph.phone_number("tok", "16505550002")
    after = _parsed.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 2)
    assert len(recorder.requests) == 4


OBJECT = {"data": {"is_valid": True}, "success": True}


@pytest.mark.parametrize(
    ("call", "body"),
    [
        pytest.param(
            lambda c, p: c.send_message(TOKEN, "1065", {"to": "+1"}, proof=p), OBJECT, id="send"
        ),
        pytest.param(lambda c, p: c.phone_number(TOKEN, "1065", proof=p), OBJECT, id="phone"),
        pytest.param(
            lambda c, p: c.waba_phone_numbers(TOKEN, "1022", proof=p), {"data": []}, id="numbers"
        ),
        pytest.param(
            lambda c, p: c.phone_numbers_page(TOKEN, "1022", proof=p), {"data": []}, id="page"
        ),
        pytest.param(lambda c, p: c.debug_token(TOKEN, proof=p), OBJECT, id="debug_token"),
        pytest.param(lambda c, p: c.subscribe_app(TOKEN, "1022", proof=p), OBJECT, id="subscribe"),
        pytest.param(
            lambda c, p: c.register_number(TOKEN, "1065", "123456", proof=p), OBJECT, id="register"
        ),
    ],
)
async def test_appsecret_proof_is_sent_when_given(call: Any, body: Any) -> None:
    """issue 16: apps with "Require App Secret" refuse calls without `appsecret_proof`."""
    recorder = Recorder(body=body)
    client = _client(recorder)
    proof = appsecret_proof(TOKEN, APP_SECRET)
    await call(client, proof)
    await call(client, None)
    with_proof, without = recorder.requests
    assert with_proof.url.params.get("appsecret_proof") == proof
    assert "appsecret_proof" not in without.url.params


async def test_appsecret_proof_never_reaches_an_error_text() -> None:
    proof = appsecret_proof(TOKEN, APP_SECRET)
    echo = {"error": {"message": f"bad proof {proof}", "type": "GraphMethodException", "code": 100}}
    client = _client(Recorder(status=400, body=echo))
    with pytest.raises(GraphApiError) as caught:
        await client.phone_number(TOKEN, "1065", proof=proof)
    assert proof not in str(caught.value)
    assert "[REDACTED]" in caught.value.info.message
