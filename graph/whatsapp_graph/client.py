"""The one door to Meta's Graph API.

Every outbound call goes through `GraphClient`, which takes an injected `httpx.AsyncClient`
(so unit tests use `httpx.MockTransport` and integration tests the simulator over real HTTP)
and turns every failure into `GraphApiError` (Meta's envelope) or `GraphUnavailable`
(network, timeout, 5xx without an envelope). Tokens travel in the Authorization header where
Meta allows it; where Meta needs one in the query (`debug_token`'s input_token, oauth), the
URL never reaches an exception or a log line: errors name the operation, not the URL.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

import httpx

from whatsapp_graph.errors import GraphApiError, GraphUnavailable, parse_error_envelope, scrub
from whatsapp_graph.http import may_have_reached_server
from whatsapp_graph.nodes import DEFAULT_VERSION as DEFAULT_VERSION  # re-exported, as before
from whatsapp_graph.nodes import MAX_PAGES, PAGE_LIMIT, Page, next_cursor, phone_fields
from whatsapp_graph.nodes import PHONE_FIELDS as PHONE_FIELDS
from whatsapp_graph.observe import OK, TRANSPORT, Observer, http_code

DEFAULT_BASE_URL = "https://graph.facebook.com"


def appsecret_proof(token: str, app_secret: str) -> str:
    """hex HMAC-SHA256 of the token keyed by the app secret (Meta's `appsecret_proof`)."""
    return hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def default_timeout() -> httpx.Timeout:
    return httpx.Timeout(connect=5.0, read=15.0, write=10.0, pool=10.0)


class GraphClient:
    """Typed calls to the Graph API endpoints this project uses."""

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

    async def debug_token(
        self,
        input_token: str,
        *,
        caller_token: str | None = None,
        version: str | None = None,
        proof: str | None = None,
    ) -> dict[str, Any]:
        """`GET /debug_token`: Meta's facts about a token (the caller may be the token itself)."""
        body = await self.request(
            "GET",
            "debug_token",
            operation="debug_token",
            token=caller_token or input_token,
            params={"input_token": input_token},
            version=version,
            proof=proof,
            secrets=(input_token,),
        )
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise GraphUnavailable("debug_token: response has no data object")
        return data

    async def phone_number(
        self,
        token: str,
        phone_number_id: str,
        *,
        fields: tuple[str, ...] | None = None,
        version: str | None = None,
        proof: str | None = None,
    ) -> dict[str, Any]:
        """`GET /{phone-number-id}?fields=...`: what Meta reports about a business number
        (by default the documented fields of `version`, see `phone_fields`)."""
        wanted = fields if fields is not None else phone_fields(version or self.version)
        body = await self.request(
            "GET",
            phone_number_id,
            operation="phone_number",
            token=token,
            params={"fields": ",".join(wanted)},
            version=version,
            proof=proof,
        )
        if not isinstance(body, dict):
            raise GraphUnavailable("phone_number: response is not an object")
        return body

    async def phone_numbers_page(
        self,
        token: str,
        waba_id: str,
        *,
        after: str | None = None,
        fields: tuple[str, ...] = ("id",),
        limit: int = PAGE_LIMIT,
        version: str | None = None,
        proof: str | None = None,
    ) -> Page:
        """`GET /{waba-id}/phone_numbers?fields=...&limit=...[&after=...]`: one page."""
        params = {"fields": ",".join(fields), "limit": str(limit)}
        if after is not None:
            params["after"] = after
        body = await self.request(
            "GET",
            f"{waba_id}/phone_numbers",
            operation="phone_numbers",
            token=token,
            params=params,
            version=version,
            proof=proof,
        )
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise GraphUnavailable("phone_numbers: response has no data list")
        return Page(tuple(d for d in data if isinstance(d, dict)), next_cursor(body))

    async def phone_number_pages(
        self,
        token: str,
        waba_id: str,
        *,
        fields: tuple[str, ...] = ("id",),
        limit: int = PAGE_LIMIT,
        max_pages: int = MAX_PAGES,
        pace: Callable[[], Awaitable[None]] | None = None,
        version: str | None = None,
        proof: str | None = None,
    ) -> AsyncGenerator[Page, None]:
        """The WABA's numbers page by page, until the last page or `max_pages` (the last
        page yielded then still has an `after`). `pace` is awaited before every request
        (the operator's request budget: each page counts). A cursor seen before ends it."""
        after: str | None = None
        seen: set[str] = set()
        for _ in range(max_pages):
            if pace is not None:
                await pace()
            page = await self.phone_numbers_page(
                token, waba_id, after=after, fields=fields, limit=limit, version=version,
                proof=proof,
            )  # fmt: skip
            yield page
            if page.after is None or page.after in seen:
                return
            seen.add(page.after)
            after = page.after

    async def waba_phone_numbers(
        self,
        token: str,
        waba_id: str,
        *,
        fields: tuple[str, ...] = ("id", "display_phone_number"),
        max_pages: int = MAX_PAGES,
        pace: Callable[[], Awaitable[None]] | None = None,
        version: str | None = None,
        proof: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every number of the WABA (up to `max_pages` pages), in Meta's order."""
        numbers: list[dict[str, Any]] = []
        pages = self.phone_number_pages(
            token, waba_id, fields=fields, max_pages=max_pages, pace=pace, version=version,
            proof=proof,
        )  # fmt: skip
        async for page in pages:
            numbers.extend(page.items)
        return numbers

    async def send_message(
        self,
        token: str,
        phone_number_id: str,
        payload: Mapping[str, Any],
        *,
        version: str | None = None,
        proof: str | None = None,
    ) -> dict[str, Any]:
        """`POST /{phone-number-id}/messages`; 200 means accepted, not delivered."""
        body = await self.request(
            "POST",
            f"{phone_number_id}/messages",
            operation="send_message",
            token=token,
            json={"messaging_product": "whatsapp", **payload},
            version=version,
            proof=proof,
            reuse_url=True,
        )
        if not isinstance(body, dict):
            raise GraphUnavailable("send_message: response is not an object")
        return body

    async def exchange_token(
        self, app_id: str, app_secret: str, token: str, *, version: str | None = None
    ) -> dict[str, Any]:
        """`fb_exchange_token`: a fresh 60-day token for an expiring system user token."""
        body = await self.request(
            "GET",
            "oauth/access_token",
            operation="exchange_token",
            params={
                "grant_type": "fb_exchange_token",
                "client_id": app_id,
                "client_secret": app_secret,
                "set_token_expires_in_60_days": "true",
                "fb_exchange_token": token,
            },
            version=version,
            secrets=(app_secret, token),
        )
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise GraphUnavailable("exchange_token: response has no access_token")
        return body

    async def exchange_code(
        self, app_id: str, app_secret: str, code: str, *, version: str | None = None
    ) -> dict[str, Any]:
        """Embedded Signup: trade the OAuth code for a business integration token."""
        body = await self.request(
            "GET",
            "oauth/access_token",
            operation="exchange_code",
            params={"client_id": app_id, "client_secret": app_secret, "code": code},
            version=version,
            secrets=(app_secret, code),
        )
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise GraphUnavailable("exchange_code: response has no access_token")
        return body

    async def revoke_token(
        self,
        app_id: str,
        app_secret: str,
        token: str,
        caller_token: str,
        *,
        version: str | None = None,
    ) -> None:
        await self.request(
            "GET",
            "oauth/revoke",
            operation="revoke_token",
            params={
                "client_id": app_id,
                "client_secret": app_secret,
                "revoke_token": token,
                "access_token": caller_token,
            },
            version=version,
            secrets=(app_secret, token, caller_token),
        )

    async def app(
        self,
        app_id: str,
        app_secret: str,
        *,
        fields: tuple[str, ...] = ("id", "name"),
        version: str | None = None,
    ) -> dict[str, Any]:
        """`GET /{app-id}?fields=id,name` with the app access token `{app-id}|{app-secret}`
        (Meta: https://developers.facebook.com/docs/facebook-login/guides/access-tokens#apptokens;
        the Application node: https://developers.facebook.com/docs/graph-api/reference/
        application/). Proves that Meta knows the app and that the secret is its secret."""
        app_token = f"{app_id}|{app_secret}"
        body = await self.request(
            "GET",
            quote(app_id, safe=""),
            operation="app",
            token=app_token,
            params={"fields": ",".join(fields)},
            version=version,
            secrets=(app_secret, app_token),
        )
        if not isinstance(body, dict):
            raise GraphUnavailable("app: response is not an object")
        return body

    async def subscribe_app(
        self, token: str, waba_id: str, *, version: str | None = None, proof: str | None = None
    ) -> None:
        await self.request(
            "POST",
            f"{waba_id}/subscribed_apps",
            operation="subscribe_app",
            token=token,
            version=version,
            proof=proof,
        )

    async def register_number(
        self,
        token: str,
        phone_number_id: str,
        pin: str,
        *,
        version: str | None = None,
        proof: str | None = None,
    ) -> None:
        await self.request(
            "POST",
            f"{phone_number_id}/register",
            operation="register_number",
            token=token,
            json={"messaging_product": "whatsapp", "pin": pin},
            version=version,
            proof=proof,
            secrets=(pin,),
        )


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
