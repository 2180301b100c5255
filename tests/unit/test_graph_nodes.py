"""What the client asks Graph API nodes for (documented phone number fields, per version) and
how it walks a WABA's paged `phone_numbers` (whatsapp_graph/nodes.py, GraphClient)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from whatsapp_graph.client import GraphClient
from whatsapp_graph.errors import GraphApiError, GraphUnavailable
from whatsapp_graph.nodes import PHONE_FIELDS, next_cursor, phone_fields

TOKEN = "EAAGtenantTOKEN0123456789abcdefXYZ"
WABA = "102290129340398"
# Fields Meta documents on the WhatsAppBusinessPhoneNumber node (September 2026).
DOCUMENTED = {
    "id", "display_phone_number", "verified_name", "quality_rating",
    "code_verification_status", "name_status", "new_name_status", "platform_type",
    "throughput", "status", "account_mode", "health_status", "is_official_business_account",
    "messaging_limit_tier", "whatsapp_business_manager_messaging_limit",
}  # fmt: skip
OLD, NEW = "messaging_limit_tier", "whatsapp_business_manager_messaging_limit"


@pytest.mark.parametrize(
    ("version", "limit"),
    [
        pytest.param("v18.0", OLD, id="v18.0"),
        pytest.param("v21.0", OLD, id="v21.0"),
        pytest.param("v22.0", OLD, id="v22.0"),
        pytest.param("v23.0", OLD, id="v23.0: the last with the tier"),
        pytest.param("v24.0", NEW, id="v24.0: the first with the portfolio's limit"),
        pytest.param("v25.0", NEW, id="v25.0"),
        pytest.param("v26.0", NEW, id="v26.0"),
        pytest.param("v30.0", NEW, id="newer than the table"),
        pytest.param("latest", NEW, id="not a version: taken as current"),
    ],
)
def test_phone_fields_per_version(version: str, limit: str) -> None:
    fields = phone_fields(version)
    assert set(fields) <= DOCUMENTED
    assert limit in fields
    assert ({OLD, NEW} - {limit}).isdisjoint(fields)
    assert "whatsapp_business_account" not in fields
    assert {"id", "status", "health_status", "throughput", "quality_rating"} <= set(fields)


def test_the_default_fields_are_the_default_versions() -> None:
    assert phone_fields("v25.0") == PHONE_FIELDS


@pytest.mark.parametrize("version", ["v23.0", "v24.0", None])
async def test_phone_number_asks_for_its_versions_fields(version: str | None) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "1"})

    await client(handler).phone_number(TOKEN, "1", version=version)
    (request,) = seen
    assert request.url.params["fields"] == ",".join(phone_fields(version or "v25.0"))
    assert request.url.path == f"/{version or 'v25.0'}/1"


NEXT = "https://graph.facebook.com/v25.0/1/phone_numbers?limit=2&after=QVFIUmN1cnNvcg"


@pytest.mark.parametrize(
    ("body", "after"),
    [
        pytest.param(
            {"data": [], "paging": {"cursors": {"before": "b", "after": "a2"}, "next": NEXT}},
            "a2",
            id="next page: the after cursor",
        ),
        pytest.param(
            {"data": [], "paging": {"cursors": {"before": "b", "after": "a2"}}},
            None,
            id="last page: cursors but no next",
        ),
        pytest.param({"data": [], "paging": {"next": NEXT}}, "QVFIUmN1cnNvcg", id="next URL only"),
        pytest.param({"data": []}, None, id="no paging at all"),
        pytest.param({"data": [], "paging": {"next": ""}}, None, id="empty next"),
        pytest.param({"data": [], "paging": "odd"}, None, id="paging not an object"),
        pytest.param(
            {"data": [], "paging": {"next": "https://graph/x?limit=2"}},
            None,
            id="next without a cursor anywhere",
        ),
    ],
)
def test_next_cursor(body: dict[str, Any], after: str | None) -> None:
    assert next_cursor(body) == after


class Pages:
    """A WABA's numbers served `size` per page, with Meta's paging (next only when more)."""

    def __init__(self, ids: list[str], size: int = 2) -> None:
        self.ids, self.size = ids, size
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        start = int(request.url.params.get("after", "0"))
        chunk = self.ids[start : start + self.size]
        body: dict[str, Any] = {"data": [{"id": i} for i in chunk]}
        end = start + len(chunk)
        body["paging"] = {"cursors": {"before": str(start), "after": str(end)}}
        if end < len(self.ids):
            body["paging"]["next"] = f"https://graph.test/v25.0/{WABA}/phone_numbers?after={end}"
        return httpx.Response(200, json=body)


def client(handler: Any) -> GraphClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return GraphClient(http, base_url="https://graph.test", version="v25.0")


async def test_pages_are_followed_to_the_last_and_each_is_paced() -> None:
    served = Pages(["1", "2", "3", "4", "5"])
    paced: list[int] = []

    async def pace() -> None:
        paced.append(len(served.requests))

    pages = [p async for p in client(served).phone_number_pages(TOKEN, WABA, limit=2, pace=pace)]
    assert [[i["id"] for i in p.items] for p in pages] == [["1", "2"], ["3", "4"], ["5"]]
    assert [p.after for p in pages] == ["2", "4", None]
    assert paced == [0, 1, 2]  # before every request
    first, second, _ = served.requests
    assert dict(first.url.params) == {"fields": "id", "limit": "2"}
    assert dict(second.url.params) == {"fields": "id", "limit": "2", "after": "2"}
    assert first.url.path == f"/v25.0/{WABA}/phone_numbers"


async def test_waba_phone_numbers_collects_every_page() -> None:
    served = Pages([str(i) for i in range(7)], size=3)
    numbers = await client(served).waba_phone_numbers(TOKEN, WABA)
    assert [n["id"] for n in numbers] == [str(i) for i in range(7)]
    assert len(served.requests) == 3
    assert served.requests[0].url.params["fields"] == "id,display_phone_number"


async def test_paging_stops_at_max_pages_with_the_cursor_left() -> None:
    served = Pages([str(i) for i in range(10)], size=2)
    pages = [p async for p in client(served).phone_number_pages(TOKEN, WABA, max_pages=3)]
    assert len(pages) == len(served.requests) == 3
    assert pages[-1].after == "6"  # the caller can tell the list goes on


async def test_a_cursor_seen_before_ends_the_walk() -> None:
    """A server handing back the same cursor must not keep the operator reading."""
    requests: list[httpx.Request] = []

    def loop(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        paging = {"cursors": {"after": "same"}, "next": "https://graph.test/x?after=same"}
        return httpx.Response(200, json={"data": [{"id": "9"}], "paging": paging})

    pages = [p async for p in client(loop).phone_number_pages(TOKEN, WABA)]
    assert len(pages) == len(requests) == 2


async def test_a_page_without_a_data_list_is_unavailable() -> None:
    def odd(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": WABA})

    with pytest.raises(GraphUnavailable, match="phone_numbers"):
        await client(odd).phone_numbers_page(TOKEN, WABA)


async def test_an_error_on_a_later_page_is_raised() -> None:
    served = Pages(["1", "2", "3"])

    def failing_second(request: httpx.Request) -> httpx.Response:
        if "after" in request.url.params:
            error = {
                "message": "(#80007) Rate limit issues",
                "type": "OAuthException",
                "code": 80007,
            }
            return httpx.Response(400, json={"error": error})
        return served(request)

    pages = client(failing_second).phone_number_pages(TOKEN, WABA)
    first = await anext(pages)
    assert [i["id"] for i in first.items] == ["1", "2"]
    with pytest.raises(GraphApiError) as caught:
        await anext(pages)
    assert caught.value.info.code == 80007
