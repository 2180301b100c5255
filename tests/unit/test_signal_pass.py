"""A tenant's pass with what workers reported (operator/whatsapp_operator/tenant/reconcile.py with
blocking.py): a refused token is checked live at once even when its last check was seconds
ago, unless it was replaced since; a blocked number stays published with its blocked_code,
is checked again sooner, and is published without it once a check finds it healthy."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from whatsapp_contract.resolved import Entry, TenantConfig
from whatsapp_contract.signals import TenantSignal
from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.blocking import Pending, publishable
from whatsapp_operator.model.conditions import Reason
from whatsapp_operator.model.facts import CheckResult, PhoneFacts, TokenFacts, Verdict
from whatsapp_operator.model.recheck import BLOCKED_RECHECK, JITTER
from whatsapp_operator.model.secret_data import fingerprint
from whatsapp_operator.model.tenant_policy import parse_policy
from whatsapp_operator.runtime.kube import SecretSnapshot
from whatsapp_operator.runtime.registry import Registry
from whatsapp_operator.runtime.services import Runtime
from whatsapp_operator.tenant.gather import Requests
from whatsapp_operator.tenant.reconcile import reconcile_once

T0 = datetime(2026, 9, 1, 12, 0, 0, tzinfo=UTC)
TOKEN = "EAAGm0PX4ZCpsBAKZBsignalTOKEN1234567890"
FP = fingerprint(TOKEN)
PHONE = "106540352242922"
BODY: dict[str, Any] = {
    "metadata": {"namespace": "shop", "name": "acme", "uid": "u-1", "generation": 1},
    "spec": {
        "tenantId": "t_acme",
        "wabaId": "102290129340398",
        "phoneNumberId": PHONE,
        "tokenSecretRef": {"name": "acme-token"},
    },
}


class FakeKube:
    async def read_secret(self, namespace: str, name: str) -> SecretSnapshot:
        return SecretSnapshot({"accessToken": base64.b64encode(TOKEN.encode()).decode()}, "1", {})


def result(can_send: str | None = "AVAILABLE", *, token_ok: bool = True) -> CheckResult:
    if not token_ok:
        return CheckResult(
            Verdict("False", Reason.TOKEN_INVALIDATED, "Meta reports the token invalid"),
            Verdict("Unknown", Reason.NOT_CHECKED, "token not valid"),
            TokenFacts(is_valid=False),
            checked_at=T0,
        )
    return CheckResult(
        Verdict("True", Reason.TOKEN_VALID, "token valid"),
        Verdict("True", Reason.PHONE_NUMBER_VERIFIED, "phone number verified"),
        TokenFacts(is_valid=True, type="SYSTEM_USER"),
        PhoneFacts(display_phone_number="+1 555-0100", status="CONNECTED",
                   can_send_message=can_send),
        checked_at=T0,
    )  # fmt: skip


@dataclass
class FakeValidator:
    answer: CheckResult = field(default_factory=result)
    calls: int = 0

    async def check(self, token: str, spec: object, proof: str | None = None) -> CheckResult:
        self.calls += 1
        return self.answer


@dataclass
class FakePublisher:
    configs: list[TenantConfig | None] = field(default_factory=list)

    def update(self, tenant_id: str, pool: str, config: TenantConfig | None) -> Entry | None:
        self.configs.append(config)
        return Entry(config) if config is not None else None

    async def wait_published(self, tenant_id: str, config: Entry, seconds: float) -> bool:
        return True

    def location(self, tenant_id: str) -> None:
        return None


def runtime(validator: FakeValidator, publisher: FakePublisher) -> Runtime:
    return Runtime(
        kube=FakeKube(),  # type: ignore[arg-type]
        validator=validator,  # type: ignore[arg-type]
        registry=Registry(),
        clock=lambda: T0,
        post_event=lambda body, event: None,
        grace=timedelta(minutes=15),
        publisher=publisher,  # type: ignore[arg-type]
        **OPEN,
    )


# --tenant-policy enforce (the default), with a policy allowing every id in every namespace
OPEN: dict[str, Any] = {
    "tenant_policies": {
        "open": [parse_policy("open", {"namespaceSelector": {}, "tenantIds": ["*"]})]
    },
    "namespace_labels": {"shop": [{}]},
}


def signal(kind: str, code: int, token_fingerprint: str = FP) -> TenantSignal:
    return TenantSignal(kind, "t_acme", PHONE, "default", code, token_fingerprint, "w-1", 1.0,
                        detail="rate limit hit")  # type: ignore[arg-type]  # fmt: skip


async def ready_status() -> dict[str, Any]:
    """The status of a tenant validated 10 s before T0 (its next check is an hour away)."""
    validator, publisher = FakeValidator(), FakePublisher()
    rt = replace(runtime(validator, publisher), clock=lambda: T0 - timedelta(seconds=10))
    outcome = await reconcile_once(rt, BODY, {}, {}, {})
    assert outcome.decision is not None
    assert outcome.decision.ready
    return outcome.decision.status


async def run(
    status: dict[str, Any], pending: Pending | None, answer: CheckResult | None = None
) -> tuple[Any, FakeValidator, FakePublisher]:
    validator, publisher = FakeValidator(answer or result()), FakePublisher()
    outcome = await reconcile_once(
        runtime(validator, publisher), BODY, status, {}, {}, Requests(signals=pending)
    )
    return outcome, validator, publisher


@pytest.mark.parametrize(
    ("pending", "checks"),
    [
        pytest.param(None, 0, id="no signal: checked 10 s ago, not again"),
        pytest.param(Pending(refused=frozenset({FP})), 1, id="the current token refused: now"),
        pytest.param(Pending(refused=frozenset({"sha256:ffffffffffffffff"})), 0,
                     id="a replaced token refused: ignored"),
    ],
)  # fmt: skip
async def test_a_refused_token_is_checked_at_once(pending: Pending | None, checks: int) -> None:
    outcome, validator, _ = await run(await ready_status(), pending, result(token_ok=False))
    assert validator.calls == checks
    token_valid = c.find(outcome.decision.status["conditions"], c.TOKEN_VALID)
    assert token_valid is not None
    assert token_valid["status"] == ("False" if checks else "True")


async def test_a_blocked_number_stays_published_with_its_code_then_resumes() -> None:
    status = await ready_status()
    blocked, validator, publisher = await run(
        status, Pending(blocked=signal("sending_blocked", 131048))
    )
    assert validator.calls == 0  # a block is no reason for a check at once
    assert not blocked.decision.ready
    assert publishable(blocked.decision.status)
    (config,) = publisher.configs
    assert config is not None
    assert config.blocked_code == 131048
    # sooner than the hourly interval, and not at once: 5 min, jittered
    assert (1 - JITTER) * BLOCKED_RECHECK.total_seconds() <= blocked.next_in
    assert blocked.next_in <= (1 + JITTER) * BLOCKED_RECHECK.total_seconds()

    _, validator, publisher = await run(blocked.decision.status, None)
    assert validator.calls == 0
    assert publisher.configs[0] is not None
    assert publisher.configs[0].blocked_code == 131048  # the block is read from status

    stored = blocked.decision.status
    ten_minutes_ago = "2026-09-01T11:50:00Z"
    later = stored | {  # as if all this happened ten minutes ago: the block's re-check is due
        "token": stored["token"] | {"lastValidatedAt": ten_minutes_ago},
        "sendingBlock": stored["sendingBlock"] | {"since": ten_minutes_ago},
    }
    _, validator, publisher = await run(later, None, result("BLOCKED"))
    assert validator.calls == 1
    assert publisher.configs[0] is not None
    assert publisher.configs[0].blocked_code == 131048
    resumed, validator, publisher = await run(later, None, result("AVAILABLE"))
    assert validator.calls == 1
    assert resumed.decision.ready
    assert publisher.configs[0] is not None
    assert publisher.configs[0].blocked_code is None
    assert "sendingBlock" not in resumed.decision.status


async def test_a_block_for_a_code_that_does_not_block_changes_nothing() -> None:
    outcome, _, publisher = await run(
        await ready_status(), Pending(blocked=signal("sending_blocked", 131026))
    )
    assert outcome.decision.ready
    assert publisher.configs[0] is not None
    assert publisher.configs[0].blocked_code is None
    assert c.find(outcome.decision.status["conditions"], c.SENDING_BLOCKED) is None
