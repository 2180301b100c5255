"""GraphClient against Meta's documented answers: each fixture served through MockTransport.

The client must turn every documented success into the values callers read (wamid, wa_id,
token facts, phone fields) and every documented error envelope into `GraphApiError` with
the documented code, subcode, message, details, type and HTTP status. Every documented
error code must have a class in `whatsapp_graph.errors` (not UNKNOWN).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from whatsapp_graph.client import GraphClient
from whatsapp_graph.errors import ErrorClass, GraphApiError, TokenProblem, classify, token_problem

from .corpus import Fixture, all_fixtures

BASE = "https://graph.contract.test"
TOKEN = "EAAJBcontractTOKEN0123456789"
CALLER = "EAAJicontractCALLER987654321"
APP_ID, APP_SECRET = "634974688087057", "contract-app-secret"
# A status to serve where Meta documents none: the client must not depend on it.
UNDOCUMENTED_STATUS = 400

FIXTURES = all_fixtures()
ERRORS = [f for f in FIXTURES if f.is_error]
SUCCESSES = [f for f in FIXTURES if not f.is_error]


def served_status(fixture: Fixture) -> int:
    return fixture.response.status if fixture.response.status is not None else UNDOCUMENTED_STATUS


class Serve:
    """A MockTransport handler answering with the fixture's documented response."""

    def __init__(self, fixture: Fixture) -> None:
        self.fixture = fixture
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.fixture.response
        return httpx.Response(
            served_status(self.fixture), json=response.body, headers=dict(response.headers)
        )


async def call_client(fixture: Fixture, handler: Serve) -> Any:
    """Make the call the fixture documents, with the page's example ids and values."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    version = fixture.request.path_params.get("version")
    client = GraphClient(http, base_url=BASE, version=version or "v25.0")
    params = fixture.request.path_params
    query = fixture.request.query
    try:
        match fixture.call:
            case "send_message":
                no_token = fixture.name == "error_104_no_token"
                return await client.send_message(
                    "" if no_token else TOKEN, params["phone-number-id"], fixture.request.body
                )
            case "register_number":
                return await client.register_number(
                    TOKEN, params["phone-number-id"], fixture.request.body["pin"]
                )
            case "debug_token":
                return await client.debug_token(query["input_token"], caller_token=CALLER)
            case "phone_number":
                if "fields" in query:
                    fields = tuple(query["fields"].split(","))
                    return await client.phone_number(
                        TOKEN, params["phone-number-id"], fields=fields
                    )
                return await client.phone_number(TOKEN, params["phone-number-id"])
            case "waba_phone_numbers":
                return await client.waba_phone_numbers(TOKEN, params["waba-id"])
            case "exchange_token":
                return await client.exchange_token(
                    query["client_id"], query["client_secret"], query["fb_exchange_token"]
                )
            case "exchange_code":
                return await client.exchange_code(
                    query["client_id"], query["client_secret"], query["code"]
                )
    finally:
        await http.aclose()
    raise AssertionError(f"no client call for {fixture.call}")


def check_request(fixture: Fixture, handler: Serve) -> None:
    """The client called the documented method and path (ids and version substituted)."""
    assert handler.requests, "the client sent nothing"
    request = handler.requests[-1]
    assert request.method == fixture.request.method
    assert request.url.path == fixture.request.url_path()


@pytest.mark.parametrize("fixture", SUCCESSES, ids=lambda f: f.name)
async def test_documented_success_is_parsed(fixture: Fixture) -> None:
    handler = Serve(fixture)
    result = await call_client(fixture, handler)
    check_request(fixture, handler)
    body: Mapping[str, Any] = fixture.response.body
    match fixture.call:
        case "send_message":
            assert result["messages"][0]["id"] == body["messages"][0]["id"]
            assert result["contacts"][0]["wa_id"] == body["contacts"][0]["wa_id"]
            assert result["contacts"][0]["input"] == body["contacts"][0]["input"]
            status = body["messages"][0].get("message_status")
            assert result["messages"][0].get("message_status") == status
        case "debug_token":
            data = body["data"]
            assert result["type"] == data["type"]
            assert result["expires_at"] == data["expires_at"]
            assert result["data_access_expires_at"] == data["data_access_expires_at"]
            assert result["scopes"] == data["scopes"]
            assert result["granular_scopes"] == data["granular_scopes"]
            assert result["is_valid"] is data["is_valid"]
            assert result == data
        case "phone_number":
            for key, value in body.items():
                assert result[key] == value, key
        case "waba_phone_numbers":
            assert result == body["data"]
        case "exchange_token" | "exchange_code":
            assert result["access_token"] == body["access_token"]
            assert result.get("expires_in") == body.get("expires_in")
            assert result.get("token_type") == body.get("token_type")
        case _:
            raise AssertionError(f"unexpected success fixture {fixture.name}")


@pytest.mark.parametrize("fixture", ERRORS, ids=lambda f: f.name)
async def test_documented_error_becomes_graph_api_error(fixture: Fixture) -> None:
    handler = Serve(fixture)
    with pytest.raises(GraphApiError) as raised:
        await call_client(fixture, handler)
    check_request(fixture, handler)
    info = raised.value.info
    error = fixture.error
    assert info.code == error["code"]
    assert info.subcode == error.get("error_subcode")
    assert info.type == error["type"]
    assert info.message == error.get("message", "")
    assert info.details == fixture.details
    assert info.fbtrace_id == error.get("fbtrace_id")
    assert info.http_status == served_status(fixture)


@pytest.mark.parametrize("fixture", ERRORS, ids=lambda f: f.name)
def test_documented_code_is_classified(fixture: Fixture) -> None:
    code = fixture.error["code"]
    assert classify(code).error_class is not ErrorClass.UNKNOWN, (
        f"code {code} is documented ({fixture.source}) but not classified"
    )


# Subcode meanings from the Graph error-handling page (its "Error Subcodes" table).
SUBCODE_PROBLEMS = {
    458: TokenProblem.APP_REMOVED,
    460: TokenProblem.PASSWORD_CHANGED,
    463: TokenProblem.EXPIRED,
    464: TokenProblem.CHECKPOINT,
}


@pytest.mark.parametrize(
    "fixture",
    [f for f in ERRORS if f.error.get("error_subcode") in SUBCODE_PROBLEMS],
    ids=lambda f: f.name,
)
def test_documented_token_subcode_is_read(fixture: Fixture) -> None:
    subcode = fixture.error["error_subcode"]
    assert token_problem(fixture.error["code"], subcode) is SUBCODE_PROBLEMS[subcode]
