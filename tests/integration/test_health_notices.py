"""Meta's account and number notices against a real RabbitMQ, the operator process and a real
API server (operator/whatsapp_operator/pools/notices.py, model/health.py): notices published
as the webhook receiver publishes them (contract `notice(...)`, persistent, to
`whatsapp.notices`, routing key the namespace) reach status.health, AccountHealthy and the
tenant's Events; a repeat changes nothing; a disabled account makes Ready False until Meta
reinstates it; the queue is drained (every notice acknowledged, malformed ones too); a notice
whose write a killed operator never made is applied by the restarted one (acknowledged only
after the write)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from test_operator import apply_tenant, cond, events, get, wait_reason

from conftest import Kubectl, make_world
from whatsapp_contract.webhook import NOTICES_EXCHANGE, NOTICES_QUEUE, notice
from whatsapp_testkit.world import wait_for

pytestmark = pytest.mark.integration
DISPLAY = "+34 91 000"  # make_world's display number; Meta writes it as digits


async def _publish(url: str, namespace: str, bodies: list[bytes]) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            NOTICES_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        for body in bodies:
            message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await exchange.publish(message, routing_key=namespace)


async def _queued(url: str) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(NOTICES_QUEUE, passive=True)
        count = queue.declaration_result.message_count
        return int(count or 0)


def publish(url: str, namespace: str, *bodies: bytes) -> None:
    asyncio.run(_publish(url, namespace, list(bodies)))


def queued(url: str) -> int:
    """Ready messages in the operator's queue, as the broker counts them."""
    return asyncio.run(_queued(url))


def meta(namespace: str, tenant_id: str, kind: str, value: dict[str, Any]) -> bytes:
    return notice(kind=kind, namespace=namespace, name="acme", tenant_id=tenant_id,  # type: ignore[arg-type]
                  waba_id="102290129340398", value=value, at=time.time())  # fmt: skip


def reasons(kubectl: Kubectl, namespace: str) -> list[tuple[str, str]]:
    return sorted((e["type"], e["reason"]) for e in events(kubectl, namespace, "acme"))


def test_notices_reach_the_tenants_health_condition_and_events(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, rabbitmq: Any
) -> None:
    w = make_world(sim, display=DISPLAY)
    tenant_id = f"t_health_{namespace}"
    apply_tenant(kubectl, namespace, w, tenant_id=tenant_id, senderPool=f"p{namespace[2:]}")
    wait_reason(kubectl, namespace, "acme", "Ready")
    url = rabbitmq.amqp_url

    def n(kind: str, value: dict[str, Any], tenant: str = tenant_id) -> bytes:
        return meta(namespace, tenant, kind, value)

    template = {"message_template_name": "order_confirmation", "message_template_language": "en"}
    started = time.monotonic()
    publish(url, namespace,
        n("phone_number_quality_update", {"display_phone_number": "3491000", "event": "FLAGGED",
                                          "current_limit": "TIER_2K"}),
        n("message_template_status_update", {"event": "APPROVED", "message_template_id": 11,
                                             "reason": "NONE", **template}),
        n("message_template_status_update", {"event": "APPROVED", "message_template_id": 11,
                                             "reason": "NONE", **template}),  # a repeat
        n("message_template_status_update", {"event": "REJECTED", "message_template_id": 12,
                                             "reason": "INVALID_FORMAT", **template}),
        n("business_capability_update", {"max_daily_conversations_per_business": 2000,
                                         "max_phone_numbers_per_waba": 25}),
        n("phone_number_name_update", {"display_phone_number": "3491000",
                                       "decision": "APPROVED", "requested_verified_name": "Acme",
                                       "rejection_reason": None}),
        n("account_update", {"event": "ACCOUNT_DELETED"}, tenant="t_someone_else"),  # stale
        b"not a notice",
    )  # fmt: skip

    def health() -> dict[str, Any] | None:
        found = get(kubectl, namespace, "acme").get("status", {}).get("health") or {}
        return found if found.get("nameStatus") == "APPROVED" else None

    got = wait_for(health, 10, 0.1, "status.health with every notice")
    print(f"\n[figure] notices -> status.health at the API server in "
          f"{time.monotonic() - started:.2f} s", file=sys.stderr)  # fmt: skip
    assert got["templates"] == {"APPROVED": 1, "REJECTED": 1}
    assert got["qualityEvent"] == "FLAGGED"
    assert got["messagingLimitTier"] == "TIER_2K"
    assert got["capabilities"] == {"maxDailyConversationsPerBusiness": "2000",
                                   "maxPhoneNumbersPerWaba": 25}  # fmt: skip
    assert "accountDeleted" not in got
    obj = get(kubectl, namespace, "acme")
    assert cond(obj, "AccountHealthy")["status"] == "False"
    assert cond(obj, "AccountHealthy")["reason"] == "NumberFlagged"
    assert cond(obj, "Ready")["status"] == "True"  # a flagged number is a warning only
    wait_for(lambda: ("Normal", "BusinessCapabilityUpdate") in reasons(kubectl, namespace), 10)
    seen = reasons(kubectl, namespace)
    once = [("Warning", "NumberFlagged"), ("Normal", "TemplateApproved"),
            ("Warning", "TemplateRejected"), ("Normal", "DisplayNameApproved")]  # fmt: skip
    for expected in once:
        assert seen.count(expected) == 1, (expected, seen)  # the repeat posted nothing
    assert ("Warning", "AccountDeleted") not in seen
    wait_for(lambda: queued(url) == 0, 10, 0.2, "the operator's queue drained")

    # Meta disables the account: Ready goes False; reinstated, it comes back
    started = time.monotonic()
    publish(url, namespace, n("account_update", {"event": "DISABLED_UPDATE", "ban_info": {
        "waba_ban_state": "DISABLE", "waba_ban_date": "September 1, 2026"}}))  # fmt: skip
    obj = wait_reason(kubectl, namespace, "acme", "AccountDisabled", timeout=10)
    print(f"\n[figure] DISABLED_UPDATE notice -> Ready False at the API server in "
          f"{time.monotonic() - started:.2f} s", file=sys.stderr)  # fmt: skip
    assert cond(obj, "AccountHealthy")["reason"] == "AccountDisabled"
    assert obj["status"]["health"]["banState"] == "DISABLE"
    publish(url, namespace, n("account_update", {"event": "DISABLED_UPDATE", "ban_info": {
        "waba_ban_state": "REINSTATE", "waba_ban_date": "September 2, 2026"}}))  # fmt: skip
    obj = wait_reason(kubectl, namespace, "acme", "Ready", timeout=10)
    assert cond(obj, "AccountHealthy")["reason"] == "NumberFlagged"  # still flagged

    # a pass with no notice (asked for) keeps the health as it is and posts nothing about it
    before = obj["status"]["health"]
    notices_events = len(events(kubectl, namespace, "acme"))
    kubectl("annotate", "wat", "acme", "-n", namespace, "whatsapp.operator.dev/revalidate=1")
    wait_for(lambda: "whatsapp.operator.dev/revalidate" not in (
        get(kubectl, namespace, "acme")["metadata"].get("annotations") or {}), 10, 0.2)  # fmt: skip
    assert get(kubectl, namespace, "acme")["status"]["health"] == before
    assert len(events(kubectl, namespace, "acme")) == notices_events


