"""The tenant's row in the seed's `tenant_whatsapp_config` table, as a pure function.

`desired_row` says what the row must hold; `plan_write` compares it with what is stored and
says what to do: nothing (the common case: no UPDATE, no `updated_at` churn), insert, update
named columns, or refuse because the row belongs to someone else: a row not written by the
operator (taken over only with `spec.adoptExistingRow` and, under `--tenant-policy enforce`,
the platform's approval), or one written for a tenant of another namespace (never handed over
but by an approved move: the same two). Drift (a row edited behind the operator's back) is
recognised by `row_hash`: the hash of the managed columns exactly as the operator last wrote
them, which PostgreSQL can recompute in one query for every row.

The seed's `verify_token` column (the webhook handshake's secret) is written only for a tenant
whose WhatsAppApp gives one (`spec.appRef`), stored like the token (encrypted by default) and
compared on every pass like it; it is not part of `row_hash`, so rows written before it
existed, or of tenants without an app (a legacy service's value stays untouched), keep theirs.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from whatsapp_operator.model.facts import PhoneFacts

DEFAULT_OWNER = "whatsapp-operator"
SEP = "\x1f"  # unit separator: cannot occur in ids, names or our token encodings

# Columns the operator owns, in the order `row_hash` concatenates them.
HASHED_COLUMNS = (
    "waba_id",
    "phone_number_id",
    "access_token",
    "business_id",
    "display_phone_number",
    "quality_rating",
    "is_active",
    "configured",
    "managed_by",
    "token_fingerprint",
)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def row_hash(values: Mapping[str, Any]) -> str:
    """md5 hex of the hashed columns joined by SEP (NULL as empty), as SQL computes it."""
    joined = SEP.join(_text(values.get(col)) for col in HASHED_COLUMNS)
    return hashlib.md5(joined.encode(), usedforsecurity=False).hexdigest()


def sql_row_hash(table_alias: str = "") -> str:
    """The same hash as SQL, to find drifted rows in one query."""
    prefix = f"{table_alias}." if table_alias else ""
    parts = [f"coalesce({prefix}{col}::text, '')" for col in HASHED_COLUMNS]
    return f"md5({' || chr(31) || '.join(parts)})"


@dataclass(frozen=True)
class DesiredRow:
    """What the operator wants stored for one tenant (token in plaintext, never printed)."""

    tenant_id: str
    waba_id: str
    phone_number_id: str
    business_id: str | None
    display_phone_number: str | None
    quality_rating: str | None
    is_active: bool
    configured: bool
    token: str | None = field(repr=False)  # None: no token to store (wiped)
    token_fingerprint: str | None
    managed_by: str
    k8s_uid: str
    k8s_namespace: str
    k8s_name: str
    synced_generation: int
    # the app's webhook verify token (spec.appRef); None: the column is not the operator's
    verify_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class StoredRow:
    """A row as read from PostgreSQL (`access_token` as stored: ciphertext by default)."""

    id: int
    tenant_id: str
    waba_id: str
    phone_number_id: str
    access_token: str = field(repr=False)
    business_id: str | None = None
    display_phone_number: str | None = None
    quality_rating: str | None = None
    is_active: bool | None = True
    configured: bool | None = True
    managed_by: str | None = None
    k8s_uid: str | None = None
    k8s_namespace: str | None = None  # the namespace of the tenant the row was written for
    token_fingerprint: str | None = None
    synced_generation: int | None = None
    row_hash: str | None = None
    updated_at: Any = None
    verify_token: str | None = field(default=None, repr=False)  # as stored (ciphertext)

    def values(self) -> dict[str, Any]:
        return {col: getattr(self, col) for col in HASHED_COLUMNS}

    @property
    def drifted(self) -> bool:
        """Changed since the operator last wrote it (or never written by the operator)."""
        return self.row_hash is not None and self.row_hash != row_hash(self.values())


def desired_row(
    *,
    spec: Any,
    uid: str,
    namespace: str,
    name: str,
    generation: int,
    token: str | None,
    token_fingerprint: str | None,
    phone: PhoneFacts | None,
    ready: bool,
    was_configured: bool,
    owner: str = DEFAULT_OWNER,
    verify_token: str | None = None,
) -> DesiredRow:
    """The row for a tenant. `spec` is a TenantSpec; `phone` is what Meta said of the number
    (this pass's check, or the last one's, from the status; None: never checked)."""
    phone = phone or PhoneFacts()
    return DesiredRow(
        tenant_id=spec.tenant_id,
        waba_id=spec.waba_id,
        phone_number_id=spec.phone_number_id,
        business_id=spec.business_id,
        display_phone_number=_clip(phone.display_phone_number, 50),
        quality_rating=_clip(phone.quality_rating, 50),
        is_active=bool(spec.active),
        configured=ready or was_configured,
        token=token,
        token_fingerprint=token_fingerprint if token is not None else None,
        managed_by=owner,
        k8s_uid=uid,
        k8s_namespace=namespace,
        k8s_name=name,
        synced_generation=generation,
        verify_token=verify_token,
    )


def _clip(value: Any, size: int) -> str | None:
    return str(value)[:size] if value else None


def deactivated(row: DesiredRow) -> DesiredRow:
    """The row a `Deactivate` deletion leaves: inactive, token wiped."""
    return replace(row, is_active=False, token=None, token_fingerprint=None)


class WriteKind(enum.Enum):
    NOOP = "noop"
    INSERT = "insert"
    UPDATE = "update"
    NOT_MANAGED = "not_managed"
    OTHER_NAMESPACE = "other_namespace"  # written for a tenant of another namespace
    ADOPTION_NOT_APPROVED = "adoption_not_approved"  # adoption asked, not approved by policy


@dataclass(frozen=True)
class WritePlan:
    kind: WriteKind
    columns: tuple[str, ...] = ()  # the columns that differ (names only: safe for Events)
    drift: bool = False  # the stored row was edited behind the operator's back
    adopting: bool = False


COMPARED = tuple(c for c in HASHED_COLUMNS if c != "access_token")
IDENTITY = ("k8s_uid", "k8s_namespace")  # not hashed: compared when stored


def plan_write(
    stored: StoredRow | None,
    desired: DesiredRow,
    *,
    stored_token: str | None,
    store_token: bool,
    adopt: bool,
    approved: bool = False,
    bound: bool = True,
    stored_verify: str | None = None,
    verify_stale: bool = False,
) -> WritePlan:
    """What to write. `stored_token` is the stored token decrypted (None if unreadable or
    empty); `store_token` False means the `none` storage mode (the column stays empty).
    `adopt`: the tenant asks to take over a row the operator did not write for its namespace
    (spec.adoptExistingRow); `approved`: the platform team approves it for the namespace (a
    WhatsAppTenantPolicy's adoptExistingRows); `bound`: rows stay with the namespace they were
    written for (--tenant-policy enforce; off: any namespace's tenant may rewrite them, and
    adoption needs no approval).
    `stored_verify`: the stored verify token decrypted; `verify_stale`: it is stored under an
    old key or mode (rewritten, as the rekey pass does for tokens)."""
    if stored is None:
        return WritePlan(WriteKind.INSERT, ("*",))
    adopting = stored.managed_by != desired.managed_by
    moving = (
        not adopting
        and bool(stored.k8s_namespace)
        and stored.k8s_namespace != desired.k8s_namespace
    )
    if moving and bound and not (adopt and approved):
        return WritePlan(WriteKind.OTHER_NAMESPACE)
    if adopting and not adopt:
        return WritePlan(WriteKind.NOT_MANAGED)
    if adopting and bound and not approved:
        return WritePlan(WriteKind.ADOPTION_NOT_APPROVED)
    want = {c: getattr(desired, c) for c in COMPARED}
    have = stored.values()
    columns = [c for c in COMPARED if _text(want[c]) != _text(have[c])]
    wanted_token = desired.token if store_token else None
    if (wanted_token or None) != (stored_token or None) or (
        not wanted_token and stored.access_token
    ):
        columns.insert(2, "access_token")
    if desired.verify_token is not None:
        wanted_verify = desired.verify_token if store_token else None
        if (
            wanted_verify != (stored_verify or None)
            or verify_stale
            or (not wanted_verify and stored.verify_token)
        ):
            columns.append("verify_token")
    # the object it is written for: a tenant recreated (or moved) takes the row over with it
    columns += [
        c for c in IDENTITY if getattr(stored, c) and getattr(stored, c) != getattr(desired, c)
    ]
    if not columns and not stored.drifted:
        return WritePlan(WriteKind.NOOP)
    return WritePlan(
        WriteKind.UPDATE, tuple(columns), drift=stored.drifted, adopting=adopting or moving
    )
