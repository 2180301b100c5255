"""The receiver's HTTP side: Meta's webhooks in, confirmed messages on `whatsapp.webhooks` out.

Routes (docs/webhook.md):

    GET  /webhooks/{app_id}   handshake with that app's Verify Token
    POST /webhooks/{app_id}   notification signed with that app's App Secret
    GET  /webhook             handshake with any app's Verify Token
    POST /webhook             notification signed by any app (the one whose secret matches)
    GET  /healthz             200 while the process serves
    GET  /readyz              200 once a config is loaded and RabbitMQ is connected

A notification goes through, in this order (the first failing check answers):
no config yet 503 (not_ready), unknown app in the path 404 (unknown_app), body larger than
`max_body_bytes` 413 (too_large), no `X-Hub-Signature-256` 401 (unsigned), a signature that
is not the app's 403 (bad_signature), not JSON 400 (not_json), not Meta's shape 400
(bad_shape); then every routed change is published, persistent and confirmed (batched with
the other requests' changes for its shard: `batch.py`), and the answer is 200 only when
RabbitMQ confirmed all of them, 503 otherwise (Meta retries:
https://developers.facebook.com/docs/graph-api/webhooks/getting-started). Changes for
numbers no tenant holds are dropped and still answered 200 (Meta would retry them for days).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import Counter

from whatsapp_contract.webhook import INGRESS_EXCHANGE, ingress_shard

from . import signature
from .batch import Batcher
from .change import Change, dump_change
from .config import Index
from .logs import Throttle
from .metrics import WebhookMetrics
from .payload import BadShape, Routing, route_payload

log = logging.getLogger(__name__)

ROUTE_APP = "/webhooks/{app_id}"
ROUTE_ANY = "/webhook"
READ_CHUNK = 64 * 1024
OFFLOAD_BYTES = 256 * 1024  # larger bodies are hashed and parsed in a thread
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ConfigSource(Protocol):
    @property
    def index(self) -> Index | None: ...


class Publisher(Protocol):
    @property
    def connected(self) -> bool: ...

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
        mandatory: bool = False,
    ) -> None: ...


class Reject(Exception):
    """A refused request: its status, the `rejected` reason and a short text answer."""

    def __init__(self, status: int, reason: str, text: str) -> None:
        super().__init__(reason)
        self.status, self.reason, self.text = status, reason, text


class Ingress:
    def __init__(
        self,
        store: ConfigSource,
        metrics: WebhookMetrics,
        *,
        shards: int,
        max_body_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.metrics = store, metrics
        self.shards, self.max_body_bytes = shards, max_body_bytes
        self.clock = clock
        self.broker: Publisher | None = None  # set once connected (cli.py)
        self.stopping = False  # SIGTERM: /readyz says 503 while in-flight requests finish
        self._throttle = Throttle()
        self._shards: dict[str, str] = {}  # shard key -> routing key
        self.batcher = Batcher(self._publish_batch)
        self._children: dict[tuple[object, ...], Counter] = {}

    def _counter(self, metric: Counter, *labels: str) -> Counter:
        """`metric.labels(*labels)`, looked up once (labels() costs more than the count)."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body_bytes + 1)
        app.router.add_get(ROUTE_APP, self._observe(ROUTE_APP, self.handshake), allow_head=False)
        app.router.add_post(ROUTE_APP, self._observe(ROUTE_APP, self.notification))
        app.router.add_get(ROUTE_ANY, self._observe(ROUTE_ANY, self.handshake), allow_head=False)
        app.router.add_post(ROUTE_ANY, self._observe(ROUTE_ANY, self.notification))
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        return app

    # --- probes ------------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def missing(self) -> list[str]:
        """Why this replica should not get traffic (empty: ready)."""
        problems = []
        if self.store.index is None:
            problems.append("no receiver config loaded")
        if self.broker is None or not self.broker.connected:
            problems.append("RabbitMQ not connected")
        if self.stopping:
            problems.append("shutting down")
        return problems

    async def readyz(self, request: web.Request) -> web.Response:
        problems = self.missing()
        if problems:
            return web.Response(status=503, text="; ".join(problems))
        return web.Response(text="ready")

    # --- the webhook routes --------------------------------------------------------------------
    def _observe(self, route: str, handler: Handler) -> Handler:
        """Count every answer by route and code, time it, and turn a `Reject` into its answer."""
        metrics = self.metrics

        async def observed(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            metrics.requests_in_flight += 1
            try:
                try:
                    response = await handler(request)
                except Reject as reject:
                    self._counter(metrics.rejected, reject.reason).inc()
                    self._log_reject(request, route, reject)
                    response = web.Response(status=reject.status, text=reject.text)
                    if reject.status == 413:  # the rest of the body is not worth reading
                        response.force_close()
                except Exception:  # a bug: counted, logged, and Meta delivers it again
                    log.exception("webhook request failed", extra={"fields": {"route": route}})
                    response = web.Response(status=500, text="internal error")
                self._counter(metrics.requests, route, str(response.status)).inc()
                return response
            finally:
                metrics.requests_in_flight -= 1
                metrics.request_seconds.observe(time.perf_counter() - started)

        return observed

    def _ready_index(self) -> Index:
        index = self.store.index
        if index is None:
            raise Reject(503, "not_ready", "no receiver config loaded yet")
        return index

    def _path_app(self, request: web.Request, index: Index) -> str | None:
        """The app named in the path (None on the app-less route); 404 when not configured."""
        app_id = request.match_info.get("app_id")
        if app_id is not None and app_id not in index.apps:
            raise Reject(404, "unknown_app", "unknown app")
        return app_id

    async def handshake(self, request: web.Request) -> web.Response:
        """Meta's verification request: answer `hub.challenge` when the token is right."""
        index = self._ready_index()
        app_id = self._path_app(request, index)
        tokens = index.verify_tokens.values() if app_id is None else [index.verify_tokens[app_id]]
        challenge = signature.handshake(request.query, tokens)
        if challenge is None:
            raise Reject(403, "handshake_failed", "verification failed")
        log.info("webhook verified", extra={"fields": {"app": app_id or "(any)"}})
        return web.Response(text=challenge, content_type="text/plain")

    async def notification(self, request: web.Request) -> web.Response:
        index = self._ready_index()
        app_id = self._path_app(request, index)
        header = request.headers.get(signature.SIGNATURE_HEADER)
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            raise self._too_large()
        if header is None or not header.strip():  # before reading a body nobody signed
            raise Reject(401, "unsigned", f"missing {signature.SIGNATURE_HEADER}")
        body = await self._read_body(request)
        if len(body) > OFFLOAD_BYTES:
            signer, parsed = await asyncio.to_thread(self._check, body, header, app_id, index)
        else:
            signer, parsed = self._check(body, header, app_id, index)
        try:
            routing = route_payload(parsed, signer, index, self.clock())
        except BadShape as exc:
            raise Reject(400, "bad_shape", f"not a WhatsApp webhook payload: {exc}") from None
        self._count_drops(signer, routing)
        failures = await self._publish(routing.changes)
        if failures:
            return web.Response(status=503, text="not stored; deliver again later")
        return web.Response(text="ok")

    def _too_large(self) -> Reject:
        return Reject(413, "too_large", f"body larger than {self.max_body_bytes} bytes")

    async def _read_body(self, request: web.Request) -> bytes:
        """The raw body, refused (413) as soon as it is larger than the limit (a chunked body
        has no Content-Length: it is counted as it comes)."""
        if request.content_length is not None:  # checked against the limit already
            try:
                return await request.content.readexactly(request.content_length)
            except asyncio.IncompleteReadError:
                raise Reject(400, "not_json", "body shorter than its Content-Length") from None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(READ_CHUNK):
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large()
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _check(
        body: bytes, header: str | None, app_id: str | None, index: Index
    ) -> tuple[str, Any]:
        """(the signing app, the parsed body); the CPU part of a notification."""
        if app_id is None:
            verdict, signer = signature.find_signer(body, header, index.secrets)
        else:
            verdict, signer = signature.verify(body, header, index.secrets[app_id]), app_id
        if verdict == "unsigned":
            raise Reject(401, "unsigned", f"missing {signature.SIGNATURE_HEADER}")
        if verdict != "ok" or signer is None:
            raise Reject(403, "bad_signature", "signature does not match")
        try:
            return signer, json.loads(body)
        except ValueError:
            raise Reject(400, "not_json", "body is not JSON") from None

    def _count_drops(self, app_id: str, routing: Routing) -> None:
        for drop in routing.drops:
            self.metrics.dropped.labels(drop.reason).inc()
            allowed, held = self._throttle.allow("drop:" + drop.reason)
            if allowed:
                fields = {"reason": drop.reason, "app": app_id, "field": drop.field,
                          "id": drop.key, "held_back": held}  # fmt: skip
                log.warning("webhook change dropped", extra={"fields": fields})

    async def _publish(self, changes: tuple[Change, ...]) -> int:
        """Publish every change (batched per shard); the number RabbitMQ did not confirm."""
        if not changes:
            return 0
        if self.broker is None:
            self.metrics.publish_failures.inc(len(changes))
            self._log_publish_failure(len(changes), len(changes), "not connected yet")
            return len(changes)
        if len(changes) == 1:
            results: list[BaseException | None] = [await self._publish_one(changes[0])]
        else:
            results = await asyncio.gather(*(self._publish_one(c) for c in changes))
        failed = [r for r in results if r is not None]
        if failed:
            self.metrics.publish_failures.inc(len(failed))
            self._log_publish_failure(len(failed), len(changes), str(failed[0]))
        return len(failed)

    async def _publish_one(self, change: Change) -> BaseException | None:
        key = self._shards.get(change.shard_key)
        if key is None:  # keys are configured numbers and WABAs only: a bounded set
            key = self._shards[change.shard_key] = str(ingress_shard(change.shard_key, self.shards))
        try:
            await self.batcher.publish(key, dump_change(change))
        except Exception as exc:  # PublishFailed, or anything a test double raises
            return exc
        self._counter(self.metrics.ingress_changes, change.field).inc()
        return None

    async def _publish_batch(self, routing_key: str, body: bytes) -> None:
        broker = self.broker
        if broker is None:  # cannot happen: `_publish` checked; a clear error if it does
            raise RuntimeError("not connected to RabbitMQ")
        self.metrics.ingress_batches.inc()
        await broker.publish(INGRESS_EXCHANGE, routing_key, body, mandatory=True)

    def _log_publish_failure(self, failed: int, total: int, error: str) -> None:
        allowed, held = self._throttle.allow("publish_failed")
        if allowed:
            fields = {"failed": failed, "changes": total, "error": error, "held_back": held}
            log.warning("webhook not stored: answered 503", extra={"fields": fields})

    def _log_reject(self, request: web.Request, route: str, reject: Reject) -> None:
        allowed, held = self._throttle.allow("reject:" + reject.reason)
        if allowed:
            fields = {"reason": reject.reason, "status": reject.status, "route": route,
                      "app": request.match_info.get("app_id", "(any)")[:40],
                      "remote": request.remote or "", "held_back": held}  # fmt: skip
            log.warning("webhook rejected", extra={"fields": fields})