def hold_health(kubectl: Kubectl, namespace: str, on: bool) -> None:
    """A ValidatingAdmissionPolicy that makes the API server refuse any status of the
    namespace's tenants holding `health`: the operator's pass cannot write a notice's effect."""
    name = f"hold-health-{namespace}"
    if not on:
        kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", name,
                "--ignore-not-found")  # fmt: skip
        return
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": ["whatsapp.operator.dev"], "apiVersions": ["*"],
                "operations": ["UPDATE"], "resources": ["whatsapptenants/status"]}]},
            "validations": [{"expression": "!has(object.status) || !has(object.status.health)",
                             "message": "the test holds the tenant's health back"}],
        },
    }  # fmt: skip
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"], "matchResources": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}},
    }  # fmt: skip
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                   "items": [policy, binding]}))  # fmt: skip

    def enforced() -> bool:  # a new policy takes a moment to be enforced; a dry run tells
        probe = kubectl("patch", "wat", "acme", "-n", namespace, "--subresource=status",
                        "--type=merge", "-p", '{"status": {"health": {"qualityEvent": "X"}}}',
                        "--dry-run=server", check=False)  # fmt: skip
        return "holds the tenant's health back" in probe.stderr

    wait_for(enforced, 30, 0.3, "the policy enforced")


def test_a_notice_delivered_to_a_replica_lost_before_its_write_is_applied_after_restart(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, rabbitmq: Any
) -> None:
    """The operator takes the notice, its pass cannot write the status (the API server refuses
    it), the operator is killed: the notice was not acknowledged, RabbitMQ hands it to the
    restarted operator, whose pass writes it. (Acknowledged on receipt, it was lost.)"""
    w = make_world(sim, display=DISPLAY)
    tenant_id = f"t_kill_{namespace}"
    apply_tenant(kubectl, namespace, w, tenant_id=tenant_id, senderPool=f"p{namespace[2:]}")
    wait_reason(kubectl, namespace, "acme", "Ready")
    hold_health(kubectl, namespace, True)
    try:
        log = Path(operator.log_path)
        offset = log.stat().st_size
        flagged = {"display_phone_number": "3491000", "event": "FLAGGED"}
        publish(rabbitmq.amqp_url, namespace,
                meta(namespace, tenant_id, "phone_number_quality_update", flagged))  # fmt: skip

        def refused() -> bool:  # the pass took the notice and tried to write it
            with log.open("rb") as f:
                f.seek(offset)
                return f"{namespace}/acme status: HTTP 422".encode() in f.read()

        wait_for(refused, 20, 0.2, "the operator's pass refused by the API server")
        assert "health" not in get(kubectl, namespace, "acme").get("status", {})
        operator.kill()  # lost before its pass wrote the notice
    finally:
        hold_health(kubectl, namespace, False)
        if not operator.running:
            operator.start()
    started = time.monotonic()
    got = wait_for(
        lambda: (get(kubectl, namespace, "acme").get("status", {}).get("health") or {}).get(
            "qualityEvent"), 60, 0.2, "the notice applied by the restarted operator")  # fmt: skip
    print(f"\n[figure] notice applied {time.monotonic() - started:.2f} s after the restart",
          file=sys.stderr)  # fmt: skip
    assert got == "FLAGGED"
    wait_for(lambda: ("Warning", "NumberFlagged") in reasons(kubectl, namespace), 10)
    assert reasons(kubectl, namespace).count(("Warning", "NumberFlagged")) == 1
    wait_for(lambda: queued(rabbitmq.amqp_url) == 0, 10, 0.2, "the operator's queue drained")
