"""The operator's memory savers: shared strings in kept bodies, the
slimmed tenant body, and malloc tuning (glibc only)."""

from __future__ import annotations

import copy
import sys
from typing import Any

import kopf
import pytest

from whatsapp_operator import memory
from whatsapp_operator.handlers import _slim

BODY: dict[str, Any] = {
    "apiVersion": "whatsapp.operator.dev/v1alpha1",
    "kind": "WhatsAppTenant",
    "metadata": {
        "name": "acme", "namespace": "shop", "resourceVersion": "42", "generation": 3,
        "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:tenantId": {}}}}],
        "annotations": {"note": "x" * 100},
    },
    "spec": {"tenantId": "t_acme", "wabaId": "1", "phoneNumberId": "2"},
    "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}]},
}  # fmt: skip


def test_slim_drops_managed_fields_and_keeps_everything_else() -> None:
    raw = copy.deepcopy(BODY)
    _slim(kopf.Body(raw))
    expected = copy.deepcopy(BODY)
    del expected["metadata"]["managedFields"]
    assert raw == expected
    _slim(kopf.Body(raw))  # idempotent
    assert raw == expected


@pytest.mark.parametrize(
    ("value", "shared"),
    [
        pytest.param("Ready", True, id="a short string"),
        pytest.param("x" * memory.SHARED_MAX, True, id="at the limit"),
        pytest.param("x" * (memory.SHARED_MAX + 1), False, id="longer: left alone"),
    ],
)
def test_share_strings(value: str, shared: bool) -> None:
    a = {"k": [{"reason": "".join(value)}], "n": 5}
    b = {"k": [{"reason": "".join(value)}], "n": 5}
    assert a["k"][0]["reason"] is not b["k"][0]["reason"]  # parsed apart: two copies
    memory.share_strings(a)
    memory.share_strings(b)
    assert a == b == {"k": [{"reason": value}], "n": 5}
    assert (a["k"][0]["reason"] is b["k"][0]["reason"]) is shared
    assert next(iter(a)) is next(iter(b))  # keys are shared


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_malloc_tuning_and_trimming_work_on_glibc() -> None:
    assert memory.tune()
    memory.trim()  # returns whether pages were released; must not raise
    assert "MB" in memory.heap_stats()
