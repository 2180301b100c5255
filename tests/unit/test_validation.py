"""The live check of a tenant (validation.Validator) against a scripted Graph API: which
requests it makes, in which order, through the budget, and what it concludes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from whatsapp_graph.client import GraphClient, appsecret_proof
from whatsapp_graph.nodes import phone_fields
from whatsapp_operator.meta.budget import RequestBudget
from whatsapp_operator.meta.validation import Validator
from whatsapp_operator.model.conditions import Reason
from whatsapp_operator.model.spec import TenantSpec

TOKEN = "EAAGtenantTOKEN0123456789abcdefXYZ"
WABA, PHONE = "102290129340398", "106540352242922"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
DEBUG = {
    "is_valid": True,
    "type": "SYSTEM_USER",
    "expires_at": 0,
    "scopes": ["whatsapp_business_management", "whatsapp_business_messaging"],
    "granular_scopes": [{"scope": "whatsapp_business_management", "target_ids": [WABA]}],
}
NUMBER = {
    "id": PHONE,
    "display_phone_number": "+1 555-0100",
    "quality_rating": "GREEN",
    "status": "CONNECTED",
    "health_status": {"can_send_message": "AVAILABLE", "entities": []},
}


class Meta:
    """debug_token, the number, and the WABA's numbers `per_page` at a time."""

    def __init__(self, waba_numbers: list[str], per_page: int = 2) -> None:
        self.numbers, self.per_page = waba_numbers, per_page
        self.requests: list[httpx.Request] = []
        self.refuse: dict[str, dict[str, Any]] = {}  # path suffix -> error envelope

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        for suffix, error in self.refuse.items():
            if path.endswith(suffix):
                return httpx.Response(400, json={"error": error})
        if path.endswith("/debug_token"):
            return httpx.Response(200, json={"data": DEBUG})
        if path.endswith("/phone_numbers"):
            return self._page(int(request.url.params.get("after", "0")))
        return httpx.Response(200, json=NUMBER)

    def _page(self, start: int) -> httpx.Response:
        end = start + self.per_page
        paging: dict[str, Any] = {"cursors": {"after": str(end)}}
        if end < len(self.numbers):
            paging["next"] = f"https://graph.test/v25.0/{WABA}/phone_numbers?after={end}"
        data = [{"id": i} for i in self.numbers[start:end]]
        return httpx.Response(200, json={"data": data, "paging": paging})

    def kinds(self) -> list[str]:
        out = []
        for r in self.requests:
            path = r.url.path
            out.append(
                "debug_token"
                if path.endswith("debug_token")
                else f"page after={r.url.params.get('after', '-')}"
                if path.endswith("phone_numbers")
                else "phone"
            )
        return out


def spec(version: str | None = None) -> TenantSpec:
    return TenantSpec.model_validate(
        {
            "tenantId": "t_1",
            "wabaId": WABA,
            "phoneNumberId": PHONE,
            "tokenSecretRef": {"name": "s"},
            **({"graphApiVersion": version} if version else {}),
        }
    )


def validator(meta: Meta) -> tuple[Validator, RequestBudget]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(meta))
    budget = RequestBudget(1000, 1000)
    graph = GraphClient(http, base_url="https://graph.test", version="v25.0")
    return Validator(graph, budget, lambda: NOW), budget


@pytest.mark.parametrize(
    ("numbers", "kinds", "reason"),
    [
        pytest.param(
            [PHONE],
            ["debug_token", "phone", "page after=-"],
            Reason.PHONE_NUMBER_VERIFIED,
            id="found on the only page",
        ),
        pytest.param(
            ["1", "2", PHONE, "4", "5", "6"],
            ["debug_token", "phone", "page after=-", "page after=2"],
            Reason.PHONE_NUMBER_VERIFIED,
            id="found on page 2: page 3 is not read",
        ),
        pytest.param(
            ["1", "2", "3", "4", "5"],
            ["debug_token", "phone", "page after=-", "page after=2", "page after=4"],
            Reason.PHONE_NUMBER_NOT_IN_WABA,
            id="not found after the last page",
        ),
    ],
)
async def test_ownership_is_read_page_by_page_within_the_budget(
    numbers: list[str], kinds: list[str], reason: str
) -> None:
    meta = Meta(numbers)
    check_with, budget = validator(meta)
    result = await check_with.check(TOKEN, spec())
    assert result.token_verdict.reason == Reason.TOKEN_VALID
    assert result.phone_verdict.reason == reason
    assert meta.kinds() == kinds
    assert budget.granted == len(kinds)  # every request, every page, counted
    assert result.phone is not None
    assert result.phone.can_send_message == "AVAILABLE"


