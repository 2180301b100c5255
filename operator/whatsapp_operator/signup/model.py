"""The WhatsAppSignup resource as typed Python, and the objects a signup creates. Pure.

A signup names a Secret with the OAuth code (and maybe a PIN), the Meta app (a Secret with
its credentials, or a cluster-scoped WhatsAppApp by `appRef`), and the tenant to create. It
produces two objects in its own namespace: the token Secret `<tenant name>-meta-token` and
the WhatsAppTenant, both annotated with the signup's name so that a retry of the same signup
recognises them and nothing else is ever overwritten.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from whatsapp_operator.model.secret_data import decode, fingerprint
from whatsapp_operator.model.spec import API_VERSION, GROUP, KIND, AppRef, DeletionPolicy

SIGNUP_PLURAL = "whatsappsignups"
SIGNUP_KIND = "WhatsAppSignup"
# On the token Secret (annotation and label) and on the tenant: the signup that made it.
SIGNUP_ANNOTATION = f"{GROUP}/signup"
# On the token Secret: which code its token came from (a fingerprint, never the code).
CODE_FINGERPRINT_ANNOTATION = f"{GROUP}/code-fingerprint"
TOKEN_KEY = "accessToken"
TOKEN_SECRET_SUFFIX = "-meta-token"
TENANT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
TENANT_ID_MAX = 50
PIN_PATTERN = re.compile(r"^[0-9]{6}$")
MAX_SECRET_VALUE = 4096


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")


class CodeSecretRef(_Model):
    name: str = Field(min_length=1)
    code_key: str = Field(default="code", alias="codeKey")
    pin_key: str = Field(default="pin", alias="pinKey")


class AppCredentialsRef(_Model):
    name: str = Field(min_length=1)
    app_id_key: str = Field(default="appId", alias="appIdKey")
    app_secret_key: str = Field(default="appSecret", alias="appSecretKey")


class TenantTemplate(_Model):
    tenant_id: str = Field(
        alias="tenantId", min_length=1, max_length=TENANT_ID_MAX, pattern=TENANT_ID_PATTERN.pattern
    )
    name: str | None = Field(default=None, min_length=1)
    sender_pool: str = Field(default="default", alias="senderPool")
    deletion_policy: DeletionPolicy = Field(default="Deactivate", alias="deletionPolicy")


class PhoneNumberSelector(_Model):
    phone_number_id: str | None = Field(default=None, alias="phoneNumberId")
    display_phone_number: str | None = Field(default=None, alias="displayPhoneNumber")


META_ID = r"^[0-9]+$"


class SessionInfo(_Model):
    """What Embedded Signup's session message reported (`WA_EMBEDDED_SIGNUP`, event
    `FINISH`): the customer's WABA, number and business. Since Meta's mid-2026 change a
    signup token's granular scopes may list no `target_ids`; the WABA and number then come
    from here, and are confirmed by reading the WABA's numbers."""

    waba_id: str | None = Field(default=None, alias="wabaId", pattern=META_ID, max_length=30)
    phone_number_id: str | None = Field(
        default=None, alias="phoneNumberId", pattern=META_ID, max_length=30
    )
    business_id: str | None = Field(
        default=None, alias="businessId", pattern=META_ID, max_length=30
    )


ONE_APP = "exactly one of spec.appCredentialsSecretRef and spec.appRef names the Meta app"


class SignupSpec(_Model):
    code_secret_ref: CodeSecretRef = Field(alias="codeSecretRef")
    # The Meta app: a Secret in the signup's namespace, or a WhatsAppApp (exactly one)
    app_credentials_secret_ref: AppCredentialsRef | None = Field(
        default=None, alias="appCredentialsSecretRef"
    )
    app_ref: AppRef | None = Field(default=None, alias="appRef")
    tenant: TenantTemplate
    phone_number_selector: PhoneNumberSelector | None = Field(
        default=None, alias="phoneNumberSelector"
    )
    subscribe_app: bool = Field(default=True, alias="subscribeApp")
    register_number: bool = Field(default=False, alias="register")
    session: SessionInfo | None = None

    @model_validator(mode="after")
    def _one_app(self) -> SignupSpec:
        if (self.app_credentials_secret_ref is None) == (self.app_ref is None):
            raise ValueError(ONE_APP)
        return self

    def tenant_name(self, signup_name: str) -> str:
        return self.tenant.name or signup_name


def parse_signup_spec(spec: Any) -> tuple[SignupSpec | None, str]:
    """The typed spec, or None and a one-line explanation of what is wrong."""
    try:
        return SignupSpec.model_validate(dict(spec or {})), ""
    except ValidationError as exc:
        problems = "; ".join(
            ": ".join(filter(None, (".".join(str(p) for p in err["loc"]), err["msg"])))
            for err in exc.errors()
        )
        return None, f"spec is invalid: {problems}"


