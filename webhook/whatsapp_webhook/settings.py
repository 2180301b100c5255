"""The receiver's settings: environment variables `WHATSAPP_WEBHOOK_*` (or CLI flags).

The receiver has no Kubernetes access at all: what it knows of apps and numbers comes from
the mounted config file (`config`), what it needs of RabbitMQ from `amqp_url`.
"""

from __future__ import annotations

import socket
import uuid
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from whatsapp_contract.webhook import CONFIG_KEY, DEFAULT_INGRESS_SHARDS

# Meta: a webhook payload is at most 3 MB (WhatsApp webhooks overview,
# https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/overview)
META_MAX_PAYLOAD = 3_000_000


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WHATSAPP_WEBHOOK_", extra="forbid")

    config: str = Field(
        f"/etc/whatsapp-webhook/{CONFIG_KEY}",
        description="the mounted ReceiverConfig (the operator's Secret); reloaded on change",
    )
    amqp_url: SecretStr = Field(
        SecretStr("amqp://guest:guest@127.0.0.1:5672/%2F"),
        description="RabbitMQ URL (holds a password: never logged)",
    )
    # Loopback unless told: in a pod, Meta (through the Ingress) and the kubelet reach the pod
    # IP, so the chart passes 0.0.0.0 (metrics.listenAddress) and its NetworkPolicy limits who.
    listen_host: str = Field(
        "127.0.0.1", min_length=1, description="address of webhooks, /healthz, /readyz"
    )
    listen_port: int = Field(8080, ge=1, le=65535, description="webhooks, /healthz, /readyz")
    metrics_host: str = Field("127.0.0.1", min_length=1, description="address of /metrics")
    metrics_port: int = Field(9090, ge=0, le=65535, description="0: no metrics endpoint")
    max_body_bytes: int = Field(
        META_MAX_PAYLOAD, ge=1024, le=64_000_000, description="larger bodies get 413"
    )
    ingress_shards: int = Field(
        DEFAULT_INGRESS_SHARDS,
        ge=1,
        le=256,
        description="queues `whatsapp.webhooks.<i>` (fixed: every replica must agree)",
    )
    publish_timeout: float = Field(
        5.0, gt=0, le=60, description="seconds to wait for a publisher confirm before a 503"
    )
    reload_interval: float = Field(1.0, gt=0, description="how often the config file is checked")
    connect_retry: float = Field(2.0, gt=0, description="seconds between broker connect attempts")
    shutdown_delay: float = Field(
        0.0,
        ge=0,
        le=60,
        description="after SIGTERM, seconds still serving with /readyz 503 (endpoints removal)",
    )
    drain_timeout: float = Field(20.0, ge=0, description="seconds in-flight requests may take")
    run_processor: bool = Field(
        True,
        description="consume the ingress queues here too (false: an ingress-only replica; "
        "another deployment of the same program processes)",
    )
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    worker_name: str = Field(default_factory=default_worker_name)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["plain", "text", "json"] = "plain"  # text: plain
