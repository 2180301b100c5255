"""Who owns a tenant id or a phone number id when two WhatsAppTenants claim the same one.

The older object keeps it (creation time, then namespace/name as a tie-break both sides
agree on); the newer one waits with a reason naming the owner, and takes over by itself
when the owner goes away. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from whatsapp_operator.model.conditions import Reason


@dataclass(frozen=True, order=True, slots=True)  # two per tenant, in kopf's indexes
class Claim:
    created: str  # RFC 3339, second precision: sorts as text
    namespace: str
    name: str
    uid: str

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Conflict:
    reason: str
    owner: Claim
    message: str


def first_claim(claims: Iterable[Claim]) -> Claim | None:
    return min(claims, default=None)


def find_conflict(
    me: Claim,
    tenant_id: str,
    tenant_id_claims: Iterable[Claim],
    phone_number_id: str,
    phone_claims: Iterable[Claim],
) -> Conflict | None:
    """The conflict that keeps `me` from working, if another object owns one of its ids."""
    for reason, label, value, claims in (
        (Reason.DUPLICATE_TENANT_ID, "tenantId", tenant_id, tenant_id_claims),
        (Reason.DUPLICATE_PHONE_NUMBER_ID, "phoneNumberId", phone_number_id, phone_claims),
    ):
        owner = first_claim(c for c in claims if c.uid != me.uid)
        if owner is not None and owner < me:
            return Conflict(
                reason,
                owner,
                f"{label} {value!r} is already claimed by WhatsAppTenant {owner.ref} (older); "
                f"this one takes over when that one is deleted or changes its {label}",
            )
    return None