def token_secret_name(tenant_name: str) -> str:
    return tenant_name + TOKEN_SECRET_SUFFIX


def code_fingerprint(code: str) -> str:
    return fingerprint(code)


def valid_tenant_id(value: str) -> bool:
    return len(value.encode()) <= TENANT_ID_MAX and TENANT_ID_PATTERN.match(value) is not None


@dataclass(frozen=True)
class SecretValue:
    """One value read from a Secret, or why there is none (`missing`: the Secret itself)."""

    value: str | None = field(repr=False)
    message: str = ""
    missing: bool = False

    @property
    def ok(self) -> bool:
        return self.value is not None


def secret_value(data: Mapping[str, str] | None, secret: str, key: str) -> SecretValue:
    """A text value from a Secret's data map (base64 values), stripped; never echoed."""
    found = decode(data, secret, key)
    if found.problem in ("no-secret", "no-key"):
        return SecretValue(None, found.message, missing=found.problem == "no-secret")
    where = f"Secret {secret!r} key {key!r}"
    if found.problem:
        return SecretValue(None, f"{where} is not valid base64-encoded text")
    if not found.stripped:
        return SecretValue(None, f"{where} is empty")
    if found.raw_size > MAX_SECRET_VALUE or not found.one_value:
        return SecretValue(None, f"{where} is not a single printable value")
    return SecretValue(found.stripped)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def token_secret_body(name: str, signup: str, token: str, code_fp: str) -> dict[str, Any]:
    """The Secret holding the token a signup obtained (key accessToken)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "labels": {
                SIGNUP_ANNOTATION: signup,
                "app.kubernetes.io/managed-by": "whatsapp-operator",
            },
            "annotations": {SIGNUP_ANNOTATION: signup, CODE_FINGERPRINT_ANNOTATION: code_fp},
        },
        "data": {TOKEN_KEY: _b64(token)},
    }


def tenant_spec(
    spec: SignupSpec, waba_id: str, phone_number_id: str, secret: str
) -> dict[str, Any]:
    """The tenant's spec. It names the signup's app: its WhatsAppApp (spec.appRef) or its app
    credentials (rotation.appCredentialsSecretRef). Its Graph calls then carry
    appsecret_proof, and switching it to strategy Refresh needs nothing more."""
    out: dict[str, Any] = {
        "tenantId": spec.tenant.tenant_id,
        "wabaId": waba_id,
        "phoneNumberId": phone_number_id,
        "tokenSecretRef": {"name": secret, "key": TOKEN_KEY},
        "senderPool": spec.tenant.sender_pool,
        "deletionPolicy": spec.tenant.deletion_policy,
    }
    app = spec.app_credentials_secret_ref
    if spec.app_ref is not None:
        out["appRef"] = {"name": spec.app_ref.name}
    elif app is not None:
        out["rotation"] = {
            "appCredentialsSecretRef": {
                "name": app.name,
                "appIdKey": app.app_id_key,
                "appSecretKey": app.app_secret_key,
            }
        }
    if spec.session is not None and spec.session.business_id:
        out["businessId"] = spec.session.business_id
    return out


def tenant_body(
    name: str, signup: str, spec: SignupSpec, waba_id: str, phone_number_id: str
) -> dict[str, Any]:
    """The WhatsAppTenant a finished signup creates."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "annotations": {SIGNUP_ANNOTATION: signup}},
        "spec": tenant_spec(spec, waba_id, phone_number_id, token_secret_name(name)),
    }


def signup_body(
    name: str,
    *,
    code_secret: str,
    app_credentials_secret: str,
    tenant_id: str,
    tenant_name: str,
    session: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A WhatsAppSignup as the OAuth callback endpoint creates it (`session`: the ids the
    Embedded Signup session reported, as spec.session's camelCase keys)."""
    spec: dict[str, Any] = {
        "codeSecretRef": {"name": code_secret},
        "appCredentialsSecretRef": {"name": app_credentials_secret},
        "tenant": {"tenantId": tenant_id, "name": tenant_name},
    }
    if session:
        spec["session"] = dict(session)
    return {
        "apiVersion": API_VERSION,
        "kind": SIGNUP_KIND,
        "metadata": {"name": name},
        "spec": spec,
    }


def dns_name(tenant_id: str, max_base: int = 40) -> str:
    """A DNS-label-safe name for a tenant id, unique per id (a short digest is appended)."""
    base = re.sub(r"[^a-z0-9-]+", "-", tenant_id.lower()).strip("-")[:max_base].strip("-")
    digest = fingerprint(tenant_id).removeprefix("sha256:")[:8]
    return f"{base}-{digest}" if base else f"tenant-{digest}"
