"""The OAuth callback of Embedded Signup as a small HTTP endpoint (off by default).

The seed's `POST /api/whatsapp/signup` took `{"code", "state"}` from anyone who could reach
it. This one takes the same body only from a caller sharing a secret with the operator:

    X-Timestamp: <unix seconds>
    X-Signature-256: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>

The body: `code`; the tenant id as `tenantId` with any `state` (the OAuth state is the
integrator's CSRF check: a random value it binds to the browser session and verifies when
Meta redirects back; the operator neither reads nor keeps it), or, without `tenantId`,
`state` carrying the tenant id (the older form, still accepted: a predictable state, so not
recommended); `waba_id`, `phone_number_id` and `business_id`, when given, are what Embedded
Signup's session message reported, and go to the signup's spec.session.

A request is refused with 401 (always the same body: no hint which check failed) when the
signature is missing or wrong, the timestamp is more than 5 minutes old or more than 1
minute ahead, or this replica already accepted the same signature; the body is limited to
16 KiB (413) and the tenant id is checked against the CRD's rule before anything is created
(400). An accepted request creates a Secret with the code and a WhatsAppSignup for it in the
configured namespace, and answers 202 with the signup's name: the signup's conditions say
how it goes. The code never appears in a log line or a response.

Replays across replicas and restarts: the signup's name is derived from the code (a keyed
hash, `signup_name`), so the API server itself, shared by every replica and kept across
restarts, refuses a second signup for the same code (AlreadyExists): 409, naming the signup
the first request made. A replay (the same signed request again within its 5 minutes, to
any replica) and a re-signed retry of a request that went through both end there. A
per-process cache would not do: two replicas serve the endpoint, and a restart empties it;
the in-process signature cache stays as a cheap first check.

Slow clients: a connection must deliver its request line and headers within
`header_timeout` (aiohttp's keep-alive timer, which also runs before the first request) and
the body within `body_timeout` (408, connection closed), so a client that sends slowly or
never finishes holds a connection for seconds, not for ever.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from whatsapp_operator.model.spec import API_VERSION
from whatsapp_operator.runtime.kube import Kube, KubeError
from whatsapp_operator.runtime.logs import REDACTOR
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
MAX_STATE = 1024  # the OAuth state is opaque: any value up to this length
HEADER_TIMEOUT = 10.0  # seconds for a connection to deliver a request's line and headers
BODY_TIMEOUT = 10.0  # seconds for the body, once the headers are in
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
    header_timeout: float = HEADER_TIMEOUT
    body_timeout: float = BODY_TIMEOUT


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


class AlreadySubmitted(Exception):
    """A signup for this code exists already (a replay, a retry, or another replica's)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a signup for this code exists already: {name}")
        self.name = name


def signup_name(secret: str, request: SignupRequest) -> str:
    """The signup's name: the tenant's, and a keyed hash of the code (the same code always
    gives the same name, so the API server refuses a second one; the code cannot be learnt
    from it, and a name says nothing to whoever lacks the secret)."""
    mac = hmac.new(secret.encode(), b"signup-code\x00" + request.code.encode(), hashlib.sha256)
    return f"{dns_name(request.tenant_id, 40)}-{mac.hexdigest()[:12]}"


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
    if state is not None and (not isinstance(state, str) or len(state) > MAX_STATE):
        return f"state must be a string of at most {MAX_STATE} characters"
    if explicit is not None and not isinstance(explicit, str):
        return "tenantId must be a string"
    # with tenantId, state is the integrator's opaque (random) value; without, the tenant id
    tenant_id = explicit if explicit is not None else state
    if not isinstance(tenant_id, str) or not valid_tenant_id(tenant_id):
        return (
            "the tenant id (tenantId, or state without tenantId) must be 1 to 50 characters: "
            "letters, digits, '_', '.', '-', starting with a letter or digit"
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
            async with asyncio.timeout(settings.body_timeout):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _json(413, {"error": f"the body is limited to {settings.max_body} bytes"})
        except TimeoutError:
            log.warning("signup callback: body not received within %g s", settings.body_timeout)
            slow = _json(408, {"error": "the body came too slowly"})
            slow.force_close()  # the rest of a slow body is not waited for
            return slow
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
        REDACTOR.add(parsed.code)  # from every log line of the process, whatever echoes it
        try:
            name = await create(parsed)
        except AlreadySubmitted as exc:
            log.warning("signup callback: request refused: code already submitted (%s)", exc.name)
            return _json(409, {"error": "this code was submitted already", "signup": exc.name,
                               "namespace": settings.namespace})  # fmt: skip
        except KubeError as exc:
            log.error("signup callback: could not create the signup: %s", exc)
            return _json(503, {"error": "the signup could not be created; sign and send again"})
        log.info("signup callback: signup %s created for tenant %s", name, parsed.tenant_id)
        return _json(202, {"signup": name, "namespace": settings.namespace})

    app = web.Application(client_max_size=settings.max_body)
    app.router.add_post(PATH, signup)
    return app


async def serve(
    app: web.Application, host: str, port: int, *, header_timeout: float = HEADER_TIMEOUT
) -> web.AppRunner:
    """Listen. aiohttp's keep-alive timer runs from the moment a connection is made, and
    until a request's line and headers are parsed nothing resets it: `keepalive_timeout`
    bounds how long a connection may take to send them (and how long it may stay idle
    between requests). The body's bound is the handler's (`body_timeout`); after an answer
    given before the whole body came (408, 413), aiohttp reads on ("lingers", 10 s by
    default) so the client sees the answer: that too is bounded by `header_timeout`."""
    runner = web.AppRunner(
        app, access_log=None, keepalive_timeout=header_timeout, lingering_time=header_timeout
    )
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def create_signup(kube: Kube, settings: CallbackSettings, request: SignupRequest) -> str:
    """The code Secret and the WhatsAppSignup for one callback; the signup's name.

    The signup's name follows from the code (`signup_name`): AlreadySubmitted when a signup
    for the code exists, whichever replica made it and whenever (the API server is the
    replay memory every replica shares). The tenant's name follows from the tenant id, so a
    second callback for the same tenant makes a signup that stops with TenantExists instead
    of a second tenant."""
    namespace, tenant_name = settings.namespace, dns_name(request.tenant_id)
    name = signup_name(settings.secret, request)
    code_secret = f"{name}-code"
    if await kube.get_custom(namespace, name, plural=SIGNUP_PLURAL) is not None:
        raise AlreadySubmitted(name)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": code_secret, "labels": {SIGNUP_ANNOTATION: name}},
        "data": {"code": _b64(request.code)},
    }
    # Exists already: a request for the same code (the same name: the same code) is at this
    # step on another replica, or failed after it; either way it holds this code. The
    # signup's creation decides which request goes on; the one that does owns the Secret.
    await kube.create_secret(namespace, secret)
    body = signup_body(
        name,
        code_secret=code_secret,
        app_credentials_secret=settings.app_credentials_secret,
        tenant_id=request.tenant_id,
        tenant_name=tenant_name,
        session=request.session,
    )
    if not await kube.create_custom(namespace, body, plural=SIGNUP_PLURAL):
        raise AlreadySubmitted(name)
    created = await kube.get_custom(namespace, name, plural=SIGNUP_PLURAL)
    uid = ((created or {}).get("metadata") or {}).get("uid")
    if uid:  # the code Secret goes when the signup goes
        owner = {"apiVersion": API_VERSION, "kind": SIGNUP_KIND, "name": name, "uid": uid}
        patch = {"metadata": {"ownerReferences": [owner]}}
        await kube.patch_secret(namespace, code_secret, patch, None)
    return name
