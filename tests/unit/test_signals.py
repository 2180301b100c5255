"""The worker -> operator tenant signal contract (contract/whatsapp_contract/signals.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from whatsapp_contract.signals import MAX_DETAIL, TenantSignal, dump_signal, parse_signal

SIGNAL = TenantSignal(
    kind="sending_blocked",
    tenant_id="t1",
    phone_number_id="1065",
    pool="default",
    code=131048,
    token_fingerprint="sha256:0123456789abcdef",
    worker="w-1",
    at=1700000000.5,
    detail="Spam rate limit hit",
)


def test_round_trip() -> None:
    assert parse_signal(dump_signal(SIGNAL)) == SIGNAL
    with_sub = TenantSignal(**{**SIGNAL.__dict__, "kind": "credential_rejected", "subcode": 463})
    assert parse_signal(dump_signal(with_sub)) == with_sub


def test_detail_is_bounded() -> None:
    long = TenantSignal(**{**SIGNAL.__dict__, "detail": "x" * 5000})
    parsed = parse_signal(dump_signal(long))
    assert parsed is not None
    assert len(parsed.detail) == MAX_DETAIL


def _with(**changes: Any) -> bytes:
    body = json.loads(dump_signal(SIGNAL))
    body.update(changes)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"not json", id="not JSON"),
        pytest.param(b"[]", id="not an object"),
        pytest.param(_with(kind="reboot"), id="unknown kind"),
        pytest.param(_with(tenantId=""), id="empty tenant id"),
        pytest.param(_with(code="131048"), id="code as a string"),
        pytest.param(_with(code=True), id="code as a bool"),
        pytest.param(_with(subcode=1.5), id="fractional subcode"),
        pytest.param(_with(at="now"), id="time not a number"),
        pytest.param(_with(tokenFingerprint=None), id="no fingerprint"),
        pytest.param(_with(detail=3), id="detail not text"),
    ],
)
def test_not_a_signal(data: bytes) -> None:
    assert parse_signal(data) is None
