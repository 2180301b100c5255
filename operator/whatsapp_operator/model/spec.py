"""The WhatsAppTenant custom resource as typed Python: group names and the spec model.

Admission (the CRD's OpenAPI schema and CEL rules) rejects bad manifests before the operator
sees them; this model re-reads what the API server stored, applying the same defaults, so
the reconcile never works from a half-understood dict.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

GROUP = "whatsapp.operator.dev"
VERSION = "v1alpha1"
PLURAL = "whatsapptenants"
KIND = "WhatsAppTenant"
API_VERSION = f"{GROUP}/{VERSION}"
# Set (to any value) to ask for a Graph API check now; the operator removes it once done.
REVALIDATE_ANNOTATION = f"{GROUP}/revalidate"

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> timedelta:
    """A Go-style duration made of h/m/s parts ("1h", "90m", "1h30m10s")."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"not a duration: {text!r} (use h, m and s, for example 1h30m)")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")


class SecretRef(_Model):
    name: str = Field(min_length=1)
    key: str = "accessToken"


class ValidationSpec(_Model):
    interval: timedelta = timedelta(hours=1)

    @field_validator("interval", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


DeletionPolicy = Literal["Deactivate", "Delete", "Retain"]
# Set (to any value) to ask for a token refresh now (strategy Refresh); removed once handled.
REFRESH_ANNOTATION = f"{GROUP}/refresh"


class AppCredentialsRef(_Model):
    name: str = Field(min_length=1)
    app_id_key: str = Field(default="appId", alias="appIdKey")
    app_secret_key: str = Field(default="appSecret", alias="appSecretKey")


class RotationSpec(_Model):
    strategy: Literal["External", "Refresh"] = "External"
    renew_before: timedelta | None = Field(default=None, alias="renewBefore")
    grace_period: timedelta = Field(default=timedelta(hours=24), alias="gracePeriod")
    revoke_previous: bool = Field(default=False, alias="revokePrevious")
    app_credentials_secret_ref: AppCredentialsRef | None = Field(
        default=None, alias="appCredentialsSecretRef"
    )

    @field_validator("renew_before", "grace_period", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


class AppRef(_Model):
    """The cluster-scoped WhatsAppApp a tenant uses (its secret, verify token, version)."""

    name: str = Field(min_length=1)


class TenantSpec(_Model):
    tenant_id: str = Field(alias="tenantId", min_length=1, max_length=50)
    waba_id: str = Field(alias="wabaId", pattern=r"^[0-9]+$")
    phone_number_id: str = Field(alias="phoneNumberId", pattern=r"^[0-9]+$")
    business_id: str | None = Field(default=None, alias="businessId")
    token_secret_ref: SecretRef = Field(alias="tokenSecretRef")
    active: bool = True
    suspend: bool = False
    graph_api_version: str | None = Field(default=None, alias="graphApiVersion")
    sender_pool: str = Field(default="default", alias="senderPool")
    validation: ValidationSpec = ValidationSpec()
    deletion_policy: DeletionPolicy = Field(default="Deactivate", alias="deletionPolicy")
    adopt_existing_row: bool = Field(default=False, alias="adoptExistingRow")
    rotation: RotationSpec = RotationSpec()
    app_ref: AppRef | None = Field(default=None, alias="appRef")


def parse_spec(spec: Any) -> tuple[TenantSpec | None, str]:
    """The typed spec, or None and a one-line explanation of what is wrong."""
    try:
        return TenantSpec.model_validate(dict(spec or {})), ""
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        return None, f"spec is invalid: {problems}"
