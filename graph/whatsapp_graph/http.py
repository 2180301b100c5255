"""The HTTP clients `GraphClient` runs on, and which transport failures may have reached Meta.

Two transports under the same `httpx.AsyncClient` API:
- `aiohttp` (the default, for the sender worker and the operator): httpx's request/response
  model on aiohttp's connection pool and C HTTP parser, via `httpx-aiohttp` (by an httpx
  maintainer; the OpenAI and Anthropic SDKs ship it as their aiohttp backend). Measured on
  the sending benchmark: the worker's CPU per message fell by about 40 % (py-spy: httpcore's
  pool checks every idle connection with a `getpeername` system call on each request).
- `httpcore`: httpx's own transport.

Both speak HTTP/1.1 only. HTTP/2 was a worker setting once (it forced `httpcore`, the
transport that costs more CPU per message) and was removed untested: `h2` was never installed,
the simulator serves HTTP/1.1, and no measurement showed a gain over pooled warm connections.

httpx-aiohttp maps every `aiohttp.ClientConnectionError` without a better match to
`httpx.ConnectTimeout`, including a server that closed the connection after the request
went out. Whether a failed send may have reached Meta decides whether it is counted as a
possible duplicate, so `may_have_reached_server` looks at the aiohttp cause first.

Neither client keeps cookies. One client serves every tenant, so a cookie set in an answer to
one tenant's request must never be sent with another's; and httpx parses every response into
its cookie jar through urllib's machinery: 8 % of the sender worker's busy time (py-spy).
"""

from __future__ import annotations

from typing import Literal

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

HttpBackend = Literal["aiohttp", "httpcore"]


def new_http_client(
    *,
    max_connections: int,
    timeout: httpx.Timeout,
    backend: HttpBackend = "aiohttp",
) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` (HTTP/1.1) with a pool of `max_connections`."""
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    if backend == "httpcore":
        return without_cookies(httpx.AsyncClient(limits=limits, timeout=timeout))
    return without_cookies(
        httpx.AsyncClient(transport=AiohttpTransport(limits=limits), timeout=timeout)
    )


class NoCookies(httpx.Cookies):
    """A cookie store that stays empty: answers' Set-Cookie headers are not even parsed."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        raise TypeError("this client keeps no cookies (see whatsapp_graph.http)")


def without_cookies(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The client, made to keep no cookies (module doc). httpx has no switch for it: its
    `cookies` setter copies into a new `Cookies`, so the store is replaced directly."""
    client._cookies = NoCookies()
    return client


def may_have_reached_server(exc: httpx.HTTPError) -> bool:
    """False only when the request certainly never left: no connection, or no free one."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return False  # connecting failed or timed out (the aiohttp pool wait included)
    if isinstance(
        cause,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientOSError
        | aiohttp.ClientPayloadError
        | aiohttp.SocketTimeoutError,
    ):
        return True  # the connection was up: the request may have been written
    if isinstance(exc, httpx.TimeoutException):
        return not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
    return isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError)
