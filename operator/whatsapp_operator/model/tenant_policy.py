"""Which namespaces may use which tenant ids: the platform team's WhatsAppTenantPolicies. Pure.

A tenant id is the key of the legacy platform's `tenant_whatsapp_config` row, so whoever holds
it writes that row. The tenant teams do not decide who holds it: the platform team does, with
cluster-scoped WhatsAppTenantPolicies (crds/whatsapptenantpolicies...yaml). A tenant id is
allowed in a namespace when some policy selects the namespace (a standard label selector, as
a WhatsAppApp's; `{}`: every namespace) and one of its `tenantIds` patterns (shell-style,
`fnmatch.fnmatchcase`; `*`: any) matches it. Taking over a row the operator did not write for
the namespace (a legacy row, or a move between namespaces) also needs a policy's
`adoptExistingRows: true`; the tenant still asks for it with its own `spec.adoptExistingRow`.

With `--tenant-policy off` (`ALLOW_ALL`) every tenant id is allowed everywhere and adoption
needs no approval: the behaviour before policies existed, unsafe on a shared cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from whatsapp_operator.apps.selector import LabelSelector

POLICY_PLURAL = "whatsapptenantpolicies"
POLICY_KIND = "WhatsAppTenantPolicy"
Mode = Literal["enforce", "off"]
ASK = (
    "ask the platform team for a WhatsAppTenantPolicy that allows it "
    "(kubectl get whatsapptenantpolicies)"
)


class TenantPolicy(BaseModel):
    """One WhatsAppTenantPolicy, as the API server stored it."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    name: str = ""
    namespace_selector: LabelSelector = Field(alias="namespaceSelector")
    tenant_ids: tuple[str, ...] = Field(alias="tenantIds", min_length=1)
    adopt_existing_rows: bool = Field(default=False, alias="adoptExistingRows")

    def selects(self, labels: Mapping[str, str] | None) -> bool:
        return labels is not None and self.namespace_selector.matches(labels)

    def allows(self, tenant_id: str) -> bool:
        return any(fnmatchcase(tenant_id, pattern) for pattern in self.tenant_ids)


def parse_policy(name: str, spec: Any) -> TenantPolicy | None:
    """The typed policy (None: the stored spec is not one; it then allows nothing)."""
    try:
        return TenantPolicy.model_validate({**dict(spec or {}), "name": name})
    except (ValidationError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class PolicyVerdict:
    allowed: bool
    adoption_approved: bool  # a policy allowing the id here also approves taking rows over
    message: str


ALLOW_ALL = PolicyVerdict(True, True, "tenant policy off: every tenant id is allowed")


def judge_tenant_id(
    tenant_id: str,
    namespace: str,
    namespace_labels: Mapping[str, str] | None,
    policies: Iterable[TenantPolicy],
) -> PolicyVerdict:
    """May a WhatsAppTenant in `namespace` (with `namespace_labels`; None: not known) hold
    `tenant_id`, and may it take over an existing row for it? The messages name the policies
    that select the namespace and their patterns, never another namespace."""
    what = f"tenantId {tenant_id!r} is not allowed in namespace {namespace!r}"
    if namespace_labels is None:
        why = f"{what}: its labels are not known yet (a WhatsAppTenantPolicy selects by labels)"
        return PolicyVerdict(False, False, why)
    selecting = sorted((p for p in policies if p.selects(namespace_labels)), key=lambda p: p.name)
    if not selecting:
        return PolicyVerdict(False, False, f"{what}: no WhatsAppTenantPolicy selects it; {ASK}")
    allowing = [p for p in selecting if p.allows(tenant_id)]
    if not allowing:
        patterns = ", ".join(dict.fromkeys(repr(t) for p in selecting for t in p.tenant_ids))
        names = ", ".join(p.name for p in selecting)
        why = f"{what}: the WhatsAppTenantPolicies selecting it ({names}) allow {patterns}; {ASK}"
        return PolicyVerdict(False, False, why)
    approving = [p.name for p in allowing if p.adopt_existing_rows]
    names = ", ".join(p.name for p in allowing)
    how = f"; adoption of existing rows approved by {', '.join(approving)}" if approving else ""
    return PolicyVerdict(
        True,
        bool(approving),
        f"tenantId {tenant_id!r} allowed by WhatsAppTenantPolicy {names}{how}",
    )
