"""Tenant signals: what a sender worker learns from Meta that the operator must act on.

A contract shared by the workers (which publish) and the operator (which consumes), like
`heartbeat`. Published to the topic exchange `whatsapp.signals` with the pool as routing key,
never persistent: a signal lost while the operator is away costs only time, because the
worker keeps holding the messages and the operator's own checks find the same facts later.

Two kinds:
- `credential_rejected`: Meta refused the tenant's token at send time (190, 0, 10, 102, 104,
  200-299...). The operator re-validates that tenant at once instead of at its next check.
- `sending_blocked`: Meta blocked the account or the number (`errors.TENANT_BLOCKED_CODES`).
  The operator sets the tenant's `SendingBlocked` condition and publishes the block to the
  workers, which hold the number's messages until a check finds the number healthy again.

Signals name the token by its fingerprint only, and carry Meta's message scrubbed by the
worker; they never hold a token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from whatsapp_contract.wire import dump, load_object

EXCHANGE = "whatsapp.signals"
SignalKind = Literal["credential_rejected", "sending_blocked"]
KINDS: frozenset[str] = frozenset(get_args(SignalKind))
MAX_DETAIL = 300


@dataclass(frozen=True)
class TenantSignal:
    kind: SignalKind
    tenant_id: str
    phone_number_id: str
    pool: str
    code: int  # Meta's error code
    token_fingerprint: str  # the token Meta refused or blocked (sha256:...)
    worker: str
    at: float  # the worker's wall clock
    subcode: int | None = None
    detail: str = ""  # Meta's message or details, scrubbed, at most MAX_DETAIL characters


def dump_signal(signal: TenantSignal) -> bytes:
    body: dict[str, Any] = {
        "kind": signal.kind,
        "tenantId": signal.tenant_id,
        "phoneNumberId": signal.phone_number_id,
        "pool": signal.pool,
        "code": signal.code,
        "tokenFingerprint": signal.token_fingerprint,
        "worker": signal.worker,
        "at": signal.at,
        "detail": signal.detail[:MAX_DETAIL],
    }
    if signal.subcode is not None:
        body["subcode"] = signal.subcode
    return dump(body)


def parse_signal(data: bytes) -> TenantSignal | None:
    """The signal in `data`, or None if it is not one (a consumer drops it with a log line)."""
    body = load_object(data)
    if body is None:
        return None
    kind, code, subcode, at = (body.get(k) for k in ("kind", "code", "subcode", "at"))
    texts = [
        body.get(k) for k in ("tenantId", "phoneNumberId", "pool", "tokenFingerprint", "worker")
    ]
    detail = body.get("detail", "")
    ids = [t for t in texts if isinstance(t, str) and t]
    if not (
        kind in KINDS and len(ids) == len(texts)
        and _integer(code) and (subcode is None or _integer(subcode))
        and isinstance(at, int | float) and not isinstance(at, bool)
        and isinstance(detail, str)
    ):  # fmt: skip
        return None
    tenant, phone, pool, fp, worker = ids
    return TenantSignal(
        kind="sending_blocked" if kind == "sending_blocked" else "credential_rejected",
        tenant_id=tenant,
        phone_number_id=phone,
        pool=pool,
        code=code if isinstance(code, int) else 0,
        token_fingerprint=fp,
        worker=worker,
        at=float(at),
        subcode=subcode if isinstance(subcode, int) else None,
        detail=detail[:MAX_DETAIL],
    )


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
