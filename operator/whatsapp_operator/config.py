"""The operator's settings.

Flags override the environment (WHATSAPP_OPERATOR_*), which overrides the defaults.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from whatsapp_graph.client import DEFAULT_BASE_URL, DEFAULT_VERSION

from .spec import parse_duration


class OperatorConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WHATSAPP_OPERATOR_", extra="ignore")

    namespaces: str = Field(default="", description="comma-separated namespaces to watch")
    all_namespaces: bool = False
    kubeconfig: str | None = None
    graph_api_url: str = DEFAULT_BASE_URL
    graph_api_version: str = Field(default=DEFAULT_VERSION, pattern=r"^v[0-9]{2}\.[0-9]$")
    graph_rate: float = Field(default=10.0, gt=0, description="Graph API requests per second")
    graph_burst: int = Field(default=20, ge=1)
    graph_timeout: float = Field(default=15.0, gt=0)
    unavailable_grace: timedelta = timedelta(minutes=15)
    liveness_host: str = "0.0.0.0"  # noqa: S104 - probes come from the kubelet
    liveness_port: int = Field(default=8080, ge=0, le=65535)
    peering: str | None = None  # None: standalone (one replica)
    priority: int = 0
    database_url: str | None = Field(
        default=None, description="PostgreSQL DSN; unset: no tenant_whatsapp_config sync"
    )
    database_owner: str = Field(default="whatsapp-operator", max_length=100)
    token_storage: Literal["encrypted", "plaintext", "none"] = "encrypted"
    encryption_keys: str | None = Field(
        default=None, repr=False, description="kid=base64key,... (or use encryption_keys_dir)"
    )
    encryption_keys_dir: str | None = None
    drift_interval: timedelta = timedelta(seconds=60)
    rotation_interval: timedelta = timedelta(seconds=30)
    log_level: str = "INFO"
    log_format: str = Field(default="plain", pattern="^(plain|full|json)$")

    @field_validator("unavailable_grace", "drift_interval", "rotation_interval", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @property
    def namespace_list(self) -> list[str]:
        return [n.strip() for n in self.namespaces.split(",") if n.strip()]
