"""A webhook receiver for tests: records every request the simulator sends it.

    async with run_recorder(verify_token="tok") as recorder:
        admin.set_webhook(app_id, recorder.url, "tok")       # the handshake succeeds
        recorder.answers.extend([500, 500])                   # the next two POSTs fail
        ...
        await recorder.wait_for(lambda r: len(r.posts) >= 2)
        recorder.posts[0].body, .headers, .payload

It answers the verification GET as a receiver must (200 with `hub.challenge` when
`hub.verify_token` matches, else 403) and each POST with the next of `answers` (200 when
empty). It checks nothing else: tests verify signatures themselves, from the raw bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def payload(self) -> Any:
        return json.loads(self.body)

    def signed_by(self, secret: str) -> bool:
        """Whether `X-Hub-Signature-256` is `sha256=` + hex HMAC-SHA256(secret, raw body)
        (computed here, independently of the simulator's own signing code)."""
        digest = hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("X-Hub-Signature-256", ""), "sha256=" + digest)


@dataclass
class Recorder:
    verify_token: str = ""
    answers: deque[int] = field(default_factory=deque)  # next POST answers; then 200
    delay: float = 0.0  # seconds before answering a POST (a slow receiver)
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    @property
    def posts(self) -> list[Received]:
        return [r for r in self.requests if r.method == "POST"]

    @property
    def gets(self) -> list[Received]:
        return [r for r in self.requests if r.method == "GET"]

    def statuses(self) -> list[tuple[str, str]]:
        """(wamid, status) of every status in the POSTs received, in arrival order."""
        found = []
        for post in self.posts:
            for entry in post.payload.get("entry", []):
                for change in entry.get("changes", []):
                    items = change.get("value", {}).get("statuses", [])
                    found += [(str(s["id"]), str(s["status"])) for s in items]
        return found

    async def wait_for(self, done: Callable[[Recorder], bool], within: float = 5.0) -> None:
        """Until `done(self)` is true; TimeoutError after `within` seconds."""
        deadline = time.monotonic() + within
        while not done(self):
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met; {len(self.posts)} POSTs received")
            await asyncio.sleep(0.01)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(
            Received(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=body,
                at=time.time(),
            )
        )
        if request.method == "GET":
            query = request.query
            ok = query.get("hub.mode") == "subscribe" and self.verify_token
            if ok and query.get("hub.verify_token") == self.verify_token:
                return web.Response(text=query.get("hub.challenge", ""))
            return web.Response(status=403, text="verification failed")
        status = self.answers.popleft() if self.answers else 200
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=status, text="ok" if status == 200 else "no")


@asynccontextmanager
async def run_recorder(
    verify_token: str = "", path: str = "/webhook", host: str = "127.0.0.1"
) -> AsyncIterator[Recorder]:
    """Serve a `Recorder` on a free port; `recorder.url` is its callback URL."""
    recorder = Recorder(verify_token=verify_token)
    app = web.Application()
    app.router.add_route("*", path, recorder.handle)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, 0)
        await site.start()
        port = int(runner.addresses[0][1])
        recorder.url = f"http://{host}:{port}{path}"
        yield recorder
    finally:
        await runner.cleanup()
