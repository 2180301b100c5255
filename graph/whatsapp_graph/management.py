"""The Graph API calls that manage a tenant rather than send for it: a token's facts
(`debug_token`), its exchange and revocation, the business numbers, the app node, the WABA
subscription and number registration. They all go through `GraphTransport.request`; the send
is in `whatsapp_graph.client`, whose `GraphClient` carries these calls too."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

from whatsapp_graph.errors import GraphUnavailable
from whatsapp_graph.nodes import MAX_PAGES, PAGE_LIMIT, Page, next_cursor, phone_fields
from whatsapp_graph.transport import GraphTransport


class GraphManagement(GraphTransport):
    """Typed calls to the management endpoints this project uses."""

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
