"""GraphClient's own queue: never more requests at httpx than `max_in_flight` (requests that
queue inside httpcore's pool can leave it unusable, encode/httpcore#1093)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from whatsapp_graph.client import GraphClient


@pytest.mark.parametrize(("gate", "most"), [(2, 2), (None, 10)])
async def test_requests_beyond_the_gate_wait_in_the_client(gate: int | None, most: int) -> None:
    now, peak = 0, 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal now, peak
        now += 1
        peak = max(peak, now)
        await asyncio.sleep(0.02)
        now -= 1
        return httpx.Response(200, json={"data": {"is_valid": True}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        graph = GraphClient(http, base_url="http://graph.test", max_in_flight=gate)
        results = await asyncio.gather(
            *(graph.request("GET", "debug_token", operation="debug_token") for _ in range(10))
        )
    assert len(results) == 10
    assert peak == most