@pytest.mark.parametrize("version", ["v23.0", "v24.0", None])
async def test_every_request_asks_only_documented_fields(version: str | None) -> None:
    meta = Meta([PHONE])
    check_with, _ = validator(meta)
    await check_with.check(TOKEN, spec(version))
    _, phone, page = meta.requests
    assert phone.url.params["fields"] == ",".join(phone_fields(version or "v25.0"))
    assert page.url.params["fields"] == "id"
    assert page.url.params["limit"] == "100"
    for request in meta.requests:
        assert "whatsapp_business_account" not in str(request.url)
        assert request.url.path.startswith(f"/{version or 'v25.0'}/")


async def test_the_proof_goes_with_every_request() -> None:
    meta = Meta(["1", "2", PHONE])
    check_with, _ = validator(meta)
    proof = appsecret_proof(TOKEN, "app-secret")
    result = await check_with.check(TOKEN, spec(), proof)
    assert result.phone_verdict.ok
    assert len(meta.requests) == 4
    assert all(r.url.params["appsecret_proof"] == proof for r in meta.requests)


@pytest.mark.parametrize(
    ("suffix", "code", "token_reason", "phone_reason"),
    [
        pytest.param(
            "/phone_numbers", 100, Reason.TOKEN_VALID, Reason.PHONE_NUMBER_NOT_IN_WABA,
            id="the WABA's list refused: not in that WABA",
        ),
        pytest.param(
            f"/{PHONE}", 100, Reason.TOKEN_VALID, Reason.PHONE_NUMBER_NOT_FOUND,
            id="the number refused: not found",
        ),
        pytest.param(
            "/debug_token", 100, Reason.APP_SECRET_PROOF_REQUIRED, Reason.NOT_CHECKED,
            id="Meta wants a proof",
        ),
    ],
)  # fmt: skip
async def test_refusals(suffix: str, code: int, token_reason: str, phone_reason: str) -> None:
    meta = Meta([PHONE])
    message = "(#100) Tried accessing nonexisting field"
    if token_reason == Reason.APP_SECRET_PROOF_REQUIRED:
        message = "API calls from the server require an appsecret_proof argument"
    meta.refuse[suffix] = {"message": message, "type": "GraphMethodException", "code": code}
    check_with, _ = validator(meta)
    result = await check_with.check(TOKEN, spec())
    assert (result.token_verdict.reason, result.phone_verdict.reason) == (
        token_reason,
        phone_reason,
    )


async def test_a_throttled_page_pauses_the_waba() -> None:
    meta = Meta([PHONE])
    meta.refuse["/phone_numbers"] = {"message": "(#80007) Rate limit", "code": 80007}
    check_with, budget = validator(meta)
    result = await check_with.check(TOKEN, spec())
    assert result.phone_verdict.reason == Reason.GRAPH_API_THROTTLED
    assert budget._waba_held(WABA, budget._clock()) > 0


def tenant(phone: str) -> TenantSpec:
    return spec().model_copy(update={"phone_number_id": phone})


async def test_the_tenants_of_one_waba_read_its_list_once_while_fresh() -> None:
    meta = Meta(["1", "2", PHONE, "4", "5"])
    check_with, _ = validator(meta)
    first = await check_with.check(TOKEN, tenant(PHONE))  # pages 1 and 2
    second = await check_with.check(TOKEN, tenant("4"))  # seen on page 2: no read
    third = await check_with.check(TOKEN, tenant("5"))  # never seen: read again, to page 3
    assert [r.phone_verdict.reason for r in (first, second, third)] == [
        Reason.PHONE_NUMBER_VERIFIED
    ] * 3
    assert meta.kinds() == [
        "debug_token", "phone", "page after=-", "page after=2",
        "debug_token", "phone",
        "debug_token", "phone", "page after=-", "page after=2", "page after=4",
    ]  # fmt: skip


async def test_a_number_not_seen_is_always_asked_for_again() -> None:
    meta = Meta(["1", "2"])
    check_with, _ = validator(meta)
    assert not (await check_with.check(TOKEN, tenant(PHONE))).phone_verdict.ok
    meta.numbers.append(PHONE)  # added to the WABA at Meta just now
    assert (await check_with.check(TOKEN, tenant(PHONE))).phone_verdict.ok


async def test_concurrent_checks_of_one_waba_take_turns() -> None:
    meta = Meta(["1", "2", "3", "4", "5", PHONE], per_page=2)
    check_with, _ = validator(meta)
    results = await asyncio.gather(*(check_with.check(TOKEN, tenant(p)) for p in ("5", PHONE)))
    assert all(r.phone_verdict.ok for r in results)
    assert meta.kinds().count("page after=-") == 1  # the second found what the first read
