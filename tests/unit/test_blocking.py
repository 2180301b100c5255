"""Meta blocking a tenant's number, as a pure judgement (whatsapp_operator/model/blocking.py):
the block a signal reports, the block kept in status, a check that lifts it; and whether a
worker's credential_rejected signal asks for a live check."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from whatsapp_contract.signals import TenantSignal
from whatsapp_graph.errors import TENANT_BLOCKED_CODES
from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.blocking import (
    Block,
    Health,
    Pending,
    SendingFacts,
    block_reason,
    judge_block,
    reported_block,
    wants_recheck,
)
from whatsapp_operator.model.conditions import Reason
from whatsapp_operator.model.facts import PhoneFacts, Verdict

T0 = datetime(2026, 9, 1, 12, 0, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=5)
PHONE = "106540352242922"
OTHER_PHONE = "106540352249999"
FP = "sha256:0123456789abcdef"
OLD_FP = "sha256:fedcba9876543210"


def signal(kind: str = "sending_blocked", code: int = 131048, **kw: Any) -> TenantSignal:
    values: dict[str, Any] = {
        "kind": kind, "tenant_id": "t_acme", "phone_number_id": PHONE, "pool": "default",
        "code": code, "token_fingerprint": FP, "worker": "w-1", "at": 1.0,
        "detail": "Spam rate limit hit",
    }  # fmt: skip
    return TenantSignal(**(values | kw))


def spam(since: datetime = T0, **kw: Any) -> Block:
    return Block(131048, since, PHONE, "Spam rate limit hit", **kw)


def blocked_status(block: Block) -> dict[str, Any]:
    """A status as stored after `block` was recorded."""
    state = judge_block({}, SendingFacts(PHONE, block), None, block.since)
    assert state.condition is not None
    conditions = c.merge((), [state.condition], generation=1, now=block.since)
    return {"conditions": conditions, "sendingBlock": block.to_status()}


def allowed_status() -> dict[str, Any]:
    """Blocked once, lifted since."""
    healthy = Health(True, True, "AVAILABLE", "CONNECTED")
    state = judge_block(blocked_status(spam()), SendingFacts(PHONE), healthy, LATER)
    assert state.condition is not None
    return {"conditions": c.merge((), [state.condition], generation=1, now=LATER)}


HEALTHY = Health(True, True, "AVAILABLE", "CONNECTED")
LIMITED = Health(True, True, "LIMITED", "CONNECTED")
STILL_BLOCKED = Health(True, True, "BLOCKED", "FLAGGED")
NO_HEALTH = Health(True, True)
TOKEN_REFUSED = Health(False, False, "AVAILABLE")


@dataclass
class Case:
    id: str
    status: dict[str, Any]
    facts: SendingFacts | None
    health: Health | None
    condition: tuple[str, str] | None  # (status, reason) of SendingBlocked; None: absent
    code: int | None  # status.sendingBlock.code after the pass
    events: list[tuple[str, str]] = field(default_factory=list)
    in_message: str = ""


CASES = [
    Case("never blocked: no condition at all", {}, SendingFacts(PHONE), HEALTHY, None, None),
    Case("a block is reported: True with the code's reason, a Warning", {},
         SendingFacts(PHONE, spam()), None, ("True", Reason.SPAM_RATE_LIMIT), 131048,
         [("Warning", Reason.SPAM_RATE_LIMIT)], "error 131048, SpamRateLimit: Spam rate limit"),
    Case("a block reported while a healthy check ran: the report wins", {},
         SendingFacts(PHONE, spam()), HEALTHY, ("True", Reason.SPAM_RATE_LIMIT), 131048,
         [("Warning", Reason.SPAM_RATE_LIMIT)]),
    Case("reported again: no second Warning", blocked_status(spam()),
         SendingFacts(PHONE, spam(LATER)), None, ("True", Reason.SPAM_RATE_LIMIT), 131048,
         in_message="since 2026-09-01T12:00:00Z"),
    Case("another code while blocked: a Warning for it",
         blocked_status(spam()), SendingFacts(PHONE, Block(368, LATER, PHONE)), None,
         ("True", Reason.ACCOUNT_RESTRICTED), 368, [("Warning", Reason.ACCOUNT_RESTRICTED)]),
    Case("restart, no check: the stored block holds, no Event", blocked_status(spam()),
         SendingFacts(PHONE), None, ("True", Reason.SPAM_RATE_LIMIT), 131048),
    Case("invalid spec (no facts): the stored block holds", blocked_status(spam()), None,
         None, ("True", Reason.SPAM_RATE_LIMIT), 131048),
    Case("still blocked after a check: the check is named", blocked_status(spam()),
         SendingFacts(PHONE), STILL_BLOCKED, ("True", Reason.SPAM_RATE_LIMIT), 131048,
         in_message="last check: can_send_message BLOCKED, status FLAGGED"),
    Case("Meta did not report the number's health: still blocked", blocked_status(spam()),
         SendingFacts(PHONE), NO_HEALTH, ("True", Reason.SPAM_RATE_LIMIT), 131048,
         in_message="did not report"),
    Case("a refused token does not lift a block", blocked_status(spam()),
         SendingFacts(PHONE), TOKEN_REFUSED, ("True", Reason.SPAM_RATE_LIMIT), 131048,
         in_message="token is not valid"),
    Case("healthy: lifted, SendingAllowed, a Normal Event", blocked_status(spam()),
         SendingFacts(PHONE), HEALTHY, ("False", Reason.SENDING_ALLOWED), None,
         [("Normal", Reason.SENDING_ALLOWED)], "can_send_message AVAILABLE"),
    Case("LIMITED counts as able to send", blocked_status(spam()), SendingFacts(PHONE),
         LIMITED, ("False", Reason.SENDING_ALLOWED), None, [("Normal", Reason.SENDING_ALLOWED)]),
    Case("lifted stays lifted, no Event", allowed_status(), SendingFacts(PHONE), HEALTHY,
         ("False", Reason.SENDING_ALLOWED), None, in_message="is lifted"),
    Case("the tenant moved to another number: lifted", blocked_status(spam()),
         SendingFacts(OTHER_PHONE), None, ("False", Reason.SENDING_ALLOWED), None,
         [("Normal", Reason.SENDING_ALLOWED)], f"number is now {OTHER_PHONE}"),
]  # fmt: skip


@pytest.mark.parametrize("case", [pytest.param(x, id=x.id) for x in CASES])
def test_judge_block(case: Case) -> None:
    state = judge_block(case.status, case.facts, case.health, LATER)
    cond = state.condition
    assert (None if cond is None else (cond.status, cond.reason)) == case.condition
    assert (None if state.block is None else state.block.code) == case.code
    assert [(t, r) for t, r, _ in state.events] == case.events
    if cond is not None:
        assert case.in_message in cond.message
        assert all(message == cond.message for _, _, message in state.events)


def test_a_block_survives_the_round_trip_through_status() -> None:
    block = spam(subcode=7, last_check="can_send_message BLOCKED")
    assert Block.from_status(block.to_status()) == block
    assert Block.from_status(spam().to_status()) == spam()


@pytest.mark.parametrize(
    "stored",
    [None, "131048", {"code": "131048", "since": "2026-09-01T12:00:00Z"},
     {"code": 131048}, {"code": 131048, "since": "yesterday"}],
)  # fmt: skip
def test_an_unreadable_stored_block_is_no_block(stored: Any) -> None:
    assert Block.from_status(stored) is None


def test_every_blocking_code_has_a_reason_and_others_a_generic_one() -> None:
    reasons = {code: block_reason(code) for code in TENANT_BLOCKED_CODES}
    assert reasons[131048] == "SpamRateLimit"
    assert reasons[368] == "AccountRestricted"
    assert all(not r.startswith("MetaError") for r in reasons.values())
    assert len(set(reasons.values())) == len(reasons)
    assert block_reason(131999) == "MetaError131999"


@pytest.mark.parametrize(
    ("pending", "expected"),
    [
        pytest.param(None, None, id="nothing reported"),
        pytest.param(Pending(refused=frozenset({FP})), None, id="only a refused token"),
        pytest.param(Pending(blocked=signal()), 131048, id="a block for the tenant's number"),
        pytest.param(Pending(blocked=signal(code=131026)), None, id="a code that does not block"),
        pytest.param(
            Pending(blocked=signal(phone_number_id=OTHER_PHONE)), None, id="another number"
        ),
    ],
)
def test_reported_block(pending: Pending | None, expected: int | None) -> None:
    block = reported_block(pending, PHONE, T0)
    assert (None if block is None else block.code) == expected
    if block is not None:
        assert (block.since, block.phone_number_id, block.detail) == (
            T0, PHONE, "Spam rate limit hit",
        )  # fmt: skip


def token_status(fingerprint: str, status: str, reason: str) -> dict[str, Any]:
    return {
        "token": {"fingerprint": fingerprint},
        "conditions": [{"type": c.TOKEN_VALID, "status": status, "reason": reason}],
    }


VALID = token_status(FP, "True", Reason.TOKEN_VALID)
REFUSED = token_status(FP, "False", Reason.TOKEN_INVALIDATED)


@pytest.mark.parametrize(
    ("pending", "status", "expected"),
    [
        pytest.param(None, VALID, False, id="no signal"),
        pytest.param(Pending(refused=frozenset({FP})), VALID, True, id="the current token"),
        pytest.param(Pending(refused=frozenset({OLD_FP})), VALID, False, id="a replaced token"),
        pytest.param(Pending(refused=frozenset({OLD_FP, FP})), VALID, True, id="both"),
        pytest.param(Pending(blocked=signal()), VALID, False, id="a block is no token problem"),
        pytest.param(Pending(refused=frozenset({FP})), REFUSED, False, id="already refused"),
        pytest.param(
            Pending(refused=frozenset({FP})), token_status(OLD_FP, "False", Reason.TOKEN_EXPIRED),
            True, id="an older token was refused, not this one",
        ),
        pytest.param(
            Pending(refused=frozenset({FP})),
            token_status(FP, "Unknown", Reason.GRAPH_API_UNAVAILABLE), True, id="no verdict yet",
        ),
        pytest.param(Pending(refused=frozenset({FP})), {}, True, id="never checked"),
    ],
)  # fmt: skip
def test_wants_recheck(pending: Pending | None, status: dict[str, Any], expected: bool) -> None:
    assert wants_recheck(pending, FP, status) is expected


def test_pending_keeps_every_refused_token_and_the_latest_block() -> None:
    first = Pending().add(signal("credential_rejected", 190, token_fingerprint=OLD_FP))
    both = first.add(signal(code=368)).add(signal("credential_rejected", 190))
    assert both.refused == {OLD_FP, FP}
    assert both.blocked is not None
    assert both.blocked.code == 368
    newer = Pending(blocked=signal(code=131048))
    assert both.merge(newer).blocked == newer.blocked
    assert both.merge(Pending()).blocked == both.blocked


@dataclass(frozen=True)
class Check:
    token_verdict: Verdict
    phone_verdict: Verdict
    phone: PhoneFacts | None
    transient: bool = False


OK_TOKEN = Verdict("True", Reason.TOKEN_VALID, "ok")
OK_PHONE = Verdict("True", Reason.PHONE_NUMBER_VERIFIED, "ok")


def test_health_of_a_check() -> None:
    facts = PhoneFacts(status="CONNECTED", can_send_message="LIMITED")
    assert Health.of(Check(OK_TOKEN, OK_PHONE, facts)) == Health(True, True, "LIMITED", "CONNECTED")
    assert Health.of(Check(OK_TOKEN, OK_PHONE, facts, transient=True)) is None
    refused = Verdict("False", Reason.TOKEN_INVALIDATED, "no")
    assert Health.of(Check(refused, OK_PHONE, None)) == Health(False, True)
    assert not Health(False, True, "AVAILABLE").healthy
    assert not Health(True, False, "AVAILABLE").healthy
    assert not Health(True, True, "BLOCKED").healthy
    assert not Health(True, True, None, "CONNECTED").healthy
