"""The worker's settings: environment variables `WHATSAPP_WORKER_*` (or CLI flags)."""

from __future__ import annotations

import socket
import uuid
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from whatsapp_graph.http import HttpBackend

from .journal import MAX_LOOKBACK, UncertainSends
from .logs import LogFormat
from .windows import WindowCheck


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WHATSAPP_WORKER_", extra="forbid")

    amqp_url: SecretStr = Field(
        SecretStr("amqp://guest:guest@127.0.0.1:5672/%2F"),
        description="RabbitMQ URL (holds a password: never logged)",
    )
    pool: str = Field("default", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    config_dir: str = Field(
        "/etc/whatsapp-worker/config", description="the mounted resolved-config Secret(s)"
    )
    shards: int = Field(8, ge=1, le=256, description="shard queues of the pool (fixed)")
    prefetch: int = Field(64, ge=1, le=10_000, description="unacked messages per shard (measured)")
    concurrency: int = Field(64, ge=1, le=10_000, description="Graph requests in flight")
    connections_per_client: int = Field(
        8, ge=1, le=1000, description="connections of each pooled httpx client (measured)"
    )
    graph_base_url: str = "https://graph.facebook.com"
    graph_timeout: float = Field(15.0, gt=0)
    http_backend: HttpBackend = Field(
        "aiohttp",
        description="aiohttp: httpx on aiohttp's pool and C parser (measured: ~40 % less CPU "
        "per message); httpcore: httpx's own transport (both HTTP/1.1)",
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop", description="the sender thread's event loop (uvloop: ~10 % less CPU)"
    )
    headroom: float = Field(0.97, gt=0, le=1.0, description="fraction of Meta's rate to use")
    max_attempts: int = Field(8, ge=1)
    retry_base_delay: float = Field(1.0, gt=0, description="first retry after about this")
    retry_max_delay: float = Field(300.0, gt=0, description="retries never wait longer")
    hold_window: float = Field(
        900.0,
        ge=0,
        description="seconds to hold messages of a tenant with a rejected token "
        "or missing from the config (suspended, unknown) before dead-lettering them",
    )
    hold_recheck: float = Field(30.0, gt=0, description="how often held messages look again")
    blocked_hold_window: float = Field(
        86_400.0,
        ge=0,
        description="seconds to hold messages of a number Meta blocked (368, 131048...: "
        "errors.TENANT_BLOCKED_CODES) before dead-lettering them as tenant_blocked",
    )
    block_probe_interval: float = Field(
        300.0,
        gt=0,
        description="a number paused after a block the operator never confirmed (no "
        "blocked_code in the config) tries one message this often",
    )
    pair_burst: int = Field(45, ge=1, description="Meta's pair limit: burst per recipient")
    pair_refill_seconds: float = Field(
        6.0, gt=0, description="Meta's pair limit: one more message per recipient every ..."
    )
    inline_wait: float = Field(
        2.0,
        ge=0,
        description="waits up to this long happen in memory; longer ones in a delay queue",
    )
    arrival_spread: float = Field(
        0.05,
        ge=0,
        le=1.0,
        description="how much later than it starts a request may reach Meta and still be "
        "counted in the right second (see limits.SendWindow; costs throughput only when "
        "answers take longer)",
    )
    uncertain_sends: UncertainSends = Field(
        "dead_letter",
        description="a message its previous worker had sent without recording Meta's answer "
        "(killed meanwhile): dead_letter (reason outcome_unknown; no duplicate) or resend "
        "(at least once; the result says possibleDuplicate)",
    )
    journal_lookback: float = Field(
        60.0,
        ge=0,
        le=MAX_LOOKBACK,
        description="seconds of the send journal read when a delivery comes again; 0 turns "
        "the journal off (redelivered messages are then sent again)",
    )
    status_wait: float = Field(
        20.0,
        ge=0,
        le=300,
        description="for tenants whose webhooks reach the receiver (webhook_app_id): how long "
        "a send that may have reached Meta unanswered (a timeout, a killed worker) waits in "
        "memory for its status webhook (found: settled as accepted, no resend; later statuses "
        "of its number: sent again); while the webhooks lag it is then parked in the delay "
        "queue and looked at again. 0: never wait (as without the receiver)",
    )
    status_lookback: float = Field(
        120.0,
        ge=0,
        le=86_400,
        description="seconds of the pool's status stream read when the worker starts reading "
        "it (the statuses of sends a killed worker left); also how long after its wait began "
        "an unanswered send may stay parked while the webhooks lag",
    )
    service_window_check: WindowCheck = Field(
        "auto",
        description="auto: for tenants whose webhooks reach the receiver, dead-letter a "
        "free-form (non-template) message to a customer without a message in the last 24 "
        "hours (outside_service_window) instead of sending it; off: let Meta refuse it (131047)",
    )
    heartbeat_interval: float = Field(2.0, gt=0)
    reload_interval: float = Field(1.0, gt=0, description="how often `..data` is checked")
    drain_timeout: float = Field(25.0, ge=0)
    metrics_host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="address of the metrics endpoint: loopback unless told (the chart: 0.0.0.0)",
    )
    metrics_port: int = Field(0, ge=0, le=65535, description="0: no metrics endpoint")
    worker_id: str = Field(default_factory=default_worker_id)
    log_format: LogFormat = Field(
        "text", description="text (plain: the same), or json: one object per line (logs.py)"
    )
