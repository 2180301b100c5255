"""The WhatsAppApp custom resource as typed Python. Pure.

A cluster-scoped WhatsAppApp holds one Meta app for every namespace it allows (as a
ClusterIssuer holds an issuer for cert-manager): the app id, where its secret and its webhook
verify token are (Secrets in the operator's namespace), the Graph API version its tenants
call by default, whether Meta requires `appsecret_proof`, and which namespaces may use it.
Admission (crds/whatsappapps...yaml) rejects bad manifests; this model re-reads what the API
server stored.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from whatsapp_operator.apps.selector import LabelSelector

APP_PLURAL = "whatsappapps"
APP_KIND = "WhatsAppApp"
META_ID = r"^[0-9]{1,40}$"


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")


class AppSecretRef(_Model):
    name: str = Field(min_length=1)
    key: str = "appSecret"


class VerifyTokenRef(_Model):
    name: str = Field(min_length=1)
    key: str = "verifyToken"


class AppSpec(_Model):
    app_id: str = Field(alias="appId", pattern=META_ID)
    app_secret_ref: AppSecretRef = Field(alias="appSecretRef")
    verify_token_ref: VerifyTokenRef = Field(alias="verifyTokenRef")
    graph_api_version: str | None = Field(
        default=None, alias="graphApiVersion", pattern=r"^v[0-9]{2}\.[0-9]$"
    )
    require_app_secret_proof: bool = Field(default=False, alias="requireAppSecretProof")
    # None: no namespace may use the app; an empty selector: every namespace (selector.py)
    namespace_selector: LabelSelector | None = Field(default=None, alias="namespaceSelector")

    @property
    def secret_names(self) -> tuple[str, ...]:
        """The Secrets the app reads (one or two), in the operator's namespace."""
        return tuple(dict.fromkeys((self.app_secret_ref.name, self.verify_token_ref.name)))


def parse_app_spec(spec: Any) -> tuple[AppSpec | None, str]:
    """The typed spec, or None and a one-line explanation of what is wrong."""
    try:
        return AppSpec.model_validate(dict(spec or {})), ""
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        return None, f"spec is invalid: {problems}"
