"""The operator's memory savers: the tenants' bodies kept packed between passes, and malloc
tuning (glibc only)."""

from __future__ import annotations

import copy
import json
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import kopf
import pytest

from whatsapp_operator import memory
from whatsapp_operator.handlers import tenants_by_secret

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


def test_a_packed_body_unpacks_without_managed_fields_and_the_dropped_annotations() -> None:
    original = copy.deepcopy(BODY)
    original["metadata"]["annotations"]["kopf/diffbase"] = "{...}"
    packed = memory.PackedBody(original, drop_annotations=("kopf/diffbase",))
    expected = copy.deepcopy(BODY)
    del expected["metadata"]["managedFields"]
    assert packed.unpack() == expected
    assert packed.unpack() is not packed.unpack()  # each unpack a copy of its own
    assert "managedFields" in original["metadata"]  # the given body is left alone
    assert "kopf/diffbase" in original["metadata"]["annotations"]
    assert packed.resource_version == 42


async def test_the_first_index_drops_managed_fields_from_kopfs_copy_of_the_event() -> None:
    """kopf runs index functions first, and its worker keeps the last event while it waits."""
    raw = copy.deepcopy(BODY)
    body = kopf.Body(raw)
    result = await tenants_by_secret(
        body=body, namespace="shop", name="acme", spec=body.spec, meta=body.meta
    )
    assert result == {}  # no tokenSecretRef in BODY
    expected = copy.deepcopy(BODY)
    del expected["metadata"]["managedFields"]
    assert raw == expected


@pytest.mark.parametrize("rv", [None, "", "not-a-number"])
def test_a_packed_body_without_a_usable_resource_version_reads_zero(rv: object) -> None:
    body = {"metadata": {"name": "x", "resourceVersion": rv}}
    assert memory.PackedBody(body).resource_version == 0


# A Ready tenant as the API server returned it in the scale benchmark (kubectl get -o json: no
# managedFields, which the packed body drops anyway)
READY_TENANT = Path(__file__).parent / "data" / "ready_tenant.json"


def test_a_packed_ready_tenant_takes_under_a_sixth_of_its_parsed_size() -> None:
    raw = READY_TENANT.read_text()
    body = json.loads(raw)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        parsed = [json.loads(raw) for _ in range(20)]
        each_parsed = (tracemalloc.get_traced_memory()[0] - before) / 20
        before = tracemalloc.get_traced_memory()[0]
        packed = [memory.PackedBody(body) for _ in range(20)]
        each_packed = (tracemalloc.get_traced_memory()[0] - before) / 20
    finally:
        tracemalloc.stop()
    assert len(parsed) == len(packed) == 20
    # measured: 1,570 bytes packed (the object and its compressed JSON), 13,800 parsed
    assert each_packed * 6 < each_parsed, (each_packed, each_parsed)
    assert each_packed < 1800


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_malloc_tuning_and_trimming_work_on_glibc() -> None:
    assert memory.tune()
    memory.trim()  # returns whether pages were released; must not raise
    assert "MB" in memory.heap_stats()
