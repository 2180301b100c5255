"""The request path every Graph API call shares: `GraphTransport`, the base of `GraphClient`.

One request through the injected `httpx.AsyncClient`, behind the optional in-flight gate and
told to the observer; its answer decoded into the body, or into `GraphApiError` (Meta's
envelope) or `GraphUnavailable` (network, timeout, 5xx without an envelope) whose text shows
neither the token nor the `secrets` of the call, also URL-encoded: errors name the operation,
not the URL.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, quote_plus

import httpx

from whatsapp_graph.errors import GraphApiError, GraphUnavailable, parse_error_envelope, scrub
from whatsapp_graph.http import may_have_reached_server
from whatsapp_graph.nodes import DEFAULT_VERSION
from whatsapp_graph.observe import OK, TRANSPORT, Observer, http_code

DEFAULT_BASE_URL = "https://graph.facebook.com"


def appsecret_proof(token: str, app_secret: str) -> str:
    """hex HMAC-SHA256 of the token keyed by the app secret (Meta's `appsecret_proof`)."""
    return hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def default_timeout() -> httpx.Timeout:
    return httpx.Timeout(connect=5.0, read=15.0, write=10.0, pool=10.0)


class GraphTransport:
    """One request to the Graph API: URL, token, `appsecret_proof`, the in-flight gate, the
    observer, and the decoding of every answer into a body or a GraphError subclass."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str = DEFAULT_BASE_URL,
        version: str = DEFAULT_VERSION,
        max_in_flight: int | None = None,
        observer: Observer | None = None,
    ) -> None:
        """`max_in_flight`: requests beyond it wait here, never in httpx's connection pool.
        Set it to the client's `max_connections`: a request cancelled or timed out while
        queued for a connection can leave httpcore's pool unusable for good (every later
        request a PoolTimeout, encode/httpcore#1093); a 10,000-tenant start-up hit that.
        `observer`: told of each request that ended (operation, outcome code, seconds; see
        `whatsapp_graph.observe`); the wait for `max_in_flight` is not in the seconds."""
        self._http = http
        self.base_url = base_url.rstrip("/")
        self.version = version
        self._gate = asyncio.Semaphore(max_in_flight) if max_in_flight else None
        self._observer = observer

    def _url(self, path: str, version: str | None, reuse: bool) -> httpx.URL:
        url = f"{self.base_url}/{version or self.version}/{path.lstrip('/')}"
        return _parsed(url) if reuse else httpx.URL(url)

    async def request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        token: str | None = None,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        version: str | None = None,
        secrets: tuple[str, ...] = (),
        reuse_url: bool = False,
        proof: str | None = None,
    ) -> Any:
        """One call; returns the decoded JSON body or raises a GraphError subclass.
        `reuse_url`: the URL is parsed once and kept (`_parsed`), for the sends; an operator
        checking 10,000 numbers once an hour would only fill that cache with its own.
        `proof`: the token's `appsecret_proof`, sent as a query parameter (Meta reads it
        there for GET and POST alike), for apps that set "Require App Secret"."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if proof is not None:
            params = {**(params or {}), "appsecret_proof": proof}
            secrets = (*secrets, proof)
        url = self._url(path, version, reuse_url)
        try:
            if self._gate is None:
                response, seconds = await self._timed(operation, method, url, params, json, headers)
            else:
                async with self._gate:
                    response, seconds = await self._timed(
                        operation, method, url, params, json, headers
                    )
        except httpx.TimeoutException as exc:
            raise GraphUnavailable(
                f"{operation}: Graph API timed out ({type(exc).__name__})",
                maybe_sent=may_have_reached_server(exc),
            ) from None
        except httpx.HTTPError as exc:
            sent = may_have_reached_server(exc)
            reason = scrub(str(exc), _redactions(token, secrets))[:200] or type(exc).__name__
            raise GraphUnavailable(
                f"{operation}: Graph API unreachable: {reason}", maybe_sent=sent
            ) from None
        if self._observer is None:
            return self._decode(response, operation, token, secrets)
        try:
            body = self._decode(response, operation, token, secrets)
        except GraphApiError as exc:
            self._observer(operation, str(exc.code), seconds)
            raise
        except GraphUnavailable:
            self._observer(operation, http_code(response.status_code), seconds)
            raise
        self._observer(operation, OK, seconds)
        return body

    async def _timed(
        self,
        operation: str,
        method: str,
        url: httpx.URL,
        params: Mapping[str, str] | None,
        json: Any,
        headers: dict[str, str],
    ) -> tuple[httpx.Response, float]:
        """The answer and the seconds it took; a request that got none is observed here."""
        started = time.perf_counter()
        try:
            response = await self._http.request(
                method, url, params=params, json=json, headers=headers
            )
        except httpx.HTTPError:
            if self._observer is not None:
                self._observer(operation, TRANSPORT, time.perf_counter() - started)
            raise
        return response, time.perf_counter() - started

    @staticmethod
    def _decode(
        response: httpx.Response, operation: str, token: str | None, secrets: tuple[str, ...]
    ) -> Any:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code < 400 and isinstance(payload, dict) and "error" not in payload:
            return payload  # the usual answer: nothing to read as an error, nothing to redact
        info = parse_error_envelope(payload, response.status_code, _redactions(token, secrets))
        if info is not None:
            raise GraphApiError(info)
        if response.status_code >= 500 or response.status_code == 429:
            raise GraphUnavailable(
                f"{operation}: Graph API answered HTTP {response.status_code}", maybe_sent=True
            )
        if response.status_code >= 400 or payload is None:
            raise GraphUnavailable(
                f"{operation}: unexpected HTTP {response.status_code} without an error body",
                maybe_sent=True,
            )
        return payload


def _redactions(token: str | None, secrets: tuple[str, ...]) -> tuple[str, ...]:
    """What error texts must not show: the token and secrets, also URL-encoded (secrets in
    the query string appear so in exception texts and echoes). Built only on an error."""
    return tuple(
        dict.fromkeys(v for s in (token, *secrets) if s for v in (s, quote_plus(s), quote(s)))
    )


@functools.lru_cache(maxsize=4096)
def _parsed(url: str) -> httpx.URL:
    """The URL parsed once: a worker posts to the same few thousand numbers' URLs again and
    again, and httpx parsed each string anew (4 % of the sender's busy time, py-spy). httpx
    URLs are immutable."""
    return httpx.URL(url)
