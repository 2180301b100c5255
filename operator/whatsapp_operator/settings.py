"""The operator's settings.

Flags override the environment (WHATSAPP_OPERATOR_*), which overrides the defaults.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from whatsapp_contract.resolved import INITIAL_CONFIG_SHARDS, MAX_CONFIG_SHARDS
from whatsapp_graph.client import DEFAULT_BASE_URL, DEFAULT_VERSION
from whatsapp_operator.model.spec import parse_duration

# In a pod: the namespace of its service account (the operator's own namespace).
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a DNS label
LOOPBACK = "127.0.0.1"


class OperatorConfig(BaseSettings):
    # validate_by_name: a field with deprecated spellings (an alias) still takes its own name
    # from the flags (cli.load_config passes them by field name)
    model_config = SettingsConfigDict(
        env_prefix="WHATSAPP_OPERATOR_", extra="ignore", validate_by_name=True
    )

    namespaces: str = Field(default="", description="comma-separated namespaces to watch")
    all_namespaces: bool = False
    kubeconfig: str | None = None
    graph_api_url: str = DEFAULT_BASE_URL
    graph_api_version: str = Field(default=DEFAULT_VERSION, pattern=r"^v[0-9]{2}\.[0-9]$")
    graph_rate: float = Field(default=10.0, gt=0, description="Graph API requests per second")
    graph_burst: int = Field(default=20, ge=1)
    graph_timeout: float = Field(default=15.0, gt=0)
    # The Graph client's transport (see whatsapp_graph.http) and the event loop kopf runs on:
    # the measured defaults; the alternatives are the plain-asyncio, pure-httpx stack.
    http_backend: Literal["aiohttp", "httpcore"] = "aiohttp"
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    unavailable_grace: timedelta = timedelta(minutes=15)
    # Where the health and metrics endpoints listen: loopback unless told (nothing reachable
    # from the network by default); in a pod the kubelet's probes reach the pod IP, so the chart
    # passes 0.0.0.0 (metrics.listenAddress) and its NetworkPolicy says who may connect.
    liveness_host: str = Field(default=LOOPBACK, min_length=1)
    liveness_port: int = Field(default=8080, ge=0, le=65535)
    metrics_host: str = Field(default=LOOPBACK, min_length=1)
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    workers_namespace: str | None = Field(
        default=None, description="where the resolved-config Secrets of the pools go; unset: off"
    )
    # A new pool's shard layout: a power of two, at most the workers' mounts (workers.maxShards)
    initial_shards: int = Field(default=INITIAL_CONFIG_SHARDS, ge=1, le=MAX_CONFIG_SHARDS)
    amqp_url: str | None = Field(
        default=None, repr=False,
        description="RabbitMQ URL: worker heartbeats (config convergence) and tenant signals",
    )  # fmt: skip
    # Tenant reconcile passes running at once (scheduler.py); more wait for a place, earliest
    # due first. Most of a pass is waiting (Graph budget, publisher, PostgreSQL).
    max_concurrent_reconciles: int = Field(default=500, ge=1, le=100_000)
    peering: str | None = None  # None: standalone (one replica)
    priority: int = 0
    database_url: str | None = Field(
        default=None,
        repr=False,
        description="PostgreSQL DSN; unset: no tenant_whatsapp_config sync",
    )
    database_owner: str = Field(default="whatsapp-operator", max_length=100)
    token_storage: Literal["encrypted", "plaintext", "none"] = "encrypted"
    encryption_keys: str | None = Field(
        default=None, repr=False, description="kid=base64key,... (or use encryption_keys_dir)"
    )
    encryption_keys_dir: str | None = None
    # The audit trail's HMAC key (postgres/audit_key.py): a mounted Secret's file; needed with
    # database_url, since every entry is chained with it.
    audit_key_file: str | None = None
    drift_interval: timedelta = timedelta(seconds=60)
    # How often rows under an old key are re-encrypted under the primary one (the rekey pass,
    # postgres/maintenance.py). "rotation" names token renewal only (spec.rotation); the old
    # env name still works, deprecated. An alias is not prefixed: both names are spelt out.
    rekey_interval: timedelta = Field(
        default=timedelta(seconds=30),
        validation_alias=AliasChoices(
            "WHATSAPP_OPERATOR_REKEY_INTERVAL", "WHATSAPP_OPERATOR_ROTATION_INTERVAL"
        ),
    )
    # Embedded Signup's OAuth callback endpoint (signup/callback.py); port 0 turns it off.
    signup_callback_port: int = Field(default=0, ge=0, le=65535)
    signup_callback_host: str = "0.0.0.0"  # noqa: S104 - the callback comes from the web app
    signup_callback_secret: str | None = Field(
        default=None, repr=False, min_length=16, description="HMAC key shared with the caller"
    )
    signup_namespace: str | None = Field(
        default=None, description="namespace where callback-created WhatsAppSignups go"
    )
    signup_app_credentials_secret: str | None = Field(
        default=None, description="name of the Meta app credentials Secret in signup_namespace"
    )
    # The operator's own namespace: where WhatsAppApps' Secrets are read and, with
    # webhook_receiver, the receiver's config Secret is written. Unset: the pod's namespace
    # (its service account's), else workers_namespace (resolved_operator_namespace).
    operator_namespace: str | None = Field(
        default=None, pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
    )
    webhook_receiver: bool = False  # publish the webhook receiver's config (apps/receiver.py)
    # Which namespaces may hold which tenant ids (model/tenant_policy.py): `enforce` follows
    # the WhatsAppTenantPolicies; `off` allows every tenant id in every namespace and adoption
    # without approval (the behaviour before policies; unsafe on a shared cluster).
    tenant_policy: Literal["enforce", "off"] = "enforce"
    log_level: str = "INFO"
    # plain (text: the same, the worker's word), full, or json: one object per line
    log_format: str = Field(default="plain", pattern="^(plain|text|full|json)$")

    def liveness_endpoint(self) -> str | None:
        """kopf's liveness endpoint URL (None: liveness_port 0, off); an IPv6 address in
        brackets."""
        if not self.liveness_port:
            return None
        host = f"[{self.liveness_host}]" if ":" in self.liveness_host else self.liveness_host
        return f"http://{host}:{self.liveness_port}/healthz"

    @field_validator("unavailable_grace", "drift_interval", "rekey_interval", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("namespaces")
    @classmethod
    def _exact_namespaces(cls, value: str) -> str:
        # kopf resolves patterns only by scanning namespaces, which this operator turns off (it
        # would ignore `shop-*` silently), and the Secret watch needs names: say so at start.
        names = [n.strip() for n in value.split(",") if n.strip()]
        if bad := [n for n in names if not _NAMESPACE.fullmatch(n)]:
            raise ValueError(f"namespace names only, no patterns: {', '.join(bad)}")
        return value

    @field_validator("initial_shards")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError(f"must be a power of two (a shard layout), not {value}")
        return value

    @model_validator(mode="after")
    def _signup_callback(self) -> OperatorConfig:
        if self.signup_callback_port:
            needed = {
                "signup_callback_secret": self.signup_callback_secret,
                "signup_namespace": self.signup_namespace,
                "signup_app_credentials_secret": self.signup_app_credentials_secret,
            }
            missing = [name for name, value in needed.items() if not value]
            if missing:
                raise ValueError(f"signup_callback_port needs {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _audit_key(self) -> OperatorConfig:
        if self.database_url and not self.audit_key_file:
            raise ValueError(
                "database_url needs audit_key_file: the audit trail is chained with an HMAC key "
                "(a mounted Secret; --audit-key-file or WHATSAPP_OPERATOR_AUDIT_KEY_FILE)"
            )
        return self

    @model_validator(mode="after")
    def _receiver(self) -> OperatorConfig:
        if self.webhook_receiver and not self.resolved_operator_namespace():
            raise ValueError(
                "webhook_receiver needs operator_namespace (or workers_namespace): where the "
                "receiver's config Secret goes"
            )
        return self

    def resolved_operator_namespace(self, service_account: Path = SERVICE_ACCOUNT) -> str | None:
        """--operator-namespace, else the pod's namespace, else --workers-namespace."""
        if self.operator_namespace:
            return self.operator_namespace
        try:
            own = service_account.read_text().strip()
        except OSError:
            own = ""
        return own or self.workers_namespace

    @property
    def namespace_list(self) -> list[str]:
        return [n.strip() for n in self.namespaces.split(",") if n.strip()]
