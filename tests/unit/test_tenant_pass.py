"""The tenant pass's structure (issue 17): one decision per pass, the typed phone facts from
Meta's answer to the row and to the worker config, the one Secret decoder."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from test_signal_pass import BODY, T0, FakePublisher, FakeValidator, result, runtime

from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.conditions import Condition, Reason
from whatsapp_operator.model.facts import CheckResult, PhoneFacts, Verdict
from whatsapp_operator.model.secret_data import decode, decode_value, resolve_token
from whatsapp_operator.model.spec import parse_spec
from whatsapp_operator.pools.publication import plan_publication
from whatsapp_operator.postgres.rows import desired_row
from whatsapp_operator.signup.model import secret_value
from whatsapp_operator.tenant import reconcile
from whatsapp_operator.tenant.view import Facts, view_of


async def test_a_pass_composes_one_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    real = reconcile.compose

    def counting(view: Any, **fragments: Any) -> Any:
        calls.append(fragments)
        return real(view, **fragments)

    monkeypatch.setattr(reconcile, "compose", counting)
    publisher = FakePublisher()
    outcome = await reconcile.reconcile_once(runtime(FakeValidator(), publisher), BODY, {}, {}, {})
    assert outcome.decision is not None
    assert outcome.decision.ready
    assert len(calls) == 1
    assert calls[0]["api_version"] is not None  # the stages reported into that one decision
    assert len(publisher.configs) == 1  # and the publication planned once, from the view


@pytest.mark.parametrize(
    ("level", "published"), [("HIGH", "HIGH"), ("STANDARD", "STANDARD"), (None, "STANDARD")]
)
async def test_the_throughput_reaches_the_worker_config_typed(
    level: str | None, published: str
) -> None:
    answer = result()
    assert answer.phone is not None
    phone = PhoneFacts(**{**answer.phone.__dict__, "throughput_level": level})
    publisher = FakePublisher()
    validator = FakeValidator(answer.__class__(**{**answer.__dict__, "phone": phone}))
    await reconcile.reconcile_once(runtime(validator, publisher), BODY, {}, {}, {})
    (config,) = publisher.configs
    assert config is not None
    assert config.throughput_level == published


async def test_without_a_check_the_stored_phone_facts_drive_config_and_row() -> None:
    first = await reconcile.reconcile_once(
        runtime(FakeValidator(), FakePublisher()), BODY, {}, {}, {}
    )
    assert first.decision is not None
    status = first.decision.status
    status["phone"]["throughputLevel"] = "HIGH"  # as a previous check stored it
    publisher, validator = FakePublisher(), FakeValidator()
    await reconcile.reconcile_once(runtime(validator, publisher), BODY, status, {}, {})
    assert validator.calls == 0  # the check is not due: the facts come from the status
    (config,) = publisher.configs
    assert config is not None
    assert config.throughput_level == "HIGH"
    stored = PhoneFacts.from_status(status["phone"])
    spec, _ = parse_spec(BODY["spec"])
    row = desired_row(
        spec=spec, uid="u", namespace="shop", name="acme", generation=1, token=None,
        token_fingerprint=None, phone=stored, ready=True, was_configured=False,
    )  # fmt: skip
    assert row.display_phone_number == "+1 555-0100"


@pytest.mark.parametrize(
    "phone",
    [
        PhoneFacts(),
        PhoneFacts(display_phone_number="+1 555", quality_rating="GREEN", throughput_level="HIGH"),
        PhoneFacts(status="FLAGGED", can_send_message="LIMITED", messaging_limit="TIER_1K"),
    ],
)
def test_phone_facts_round_trip_through_the_status(phone: PhoneFacts) -> None:
    stored = phone.to_status()
    assert PhoneFacts.from_status(stored) == (phone if stored else None)


def facts(**changes: Any) -> Facts:
    base = Facts(1, "", resolve_token(SECRET, "s", "accessToken"), None, result(), {}, T0)
    return Facts(**{**base.__dict__, **changes})


SECRET = {"accessToken": base64.b64encode(b"EAAtoken123456789").decode()}


@dataclass(frozen=True)
class GateCase:
    name: str
    gate: Condition | None
    status: str
    reason: str


@pytest.mark.parametrize(
    "case",
    [
        GateCase("no gate", None, "True", Reason.READY),
        GateCase("synced", Condition(c.SYNCED, "True", Reason.SYNCED, "ok"), "True", Reason.READY),
        GateCase(
            "database down",
            Condition(c.SYNCED, "False", Reason.DATABASE_UNAVAILABLE, "down"),
            "False",
            Reason.DATABASE_UNAVAILABLE,
        ),
    ],
    ids=lambda case: case.name,
)
def test_the_row_gates_ready_but_not_the_publication(case: GateCase) -> None:
    view = view_of(facts())
    assert (view.ready.status, view.publishable) == ("True", True)  # before the stages
    ready = view.ready_with([case.gate] if case.gate else [])
    assert (ready.status, ready.reason) == (case.status, case.reason)


def test_a_grace_kept_ready_is_still_published() -> None:
    ready = {"type": c.READY, "status": "True", "reason": Reason.READY, "message": "",
             "lastTransitionTime": "2026-09-01T11:59:00Z"}  # fmt: skip
    unreachable = Verdict("Unknown", Reason.GRAPH_API_UNAVAILABLE, "Graph API unreachable")
    down = CheckResult(unreachable, unreachable, checked_at=T0)
    view = view_of(facts(check=down, status={"conditions": [ready]}, grace=timedelta(hours=1)))
    assert view.ready.status == "True"
    assert view.publishable


def test_plan_publication_withdraws_what_may_not_send() -> None:
    spec, _ = parse_spec(BODY["spec"])
    assert spec is not None
    token = resolve_token(SECRET, "s", "accessToken").token
    plan = dict(token=token, blocked_code=None, phone=None, default_version="v25.0")
    assert plan_publication(spec, publishable=True, **plan) is not None  # type: ignore[arg-type]
    assert plan_publication(spec, publishable=False, **plan) is None  # type: ignore[arg-type]
    suspended = spec.model_copy(update={"suspend": True})
    assert plan_publication(suspended, publishable=True, **plan) is None  # type: ignore[arg-type]
    blocked = {**plan, "blocked_code": 131031}
    config = plan_publication(spec, publishable=True, **blocked)  # type: ignore[arg-type]
    assert config is not None
    assert config.blocked_code == 131031


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (None, "no-secret"),
        ({}, "no-key"),
        ({"k": "not base64!"}, "not-base64"),
        ({"k": base64.b64encode(b"\xff\xfe").decode()}, "not-text"),
        ({"k": base64.b64encode(b" value \n").decode()}, ""),
    ],
)
def test_one_decoder_reads_every_secret_value(data: dict[str, str] | None, problem: str) -> None:
    found = decode(data, "s", "k")
    assert found.problem == problem
    token = resolve_token(data, "s", "k")
    value = secret_value(data, "s", "k")
    plain = decode_value(data or {}, "k")
    if problem:
        assert token.token is None
        assert value.value is None
        assert plain is None
    else:
        assert token.token is not None
        assert token.token.value == "value" == value.value == plain
