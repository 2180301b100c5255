"""The OAuth callback of Embedded Signup as a small HTTP endpoint (off by default).

The seed's `POST /api/whatsapp/signup` took `{"code", "state"}` from anyone who could reach
it. This one takes the same body (`state` carries the tenant id; `tenantId` may say it
explicitly; `waba_id`, `phone_number_id` and `business_id`, when given, are what Embedded
Signup's session message reported, and go to the signup's spec.session) only from a caller
sharing a secret with the operator:

    X-Timestamp: <unix seconds>
    X-Signature-256: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>

A request is refused with 401 (always the same body: no hint which check failed) when the
signature is missing or wrong, the timestamp is more than 5 minutes old or more than 1
minute ahead, or the same signature was already accepted (a replay); the body is limited to
16 KiB (413) and the tenant id is checked against the CRD's rule before anything is created
(400). An accepted request creates a Secret with the code and a WhatsAppSignup for it in the
configured namespace, and answers 202 with the signup's name: the signup's conditions say
how it goes. The code never appears in a log line or a response.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from whatsapp_operator.model.spec import API_VERSION
from whatsapp_operator.runtime.kube import Kube, KubeError
from whatsapp_operator.signup.model import (
    MAX_SECRET_VALUE,
    SIGNUP_ANNOTATION,
    SIGNUP_KIND,
    SIGNUP_PLURAL,
    dns_name,
    signup_body,
    valid_tenant_id,
)

log = logging.getLogger(__name__)
PATH = "/signup"
SIGNATURE_HEADER = "X-Signature-256"
TIMESTAMP_HEADER = "X-Timestamp"
MAX_BODY = 16 * 1024
UNAUTHORIZED = {"error": "unauthorized"}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Signature-256 value for a request (what a caller computes)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass(frozen=True)
class CallbackSettings:
    secret: str = field(repr=False)
    namespace: str
    app_credentials_secret: str
    max_body: int = MAX_BODY
    max_age: float = 300.0  # seconds a signed request stays valid
    max_future: float = 60.0  # clock skew tolerated for timestamps ahead of ours
    replay_capacity: int = 10_000  # signatures remembered; when full, requests wait (503)


# What Embedded Signup's session message reports (its `data`), as the body may carry it,
# and the signup's spec.session key for each.
SESSION_KEYS = {
    "waba_id": "wabaId",
    "phone_number_id": "phoneNumberId",
    "business_id": "businessId",
}
MAX_META_ID = 30
META_ID = re.compile(rf"[0-9]{{1,{MAX_META_ID}}}")


@dataclass(frozen=True)
class SignupRequest:
    code: str = field(repr=False)
    tenant_id: str
    session: Mapping[str, str] = field(default_factory=dict)  # spec.session (camelCase keys)


Create = Callable[[SignupRequest], Awaitable[str]]
Admission = Literal["new", "replay", "full"]


class ReplayCache:
    """Signatures accepted within the validity window, oldest first; bounded."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def admit(self, signature: str, expires: float, now: float) -> Admission:
        while self._seen:
            oldest, until = next(iter(self._seen.items()))
            if until > now:
                break
            del self._seen[oldest]
        if signature in self._seen:
            return "replay"
        if len(self._seen) >= self.capacity:
            return "full"  # forgetting a live signature would let its replay through
        self._seen[signature] = expires
        return "new"


def verify(settings: CallbackSettings, headers: Mapping[str, str], body: bytes, now: float) -> str:
    """'' when the request is authentic and fresh, else why not (for the log only)."""
    stamp = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    if not stamp.isdigit() or len(stamp) > 12 or not given.startswith("sha256="):
        return "missing or malformed signature headers"
    expected = sign(settings.secret, stamp, body).encode()
    if not hmac.compare_digest(expected, given.strip().lower().encode("ascii", "replace")):
        return "bad signature"
    age = now - int(stamp)
    if age > settings.max_age or -age > settings.max_future:
        return "timestamp outside the accepted window"
    return ""


