"""The publication stage's plan and report, pure: which resolved config a tenant gets (or
none), and its part of the status, `status.published`."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import SecretStr

from whatsapp_contract.resolved import TenantConfig
from whatsapp_operator.model.facts import PhoneFacts
from whatsapp_operator.model.fragment import Fragment
from whatsapp_operator.model.secret_data import ResolvedToken
from whatsapp_operator.model.spec import TenantSpec


def resolved_config(
    spec: TenantSpec, token: ResolvedToken, default_version: str, phone: PhoneFacts | None
) -> TenantConfig:
    """The contract's view of a tenant (the token, and its appsecret_proof when the app
    secret is known, travel inside SecretStrs; the app secret itself never does). Its rate
    follows the throughput Meta reports for the number (STANDARD until Meta says HIGH)."""
    proof = SecretStr(token.proof) if token.proof else None
    return TenantConfig(
        tenant_id=spec.tenant_id,
        waba_id=spec.waba_id,
        phone_number_id=spec.phone_number_id,
        graph_api_version=spec.graph_api_version or default_version,
        throughput_level="HIGH" if phone is not None and phone.high_throughput else "STANDARD",
        suspended=False,
        token=SecretStr(token.value),
        token_fingerprint=token.fingerprint,
        appsecret_proof=proof,
    )


def plan_publication(
    spec: TenantSpec,
    token: ResolvedToken | None,
    *,
    publishable: bool,
    blocked_code: int | None,
    phone: PhoneFacts | None,
    default_version: str,
    webhook_app_id: str | None = None,
) -> TenantConfig | None:
    """The config to publish, or None to withdraw the tenant: only a tenant whose token and
    number check out, active and not suspended (the kill switch), is published. Readiness
    here leaves PostgreSQL out: an unreachable database must not stop the sending. A number
    Meta blocks stays published, with its `blocked_code`: its workers hold its messages
    instead of taking the tenant for unknown. `webhook_app_id`: the app whose webhooks the
    receiver takes for the number (--webhook-receiver), for the workers' status and
    customer-service-window checks."""
    if not (publishable and spec.active and not spec.suspend) or token is None:
        return None
    config = resolved_config(spec, token, default_version, phone)
    if blocked_code is not None:
        config = config.model_copy(update={"blocked_code": blocked_code})
    if webhook_app_id is not None:
        config = config.model_copy(update={"webhook_app_id": webhook_app_id})
    return config


def published_fragment(published: Mapping[str, str] | None) -> Fragment | None:
    """`status.published`: where the tenant's config is (None: not published)."""
    return Fragment(status={"published": dict(published)}) if published else None
