"""The receiver's config: the apps (their secrets) and the numbers it may route to.

The operator publishes a `ReceiverConfig` (whatsapp_contract.webhook) as the Secret
`whatsapp-webhook-config`; the receiver mounts it and reads the file named by `--config`.
kubelet updates a Secret volume by writing a new timestamped directory and swapping the
`..data` symlink (the visible `config.json` is a symlink through it), so the store polls the
file's identity (`stat` through the symlinks: device, inode, size, mtime) and, when it
changed, reads the bytes once and compares their hash: a new content is parsed and swapped in
with one assignment. Readers take `store.index` once per request and never see a half-loaded
state.

A bad file (unreadable, not JSON, not a ReceiverConfig) never drops what is loaded: the last
good config stays, the problem is logged (without any value from the file) and counted.
Until a first config is loaded the receiver is not ready (/readyz 503).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from pydantic import ValidationError

from whatsapp_contract.redaction import REDACTOR
from whatsapp_contract.webhook import (
    AppEntry,
    NumberEntry,
    ReceiverConfig,
    digits,
    parse_receiver_config,
)

log = logging.getLogger(__name__)

REREAD_AFTER = 60.0  # seconds: the bytes are hashed again even when the file looks unchanged


@dataclass(frozen=True)
class Index:
    """One loaded config, indexed for routing. Never mutated."""

    config: ReceiverConfig
    content_hash: str
    apps: Mapping[str, AppEntry]
    numbers: Mapping[str, NumberEntry]  # by phone_number_id
    wabas: Mapping[str, tuple[NumberEntry, ...]]  # by WABA id (entry[].id), every app's
    displays: Mapping[tuple[str, str], tuple[NumberEntry, ...]]  # (WABA id, display digits)
    secrets: Mapping[str, bytes] = field(repr=False)  # app id -> App Secret
    verify_tokens: Mapping[str, bytes] = field(repr=False)  # app id -> Verify Token


def index_config(config: ReceiverConfig, content_hash: str = "") -> Index:
    """Pure: the lookups the ingress needs, built once per load."""
    wabas: dict[str, list[NumberEntry]] = defaultdict(list)
    displays: dict[tuple[str, str], list[NumberEntry]] = defaultdict(list)
    for number in config.numbers:
        wabas[number.waba_id].append(number)
        if number.display_phone_number and digits(number.display_phone_number):
            displays[(number.waba_id, digits(number.display_phone_number))].append(number)
    return Index(
        config=config,
        content_hash=content_hash,
        apps=MappingProxyType({a.app_id: a for a in config.apps}),
        numbers=MappingProxyType({n.phone_number_id: n for n in config.numbers}),
        wabas=MappingProxyType({k: tuple(v) for k, v in wabas.items()}),
        displays=MappingProxyType({k: tuple(v) for k, v in displays.items()}),
        secrets=MappingProxyType(
            {a.app_id: a.app_secret.get_secret_value().encode() for a in config.apps}
        ),
        verify_tokens=MappingProxyType(
            {a.app_id: a.verify_token.get_secret_value().encode() for a in config.apps}
        ),
    )


def describe_error(exc: Exception) -> str:
    """What went wrong, without any value from the file (it holds secrets)."""
    if isinstance(exc, ValidationError):
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        ]
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        return "invalid ReceiverConfig: " + "; ".join(problems[:3]) + more
    if isinstance(exc, OSError):
        return f"cannot read: {exc.strerror or type(exc).__name__}"
    return f"invalid: {type(exc).__name__}"


class ConfigMetrics(Protocol):
    def config_loaded(self, index: Index, at: float) -> None: ...

    def config_failed(self, reason: str) -> None: ...


class ConfigStore:
    """The mounted config file, reloaded when it changes; `index` is None until loaded."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        metrics: ConfigMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self._metrics = metrics
        self._clock, self._wall = clock, wall
        self._index: Index | None = None
        self._identity: tuple[int, ...] | None = None
        self._read_at = float("-inf")
        self._seen_hash: str | None = None  # the last bytes read, good or bad
        self.error: str | None = None  # the current file's problem (the last good one serves)

    @property
    def index(self) -> Index | None:
        return self._index

    def _stat(self) -> tuple[int, ...] | None:
        try:
            st = os.stat(self.path)  # through the symlinks: the file kubelet swapped in
        except OSError:
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def check(self) -> bool:
        """Reload when the file changed; True when a new config was swapped in."""
        identity = self._stat()
        fresh = self._clock() - self._read_at < REREAD_AFTER
        if identity is not None and identity == self._identity and fresh:
            return False
        self._identity, self._read_at = identity, self._clock()
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            self._failed("unreadable", describe_error(exc))
            return False
        content_hash = hashlib.sha256(data).hexdigest()
        if content_hash == self._seen_hash:
            return False
        self._seen_hash = content_hash
        try:
            config = parse_receiver_config(data)
        except ValidationError as exc:
            self._failed("invalid", describe_error(exc))
            return False
        for app in config.apps:  # redacted from every log line of the process from now on
            REDACTOR.add(app.app_secret.get_secret_value())
            REDACTOR.add(app.verify_token.get_secret_value())
        self._index = index_config(config, content_hash)
        self.error = None
        log.info(
            "receiver config loaded: %d apps, %d numbers, hash %s",
            len(config.apps), len(config.numbers), content_hash[:12],
        )  # fmt: skip
        if self._metrics is not None:
            self._metrics.config_loaded(self._index, self._wall())
        return True

    def _failed(self, reason: str, message: str) -> None:
        if message != self.error:  # once per problem, not once per poll
            kept = "keeping the last good config" if self._index else "no config loaded yet"
            log.warning("receiver config %s: %s (%s)", self.path, message, kept)
            if self._metrics is not None:
                self._metrics.config_failed(reason)
        self.error = message

    async def watch(self, interval: float, stop: asyncio.Event) -> None:
        """Check every `interval` seconds until `stop` is set (reads in a thread)."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.check)
            except Exception:  # never let the watcher die: the last good config keeps serving
                log.exception("receiver config check failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
