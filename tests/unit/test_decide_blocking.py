"""`decide` with a block (operator/whatsapp_operator/tenant/compose.py, blocking.py): the block is a
fact in (a worker's report, the stored status, a check's health), the SendingBlocked condition,
Ready, status.sendingBlock and the Events out; a blocked tenant stays publishable with its
code."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest
from test_decide import T0, good_check, inputs, ready_status

from whatsapp_contract.signals import TenantSignal
from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.blocking import (
    Block,
    Pending,
    SendingFacts,
    blocked_code,
    publishable,
    reported_block,
)
from whatsapp_operator.model.conditions import Reason
from whatsapp_operator.model.facts import CheckResult, Verdict
from whatsapp_operator.model.fragment import Decision
from whatsapp_operator.tenant.compose import decide

PHONE = "106540352242922"
LATER = T0 + timedelta(minutes=6)


def report(code: int, phone: str = PHONE) -> SendingFacts:
    """The pass's facts after a worker's sending_blocked signal with `code`."""
    signal = TenantSignal(
        "sending_blocked", "t_acme", phone, "default", code, "sha256:0123456789abcdef",
        "w-1", 1.0, detail="Meta's own words",
    )  # fmt: skip
    return SendingFacts(PHONE, reported_block(Pending(blocked=signal), PHONE, T0))


QUIET = SendingFacts(PHONE)


def check(can_send: str | None, at: Any = LATER) -> CheckResult:
    base = good_check(at)
    assert base.phone is not None
    return replace(base, phone=replace(base.phone, status="CONNECTED", can_send_message=can_send))


def blocked_status() -> dict[str, Any]:
    """A Ready tenant, then blocked with 131048 at T0."""
    return decide(replace(inputs(status=ready_status()), sending=report(131048))).status


def lifted_status() -> dict[str, Any]:
    return decide(replace(inputs(status=blocked_status(), check=check("AVAILABLE"), now=LATER),
                          sending=QUIET)).status  # fmt: skip


@dataclass
class Case:
    id: str
    status: Any  # a function: the stored status (built lazily)
    sending: SendingFacts | None
    check: CheckResult | None
    blocked: tuple[str, str] | None  # SendingBlocked (status, reason); None: no condition
    ready: tuple[str, str]
    code: int | None  # status.sendingBlock.code, and the published blocked_code
    publishable: bool
    events: list[tuple[str, str]] = field(default_factory=list)


CASES = [
    Case("Ready, never blocked: no SendingBlocked condition", ready_status, QUIET, None, None,
         ("True", Reason.READY), None, True),
    Case("blocked: SendingBlocked True, Ready False, still published", ready_status,
         report(131048), None, ("True", Reason.SPAM_RATE_LIMIT),
         ("False", Reason.SENDING_BLOCKED), 131048, True,
         [("Warning", Reason.SENDING_BLOCKED), ("Warning", Reason.SPAM_RATE_LIMIT)]),
    Case("a blocking code without a name of its own (a future one): MetaError<code>",
         ready_status, SendingFacts(PHONE, Block(131999, T0, PHONE)), None,
         ("True", "MetaError131999"), ("False", Reason.SENDING_BLOCKED), 131999, True,
         [("Warning", Reason.SENDING_BLOCKED), ("Warning", "MetaError131999")]),
    Case("a signal for an unrelated code is ignored", ready_status, report(131026), None,
         None, ("True", Reason.READY), None, True),
    Case("restart with the block in status: kept, no Event", blocked_status, QUIET, None,
         ("True", Reason.SPAM_RATE_LIMIT), ("False", Reason.SENDING_BLOCKED), 131048, True),
    Case("still blocked after a check", blocked_status, QUIET, check("BLOCKED"),
         ("True", Reason.SPAM_RATE_LIMIT), ("False", Reason.SENDING_BLOCKED), 131048, True),
    Case("a transient check within the grace changes nothing: still published", blocked_status,
         QUIET,
         CheckResult(Verdict("Unknown", Reason.GRAPH_API_UNAVAILABLE, "down"),
                     Verdict("Unknown", Reason.NOT_CHECKED, "skipped")),
         ("True", Reason.SPAM_RATE_LIMIT), ("False", Reason.SENDING_BLOCKED), 131048, True),
    Case("healthy: cleared, Ready again, Normal Events", blocked_status, QUIET,
         check("AVAILABLE"), ("False", Reason.SENDING_ALLOWED), ("True", Reason.READY), None,
         True, [("Normal", Reason.READY), ("Normal", Reason.SENDING_ALLOWED)]),
    Case("cleared stays cleared", lifted_status, QUIET, None,
         ("False", Reason.SENDING_ALLOWED), ("True", Reason.READY), None, True),
    Case("token refused while blocked: Ready names the token, not published", blocked_status,
         QUIET, CheckResult(Verdict("False", Reason.TOKEN_INVALIDATED, "invalidated"),
                            Verdict("Unknown", Reason.NOT_CHECKED, "skipped"), checked_at=LATER),
         ("True", Reason.SPAM_RATE_LIMIT), ("False", Reason.TOKEN_INVALIDATED), 131048, False,
         [("Warning", Reason.TOKEN_INVALIDATED)]),
]  # fmt: skip


def summary(decision: Decision, type_: str) -> tuple[str, str] | None:
    found = c.find(decision.status["conditions"], type_)
    return None if found is None else (found["status"], found["reason"])


@pytest.mark.parametrize("case", [pytest.param(x, id=x.id) for x in CASES])
def test_decide_with_a_block(case: Case) -> None:
    decision = decide(
        replace(inputs(status=case.status(), check=case.check, now=LATER), sending=case.sending)
    )
    assert summary(decision, c.SENDING_BLOCKED) == case.blocked
    assert summary(decision, c.READY) == case.ready
    assert blocked_code(decision.status) == case.code
    assert (decision.status.get("sendingBlock") or {}).get("code") == case.code
    assert publishable(decision.status) is case.publishable
    assert [(e.type, e.reason) for e in decision.events] == case.events


def test_the_block_message_names_the_code_the_number_and_metas_words() -> None:
    decision = decide(replace(inputs(status=ready_status()), sending=report(131048)))
    ready = c.find(decision.status["conditions"], c.READY)
    assert ready is not None
    for text in ("131048", "SpamRateLimit", PHONE, "Meta's own words", "hold"):
        assert text in ready["message"]
    stored = decision.status["sendingBlock"]
    assert stored == {
        "code": 131048, "since": "2026-09-01T12:00:00Z", "phoneNumberId": PHONE,
        "detail": "Meta's own words",
    }  # fmt: skip


def test_conditions_keep_their_order() -> None:
    decision = decide(replace(inputs(status=ready_status()), sending=report(368)))
    types = [x["type"] for x in decision.status["conditions"]]
    assert types.index(c.SENDING_BLOCKED) == types.index(c.PHONE_NUMBER_VERIFIED) + 1
    assert types[-1] == c.READY


def test_a_blocked_number_without_health_facts_stays_blocked() -> None:
    decision = decide(
        replace(inputs(status=blocked_status(), check=check(None), now=LATER), sending=QUIET)
    )
    assert summary(decision, c.SENDING_BLOCKED) == ("True", Reason.SPAM_RATE_LIMIT)
    assert decision.status["sendingBlock"]["lastCheck"] == "Meta did not report the number's health"
    assert "phone" in decision.status


def test_a_graph_outage_past_the_grace_makes_a_blocked_tenant_unknown() -> None:
    down = CheckResult(
        Verdict("Unknown", Reason.GRAPH_API_UNAVAILABLE, "down"),
        Verdict("Unknown", Reason.NOT_CHECKED, "skipped"),
    )
    during = decide(replace(inputs(status=blocked_status(), check=down, now=LATER), sending=QUIET))
    assert summary(during, c.READY) == ("False", Reason.SENDING_BLOCKED)
    past = LATER + timedelta(minutes=16)
    after = decide(replace(inputs(status=during.status, check=down, now=past), sending=QUIET))
    assert summary(after, c.READY) == ("Unknown", Reason.GRAPH_API_UNAVAILABLE)
    assert summary(after, c.SENDING_BLOCKED) == ("True", Reason.SPAM_RATE_LIMIT)
    assert not publishable(after.status)
