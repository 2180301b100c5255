"""GraphClient on both HTTP transports against a real local socket that misbehaves on cue:
answers, Meta errors, and every way a send can fail, with whether it may have reached Meta."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import get_args

import httpx
import pytest
from httpx_aiohttp import AiohttpTransport
from pydantic import ValidationError

from whatsapp_graph.client import GraphClient
from whatsapp_graph.errors import GraphApiError, GraphUnavailable
from whatsapp_graph.http import HttpBackend, new_http_client

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "EAAGtransporttoken0123456789"
BACKENDS = get_args(HttpBackend)
Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n")
         if line.lower().startswith(b"content-length:")),
        0,
    )  # fmt: skip
    return await reader.readexactly(length)


def _answer(status: int, body: object) -> Behaviour:
    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:  # keep-alive: answer every request on the connection
            try:
                await _read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            data = json.dumps(body).encode()
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n".encode()
                + data
            )
            await writer.drain()

    return behaviour


async def _close_after_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.close()


async def _half_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"messa')
    await writer.drain()
    writer.close()


async def _never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    await asyncio.sleep(30)


@contextlib.asynccontextmanager
async def _server(behaviour: Behaviour) -> AsyncIterator[str]:
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            with contextlib.suppress(Exception):
                await behaviour(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def _graph(url: str, backend: HttpBackend) -> AsyncIterator[GraphClient]:
    timeout = httpx.Timeout(0.5, connect=0.5, pool=0.5)
    async with new_http_client(max_connections=2, timeout=timeout, backend=backend) as http:
        yield GraphClient(http, base_url=url, max_in_flight=2)


async def _send(graph: GraphClient) -> dict[str, object]:
    return await graph.send_message(TOKEN, "1555", {"to": "+34600000001", "type": "text"})


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_accepted_send_on_a_reused_connection(backend: HttpBackend) -> None:
    answer = {"messages": [{"id": "wamid.1"}]}
    async with _server(_answer(200, answer)) as url, _graph(url, backend) as graph:
        for _ in range(3):
            assert await _send(graph) == answer


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_meta_error_envelope(backend: HttpBackend) -> None:
    envelope = {"error": {"code": 131056, "message": "pair rate limit", "type": "OAuthException"}}
    async with _server(_answer(400, envelope)) as url, _graph(url, backend) as graph:
        with pytest.raises(GraphApiError) as caught:
            await _send(graph)
    assert caught.value.code == 131056


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("behaviour", "maybe_sent"),
    [
        pytest.param(_close_after_request, True, id="closed after the request"),
        pytest.param(_half_answer, True, id="closed in the middle of the answer"),
        pytest.param(_never_answer, True, id="no answer before the read timeout"),
    ],
)
async def test_a_failure_after_the_request_went_out_may_have_sent(
    backend: HttpBackend, behaviour: Behaviour, maybe_sent: bool
) -> None:
    async with _server(behaviour) as url, _graph(url, backend) as graph:
        with pytest.raises(GraphUnavailable) as caught:
            await _send(graph)
    assert caught.value.maybe_sent is maybe_sent
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_nothing_listening_did_not_send(backend: HttpBackend) -> None:
    async with _graph(f"http://127.0.0.1:{_closed_port()}", backend) as graph:
        with pytest.raises(GraphUnavailable) as caught:
            await _send(graph)
    assert caught.value.maybe_sent is False
    assert "send_message" in str(caught.value)


@pytest.mark.parametrize(
    ("backend", "transport"),
    [
        pytest.param("aiohttp", AiohttpTransport, id="aiohttp"),
        pytest.param("httpcore", httpx.AsyncHTTPTransport, id="httpcore"),
    ],
)
def test_the_backend_picks_the_transport(backend: HttpBackend, transport: type) -> None:
    client = new_http_client(max_connections=1, timeout=httpx.Timeout(1.0), backend=backend)
    assert isinstance(client._transport, transport)


def test_there_is_no_http2_setting() -> None:
    """HTTP/2 was a documented worker setting that nothing installed (`h2`) or tested: it is
    gone, from the settings, the client factory and the docs, and no test skips for `h2`."""
    from whatsapp_worker.settings import WorkerSettings

    assert "http2" not in WorkerSettings.model_fields
    with pytest.raises(ValidationError):
        WorkerSettings(http2=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        new_http_client(max_connections=1, timeout=httpx.Timeout(1.0), http2=True)  # type: ignore[call-arg]
    docs = (ROOT / "docs" / "workers.md").read_text()
    assert "`HTTP2`" not in docs
    assert "there is no HTTP/2 setting" in docs


def test_no_test_skips_for_a_missing_package() -> None:
    """CI runs every test: a package a test needs is a dependency, never an importorskip."""
    skipping = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("*.py")
        if "importorskip(" in path.read_text().replace('"importorskip("', "")
    ]
    assert skipping == []


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_cookie_set_by_an_answer_never_travels_with_the_next_request(
    backend: HttpBackend,
) -> None:
    """One client serves every tenant: a cookie from one tenant's answer must not reach Meta
    with another tenant's request (and the client does not parse Set-Cookie at all)."""
    heads: list[bytes] = []

    async def cookie_setter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (int(line.split(b":")[1]) for line in head.split(b"\r\n")
                     if line.lower().startswith(b"content-length:")),
                    0,
                )  # fmt: skip
                await reader.readexactly(length)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            heads.append(head.lower())
            data = json.dumps({"messages": [{"id": f"wamid.{len(heads)}"}]}).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Set-Cookie: session=tenant-a; Path=/\r\n"
                + f"Content-Length: {len(data)}\r\n\r\n".encode()
                + data
            )
            await writer.drain()

    timeout = httpx.Timeout(0.5, connect=0.5, pool=0.5)
    async with (
        _server(cookie_setter) as url,
        new_http_client(max_connections=2, timeout=timeout, backend=backend) as http,
    ):
        graph = GraphClient(http, base_url=url, max_in_flight=2)
        for _ in range(3):
            await _send(graph)
        assert len(http.cookies) == 0
        with pytest.raises(TypeError, match="keeps no cookies"):
            http.cookies.set("session", "x")
    assert len(heads) == 3
    assert not any(b"\r\ncookie:" in head for head in heads)
