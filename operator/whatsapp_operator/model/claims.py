"""Who owns a tenant id or a phone number id when two WhatsAppTenants claim the same one.

Only claims the tenant policy allows count (`allowed`: the claimant's namespace may hold the
claimant's tenant id, model/tenant_policy.py): a tenant of a namespace the platform team did
not allow never blocks the one it did, however old.

A tenant id goes to the older object (creation time, then namespace/name as a tie-break both
sides agree on). A phone number goes first to a claimant whose token Meta has shown to reach
it (its PhoneNumberVerified is True for its current spec), then to the older: a tenant that
names someone else's number with its own token never keeps the number from its owner. A
claimant that loses the number only for want of Meta's confirmation (to an older, unverified
claimant, or a newer, verified one) is still checked at Meta (`Conflict.checks`), so that it
can become verified and take the number; it writes no row and publishes nothing meanwhile.
The one that waits has a reason naming the owner, and takes over by itself when the owner
goes away. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from whatsapp_operator.model.conditions import PHONE_NUMBER_VERIFIED, Reason


@dataclass(frozen=True, order=True, slots=True)  # two per tenant, in kopf's indexes
class Claim:
    created: str  # RFC 3339, second precision: sorts as text
    namespace: str
    name: str
    uid: str
    # the claimant's tenant id (the policy judges it), and whether Meta has shown its token
    # to reach its number for its current spec: not part of the age order
    tenant_id: str = field(default="", compare=False)
    verified: bool = field(default=False, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def number_verified(meta: Mapping[str, Any], status: Mapping[str, Any] | None) -> bool:
    """Whether the stored status says Meta confirmed the tenant's number for its current spec
    (PhoneNumberVerified True, computed for this generation)."""
    generation = int(meta.get("generation") or 0)
    for cond in (status or {}).get("conditions") or ():
        if isinstance(cond, Mapping) and cond.get("type") == PHONE_NUMBER_VERIFIED:
            return cond.get("status") == "True" and cond.get("observedGeneration") == generation
    return False


@dataclass(frozen=True)
class Conflict:
    reason: str
    owner: Claim | None  # None: no other tenant (the tenant id is not allowed here)
    message: str
    checks: bool = False  # Meta's check still runs (the owner's number is unverified)

    @property
    def hold(self) -> str:
        """Why the tenant is held, for the messages of what it does not do meanwhile."""
        if self.owner is None:
            return "the tenant id is not allowed in this namespace"
        return f"{self.owner.ref} owns this tenant's ids"


def first_claim(claims: Iterable[Claim]) -> Claim | None:
    return min(claims, default=None)


def _phone_rank(claim: Claim) -> tuple[bool, Claim]:
    return (not claim.verified, claim)


def everyone(claim: Claim) -> bool:
    return True


def find_conflict(
    me: Claim,
    tenant_id: str,
    tenant_id_claims: Iterable[Claim],
    phone_number_id: str,
    phone_claims: Iterable[Claim],
    allowed: Callable[[Claim], bool] = everyone,
) -> Conflict | None:
    """The conflict that keeps `me` from working, if another object owns one of its ids.
    `allowed`: whether a claim counts (its namespace may hold its tenant id)."""
    others = [c for c in tenant_id_claims if c.uid != me.uid and allowed(c)]
    owner = first_claim(others)
    if owner is not None and owner < me:
        return Conflict(
            Reason.DUPLICATE_TENANT_ID,
            owner,
            f"tenantId {tenant_id!r} is already claimed by WhatsAppTenant {owner.ref} (older); "
            "this one takes over when that one is deleted or changes its tenantId",
        )
    rivals = [c for c in phone_claims if c.uid != me.uid and allowed(c)]
    owner = min(rivals, key=_phone_rank, default=None)
    if owner is None or _phone_rank(me) < _phone_rank(owner):
        return None
    label = f"phoneNumberId {phone_number_id!r}"
    if owner.verified and owner < me:
        return Conflict(
            Reason.DUPLICATE_PHONE_NUMBER_ID,
            owner,
            f"{label} is already claimed by WhatsAppTenant {owner.ref} (older), whose token "
            "Meta has shown to reach it; this one takes over when that one is deleted or "
            "changes its phoneNumberId",
        )
    # the owner wins only until Meta confirms this one's token: it is checked meanwhile
    why = "older" if owner < me else "newer, whose token Meta has shown to reach it"
    return Conflict(
        Reason.DUPLICATE_PHONE_NUMBER_ID,
        owner,
        f"{label} is already claimed by WhatsAppTenant {owner.ref} ({why}); this one is "
        "checked at Meta and takes the number once Meta confirms that its token reaches it "
        "(or when that one is deleted or changes its phoneNumberId)",
        checks=True,
    )