def parse_request(body: bytes) -> SignupRequest | str:
    """The request, or what is wrong with it (safe to return to the caller)."""
    try:
        data = json.loads(body)
    except ValueError:
        return "the body must be JSON"
    if not isinstance(data, dict):
        return "the body must be a JSON object"
    code, state, explicit = data.get("code"), data.get("state"), data.get("tenantId")
    if not isinstance(code, str) or not code or len(code) > MAX_SECRET_VALUE:
        return "code must be a non-empty string"
    if any(ch.isspace() or not ch.isprintable() for ch in code):
        return "code must be a single printable value"
    if explicit is not None and (not isinstance(explicit, str) or (state and state != explicit)):
        return "tenantId must be a string equal to state when both are given"
    tenant_id = explicit or state
    if not isinstance(tenant_id, str) or not valid_tenant_id(tenant_id):
        return (
            "state (the tenant id) must be 1 to 50 characters: letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    session = parse_session(data)
    if isinstance(session, str):
        return session
    return SignupRequest(code, tenant_id, session)


def parse_session(data: Mapping[str, Any]) -> dict[str, str] | str:
    """The session ids the body carries (`waba_id`, `phone_number_id`, `business_id`, as
    Embedded Signup's session message names them), or what is wrong with them."""
    session: dict[str, str] = {}
    for key, field_name in SESSION_KEYS.items():
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not META_ID.fullmatch(value):
            return f"{key} must be a string of at most {MAX_META_ID} digits"
        session[field_name] = value
    return session


def _json(status: int, payload: Mapping[str, Any]) -> web.Response:
    return web.json_response(dict(payload), status=status)


def build_app(
    settings: CallbackSettings, create: Create, clock: Callable[[], float] = time.time
) -> web.Application:
    replays = ReplayCache(settings.replay_capacity)

    async def signup(request: web.Request) -> web.Response:
        if (request.content_length or 0) > settings.max_body:
            return _json(413, {"error": f"the body is limited to {settings.max_body} bytes"})
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _json(413, {"error": f"the body is limited to {settings.max_body} bytes"})
        now = clock()
        why = verify(settings, request.headers, body, now)
        if not why:
            stamp = int(request.headers[TIMESTAMP_HEADER])
            admitted = replays.admit(request.headers[SIGNATURE_HEADER].strip().lower(),
                                     stamp + settings.max_age, now)  # fmt: skip
            if admitted == "full":
                log.warning("signup callback: replay cache full, request refused")
                return _json(503, {"error": "busy, try again later"})
            why = "replayed request" if admitted == "replay" else ""
        if why:
            log.warning("signup callback: request refused: %s", why)
            return _json(401, UNAUTHORIZED)
        parsed = parse_request(body)
        if isinstance(parsed, str):
            return _json(400, {"error": parsed})
        try:
            name = await create(parsed)
        except KubeError as exc:
            log.error("signup callback: could not create the signup: %s", exc)
            return _json(503, {"error": "the signup could not be created; sign and send again"})
        log.info("signup callback: signup %s created for tenant %s", name, parsed.tenant_id)
        return _json(202, {"signup": name, "namespace": settings.namespace})

    app = web.Application(client_max_size=settings.max_body)
    app.router.add_post(PATH, signup)
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def create_signup(kube: Kube, settings: CallbackSettings, request: SignupRequest) -> str:
    """The code Secret and the WhatsAppSignup for one callback; the signup's name.

    The tenant's name follows from the tenant id, so a second callback for the same tenant
    makes a signup that stops with TenantExists instead of a second tenant."""
    namespace, tenant_name = settings.namespace, dns_name(request.tenant_id)
    name = f"{dns_name(request.tenant_id, 40)}-{secrets.token_hex(3)}"
    code_secret = f"{name}-code"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": code_secret, "labels": {SIGNUP_ANNOTATION: name}},
        "data": {"code": _b64(request.code)},
    }
    if not await kube.create_secret(namespace, secret):
        raise KubeError(f"Secret {namespace}/{code_secret} exists already")
    body = signup_body(
        name,
        code_secret=code_secret,
        app_credentials_secret=settings.app_credentials_secret,
        tenant_id=request.tenant_id,
        tenant_name=tenant_name,
        session=request.session,
    )
    if not await kube.create_custom(namespace, body, plural=SIGNUP_PLURAL):
        raise KubeError(f"WhatsAppSignup {namespace}/{name} exists already")
    created = await kube.get_custom(namespace, name, plural=SIGNUP_PLURAL)
    uid = ((created or {}).get("metadata") or {}).get("uid")
    if uid:  # the code Secret goes when the signup goes
        owner = {"apiVersion": API_VERSION, "kind": SIGNUP_KIND, "name": name, "uid": uid}
        patch = {"metadata": {"ownerReferences": [owner]}}
        await kube.patch_secret(namespace, code_secret, patch, None)
    return name
