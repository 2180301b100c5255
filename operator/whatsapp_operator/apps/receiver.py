"""The webhook receiver's config: the Secret `whatsapp-webhook-config` (key `config.json`,
`whatsapp_contract.webhook.ReceiverConfig`) that `whatsapp-webhook` mounts, published by the
operator started with `--webhook-receiver`, in its own namespace.

It lists the Ready WhatsAppApps (with their secrets and verify tokens: the receiver checks
signatures and answers Meta's handshake with them) and the numbers it may route: those of the
tenants whose `spec.appRef` resolves to an app their namespace may use and which hold their
ids (no duplicate). App passes and tenant passes report what they want listed; one background
task writes the Secret when its content changes, debounced like the pools' publisher.

Like the pools' publisher it first adopts what is published (a restarted operator neither
rewrites an unchanged config nor drops a number before its tenant's pass reported again: a
webhook for a number missing from the config is answered 200 and dropped, so Meta would not
send it again). What no pass reported is dropped after a start-up grace, and only by a
replica whose passes run and only when the operator does not know the object (a tenant
whose first pass has not come yet, thousands of them after a restart, keeps its number): a
standby (kopf peering) reports nothing and never writes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any

from pydantic import ValidationError

from whatsapp_contract.webhook import (
    CONFIG_KEY,
    CONFIG_SECRET,
    SCHEMA_VERSION,
    AppEntry,
    NumberEntry,
    ReceiverConfig,
    dump_receiver_config,
    parse_receiver_config,
)
from whatsapp_operator.model.spec import GROUP
from whatsapp_operator.runtime.kube import Kube, KubeError
from whatsapp_operator.runtime.registry import TenantKey

log = logging.getLogger(__name__)
HASH_ANNOTATION = f"{GROUP}/content-hash"
DEBOUNCE = 0.2  # seconds: a burst of passes becomes one write
MIN_INTERVAL = 1.0  # seconds between two writes while changes keep coming
RETRY = 2.0  # seconds before a failed write is tried again


def build_receiver_config(
    apps: Iterable[AppEntry], numbers: Iterable[NumberEntry]
) -> ReceiverConfig:
    """The config from what was reported. Pure. Two apps with one app id (a mistake) keep
    the first by name; a number whose app is not listed (not Ready) is left out, as is a
    second claim on one phone number id (the tenants' claims normally prevent it)."""
    by_id: dict[str, AppEntry] = {}
    for app in sorted(apps, key=lambda a: a.name):
        by_id.setdefault(app.app_id, app)
    routed: dict[str, NumberEntry] = {}
    for number in sorted(numbers, key=lambda n: (n.namespace, n.name)):
        if number.app_id in by_id:
            routed.setdefault(number.phone_number_id, number)
    return ReceiverConfig(
        schema_version=SCHEMA_VERSION,
        apps=tuple(sorted(by_id.values(), key=lambda a: a.app_id)),
        numbers=tuple(sorted(routed.values(), key=lambda n: n.phone_number_id)),
    )


def content_hash(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()[:32]


class ReceiverPublisher:
    def __init__(
        self, kube: Kube, namespace: str, *, clock: Callable[[], float] = time.monotonic,
        startup_grace: float = 60.0,
        known_tenants: Callable[[], Collection[TenantKey]] = frozenset,
        known_apps: Callable[[], Collection[str]] = frozenset,
    ) -> None:  # fmt: skip
        """`known_tenants`, `known_apps`: the tenants and apps the operator's watches know
        now (what is adopted for one of them stays until its pass reports)."""
        self.kube = kube
        self.namespace = namespace
        self.apps: dict[str, AppEntry] = {}  # WhatsAppApp name -> entry
        self.numbers: dict[TenantKey, NumberEntry] = {}
        self._reported_apps: set[str] = set()
        self._reported_numbers: set[TenantKey] = set()
        self.published: str | None = None  # the content hash of the Secret as last seen
        self.writes = 0
        self._event = asyncio.Event()
        self._event.set()  # the first round at once: an empty config where there is none
        self._clock = clock
        self._started = clock()
        self._grace = startup_grace
        self._known_tenants = known_tenants
        self._known_apps = known_apps

    # -- what the passes report ---------------------------------------------------------------
    def set_app(self, name: str, entry: AppEntry | None) -> None:
        self._reported_apps.add(name)
        self._put(self.apps, name, entry)

    def set_number(self, key: TenantKey, entry: NumberEntry | None) -> None:
        self._reported_numbers.add(key)
        self._put(self.numbers, key, entry)

    def forget_number(self, key: TenantKey) -> None:
        self._reported_numbers.discard(key)
        self._put(self.numbers, key, None)

    def _put(self, table: dict[Any, Any], key: Any, entry: Any) -> None:
        if table.get(key) == entry:
            return
        if entry is None:
            del table[key]
        else:
            table[key] = entry
        self._event.set()

    def config(self) -> ReceiverConfig:
        return build_receiver_config(self.apps.values(), self.numbers.values())

    # -- the Secret ----------------------------------------------------------------------------
    async def load(self) -> None:
        """Adopt what is published (what a pass reported wins). Raises KubeError."""
        secret = await self.kube.read_secret(self.namespace, CONFIG_SECRET)
        if secret is None:
            self.published = None
            return
        self.published = secret.annotations.get(HASH_ANNOTATION)
        try:
            config = parse_receiver_config(base64.b64decode(secret.data.get(CONFIG_KEY, "")))
        except (ValueError, ValidationError):
            log.warning(
                "receiver config %s/%s unreadable: rewritten", self.namespace, CONFIG_SECRET
            )
            self.published = None
            return
        for app in config.apps:
            if app.name not in self._reported_apps:
                self.apps[app.name] = app
        for number in config.numbers:
            key = (number.namespace, number.name)
            if key not in self._reported_numbers:
                self.numbers[key] = number
        log.info(
            "receiver config: adopted %d apps, %d numbers", len(config.apps), len(config.numbers)
        )

    def _prune(self) -> None:
        """After the grace: drop what was adopted, never reported, and is not known to the
        operator (gone while it was away). Only where passes run: a standby reports nothing."""
        if self._clock() - self._started < self._grace:
            return
        if not (self._reported_apps or self._reported_numbers):
            return
        apps, tenants = set(self._known_apps()), set(self._known_tenants())
        for name in [n for n in self.apps if n not in self._reported_apps and n not in apps]:
            del self.apps[name]
        numbers = self.numbers
        for key in [k for k in numbers if k not in self._reported_numbers and k not in tenants]:
            del numbers[key]

    async def run(self) -> None:
        loaded = False
        while True:
            remaining = self._grace - (self._clock() - self._started)
            if remaining <= 0:
                await self._event.wait()
            else:
                try:
                    async with asyncio.timeout(remaining + 0.1):
                        await self._event.wait()
                except TimeoutError:
                    pass  # the grace is over: prune, and write if that changed anything
            await asyncio.sleep(DEBOUNCE)
            self._event.clear()
            try:
                if not loaded:  # this replica's first write: against what is published now
                    await self.load()
                    loaded = True
                self._prune()
                await self.publish()
            except KubeError as exc:
                log.error("receiver config not published: %s", exc)
                await asyncio.sleep(RETRY)
                self._event.set()
                continue
            await asyncio.sleep(MIN_INTERVAL)

    async def publish(self) -> bool:
        """Write the Secret if its content changed; True when written."""
        if not (self._reported_apps or self._reported_numbers):
            # nothing reported here (a standby, or no app yet): never overwrite what is there,
            # but create an empty config where there is none, so that a fresh install's
            # receiver loads one and turns ready (it answers 404 to every app until then)
            return await self._create_empty()
        config = self.config()
        data = dump_receiver_config(config)
        digest = content_hash(data)
        if digest == self.published:
            return False
        await self._write(data, digest)
        self.published = digest
        self.writes += 1
        log.info(
            "published receiver config %s/%s (%d apps, %d numbers, %s)", self.namespace,
            CONFIG_SECRET, len(config.apps), len(config.numbers), digest,
        )  # fmt: skip
        return True

    async def _create_empty(self) -> bool:
        if self.published is not None:
            return False
        data = dump_receiver_config(build_receiver_config((), ()))
        digest = content_hash(data)
        if not await self.kube.create_secret(self.namespace, self._body(data, digest)):
            return False  # there is one already (another replica's): left as it is
        self.published = digest
        self.writes += 1
        log.info("published an empty receiver config %s/%s", self.namespace, CONFIG_SECRET)
        return True

    def _body(self, data: bytes, digest: str) -> dict[str, Any]:
        metadata = {
            "name": CONFIG_SECRET,
            "namespace": self.namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "whatsapp-operator",
                "app.kubernetes.io/component": "webhook-config",
            },
            "annotations": {HASH_ANNOTATION: digest},
        }
        payload = {CONFIG_KEY: base64.b64encode(data).decode()}
        return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata,
                "data": payload}  # fmt: skip

    async def _write(self, data: bytes, digest: str) -> None:
        body = self._body(data, digest)
        if not await self.kube.create_secret(self.namespace, body):
            patch = {"metadata": body["metadata"], "data": body["data"]}
            await self.kube.patch_secret(self.namespace, CONFIG_SECRET, patch, None)
