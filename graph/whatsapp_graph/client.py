"""The one door to Meta's Graph API.

Every outbound call goes through `GraphClient`, which takes an injected `httpx.AsyncClient`
(so unit tests use `httpx.MockTransport` and integration tests the simulator over real HTTP)
and turns every failure into `GraphApiError` (Meta's envelope) or `GraphUnavailable`
(network, timeout, 5xx without an envelope). Tokens travel in the Authorization header where
Meta allows it; where Meta needs one in the query (`debug_token`'s input_token, oauth), the
URL never reaches an exception or a log line: errors name the operation, not the URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from whatsapp_graph.errors import GraphUnavailable
from whatsapp_graph.management import GraphManagement

# the names callers import from here, as before the request path and the management calls
# moved to `transport` and `management`
from whatsapp_graph.nodes import DEFAULT_VERSION as DEFAULT_VERSION
from whatsapp_graph.nodes import PHONE_FIELDS as PHONE_FIELDS
from whatsapp_graph.transport import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from whatsapp_graph.transport import appsecret_proof as appsecret_proof
from whatsapp_graph.transport import default_timeout as default_timeout


class GraphClient(GraphManagement):
    """Typed calls to the Graph API endpoints this project uses: the send here, the request
    path in `whatsapp_graph.transport`, the management calls in `whatsapp_graph.management`."""

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
