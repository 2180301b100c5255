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

from whatsapp_operator.runtime import memory
from whatsapp_operator.runtime.body_dictionary import TENANT_DICTIONARY
from whatsapp_operator.runtime.handlers import tenants_by_tenant_id
from whatsapp_operator.tenant.loop import KOPF_ANNOTATIONS

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
    result = await tenants_by_tenant_id(body=body, spec=body.spec, meta=body.meta)
    assert set(result) == {"t_acme"}
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


def _another_tenant(body: dict[str, Any]) -> dict[str, Any]:
    """The saved tenant with other ids, names and times: not the dictionary's own text."""
    text = json.dumps(body)
    for old, new in (("t00000", "acme-shop-eu"), ("bench-0", "payments"),
                     ("300000000000", "109876543210987"), ("200000000000", "102290129340398"),
                     ("2026-11-28T02:43", "2027-03-14T17:05")):  # fmt: skip
        text = text.replace(old, new)
    return dict(json.loads(text))


def test_a_ready_tenant_packed_with_the_tenants_dictionary_takes_a_third() -> None:
    body = _another_tenant(json.loads(READY_TENANT.read_text()))
    plain = memory.PackedBody(body, KOPF_ANNOTATIONS)
    packed = memory.PackedBody(body, KOPF_ANNOTATIONS, TENANT_DICTIONARY)
    assert packed.unpack() == plain.unpack()  # what unpacks is the same
    # measured: 1,100 bytes of data without the dictionary, 296 with it (what is left is
    # mostly what no dictionary holds: ids, hashes, times)
    assert len(packed) * 3 < len(plain), (len(packed), len(plain))


def test_a_failing_tenant_still_packs_well_and_exactly() -> None:
    """Text the dictionary does not hold (other reasons, long messages) is kept as it is."""
    body = _another_tenant(json.loads(READY_TENANT.read_text()))
    for condition in body["status"]["conditions"]:
        condition.update(status="False", reason="GraphApiUnavailable",
                         message="Graph API unreachable: ConnectTimeout " + "é" * 40)  # fmt: skip
    body["spec"]["unknownField"] = {"nested": [1, 2.5, None, True]}
    packed = memory.PackedBody(body, (), TENANT_DICTIONARY)
    assert packed.unpack() == {**body, "metadata": {
        k: v for k, v in body["metadata"].items() if k != "managedFields"}}  # fmt: skip
    assert len(packed) < len(memory.PackedBody(body))


def test_the_dictionary_is_shared_not_copied() -> None:
    body = json.loads(READY_TENANT.read_text())
    packed = [memory.PackedBody(body, KOPF_ANNOTATIONS, TENANT_DICTIONARY) for _ in range(3)]
    assert all(p._dictionary is TENANT_DICTIONARY for p in packed)
