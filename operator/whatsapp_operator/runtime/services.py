"""The services a tenant's or a signup's pass uses, built once at start-up (handlers.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from whatsapp_graph.client import DEFAULT_VERSION
from whatsapp_operator.apps.index import AppIndex
from whatsapp_operator.apps.receiver import ReceiverPublisher
from whatsapp_operator.meta.validation import Validator
from whatsapp_operator.model.claims import Claim
from whatsapp_operator.model.fragment import Event
from whatsapp_operator.model.tenant_policy import (
    ALLOW_ALL,
    Mode,
    PolicyVerdict,
    TenantPolicy,
    judge_tenant_id,
)
from whatsapp_operator.pools.convergence import HeartbeatListener
from whatsapp_operator.pools.publisher import Publisher
from whatsapp_operator.postgres.audit_writer import AuditWriter
from whatsapp_operator.postgres.sync import RowSync
from whatsapp_operator.runtime.kube import Kube
from whatsapp_operator.runtime.registry import Registry
from whatsapp_operator.tokens.refresh import Refresher


@dataclass
class Runtime:
    kube: Kube
    validator: Validator
    registry: Registry
    clock: Callable[[], datetime]
    post_event: Callable[[Mapping[str, Any], Event], None]
    grace: timedelta
    rows: RowSync | None = None  # None: PostgreSQL sync not configured
    owner: str = "whatsapp-operator"
    refresher: Refresher | None = None
    default_version: str = DEFAULT_VERSION
    audit: AuditWriter | None = None  # with PostgreSQL: the append-only audit trail
    publisher: Publisher | None = None  # with --workers-namespace: resolved config per pool
    convergence: HeartbeatListener | None = None  # with --amqp-url: workers on that config
    # kopf's live indexes of the ids the tenants claim (tenantId, phoneNumberId -> claims)
    by_tenant_id: Mapping[Any, Iterable[Claim]] = field(default_factory=dict)
    by_phone: Mapping[Any, Iterable[Claim]] = field(default_factory=dict)
    # the WhatsAppApps as tenants see them (apps/), kopf's index of the Namespaces' labels
    # (namespace name -> its labels) and, with --webhook-receiver, the receiver's config
    apps: AppIndex = field(default_factory=AppIndex)
    namespace_labels: Mapping[Any, Iterable[Mapping[str, str]]] = field(default_factory=dict)
    receiver: ReceiverPublisher | None = None
    # --tenant-policy, and kopf's index of the WhatsAppTenantPolicies (name -> the policy;
    # runtime/policies.py): which namespaces may hold which tenant ids
    tenant_policy: Mode = "enforce"
    tenant_policies: Mapping[Any, Iterable[TenantPolicy]] = field(default_factory=dict)

    actor: str = "whatsapp-operator"

    def labels_of(self, namespace: str) -> Mapping[str, str] | None:
        """The namespace's labels (None: not known)."""
        return next(iter(self.namespace_labels.get(namespace, ())), None)

    def policy_verdict(self, tenant_id: str, namespace: str) -> PolicyVerdict:
        """May a tenant in `namespace` hold `tenant_id` (and take rows over)?"""
        if self.tenant_policy == "off":
            return ALLOW_ALL
        policies = [p for found in self.tenant_policies.values() for p in found]
        return judge_tenant_id(tenant_id, namespace, self.labels_of(namespace), policies)

    @property
    def token_storage(self) -> str:
        return self.rows.cipher.mode if self.rows is not None else "none"
