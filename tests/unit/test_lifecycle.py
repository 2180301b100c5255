"""Token lifecycle steps of a reconcile (operator/whatsapp_operator/tokens/stage.py), with a
fake Refresher: when it is asked to refresh or retire, and what the rotation state becomes."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from prometheus_client import REGISTRY

from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.conditions import Reason
from whatsapp_operator.model.facts import CheckResult, TokenFacts, Verdict, unavailable
from whatsapp_operator.model.secret_data import ResolvedToken, fingerprint
from whatsapp_operator.model.spec import REFRESH_ANNOTATION, REVALIDATE_ANNOTATION, TenantSpec
from whatsapp_operator.runtime.kube import SecretSnapshot
from whatsapp_operator.tokens.refresh import PREVIOUS_KEY, Refresher, RefreshError
from whatsapp_operator.tokens.rotation import (
    RefreshOutcome,
    RotationInputs,
    RotationState,
    TokenTimes,
    after_refresh,
    retired,
)
from whatsapp_operator.tokens.stage import api_version_condition, refresh_requested, rotate

TOKEN = "EAAGlifecycleCURRENTtoken0123456789abcdef"
PREVIOUS = "EAAGlifecyclePREVIOUStoken9876543210fedcba"
T0 = datetime(2026, 9, 1, 12, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
GRACE = timedelta(hours=24)
ISSUED = T0
EXPIRES = T0 + 60 * DAY
RENEWAL = T0 + 40 * DAY
BACKOFF_END = RENEWAL + timedelta(minutes=5)
FRESH = RotationState()
BACKING_OFF = RotationState(failures=1, next_attempt_at=BACKOFF_END)
AFTER_REFRESH = RotationState(T0, fingerprint(PREVIOUS), T0 + GRACE)
CURRENT = ResolvedToken(TOKEN, fingerprint(TOKEN))
NAMESPACE = "shop"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def tenant_spec(strategy: str = "Refresh", **rotation: Any) -> TenantSpec:
    return TenantSpec.model_validate(
        {
            "tenantId": "acme",
            "wabaId": "102290129340398",
            "phoneNumberId": "106540352242922",
            "tokenSecretRef": {"name": "acme-meta"},
            "rotation": {"strategy": strategy, "appCredentialsSecretRef": {"name": "app"}}
            | rotation,
        }
    )


def snapshot(previous: bool = False) -> SecretSnapshot:
    data = {"accessToken": b64(TOKEN)}
    if previous:
        data[PREVIOUS_KEY] = b64(PREVIOUS)
    return SecretSnapshot(data, "rv-7", {})


def check(expires_at: datetime | None = EXPIRES, valid: bool = True) -> CheckResult:
    verdict = (
        Verdict("True", Reason.TOKEN_VALID, "token valid")
        if valid
        else Verdict("False", Reason.TOKEN_EXPIRED, "Meta reports the token invalid")
    )
    return CheckResult(
        verdict,
        Verdict("True", Reason.PHONE_NUMBER_VERIFIED, "phone number verified"),
        TokenFacts(is_valid=valid, issued_at=ISSUED, expires_at=expires_at),
        checked_at=T0,
    )


def stored_status(
    state: RotationState = FRESH, token_valid: str = "True", fp: str = CURRENT.fingerprint
) -> dict[str, Any]:
    """A status as stored after an earlier pass: verdict, token times, rotation state."""
    return {
        "conditions": [
            {"type": c.TOKEN_VALID, "status": token_valid, "reason": "X", "message": "x"}
        ],
        "token": {
            "fingerprint": fp,
            "issuedAt": c.rfc3339(ISSUED),
            "expiresAt": c.rfc3339(EXPIRES),
        },
        "rotation": state.to_status(),
    }


OK = RefreshOutcome(True, "done", "token refreshed (sha256:new)", RENEWAL, CURRENT.fingerprint)
FAILED = RefreshOutcome(False, "exchange", "exchange: Graph API error 190", RENEWAL)
RETIRED = f"previous token {fingerprint(PREVIOUS)} removed from the Secret"


class FakeRefresher:
    """Answers refresh() with a fixed outcome and retire_previous() with a fixed result."""

    def __init__(self, outcome: RefreshOutcome, retire: str | Exception) -> None:
        self.outcome = outcome
        self.retire = retire
        self.calls: list[tuple[str, str, TenantSpec, SecretSnapshot, ResolvedToken]] = []

    async def refresh(
        self, namespace: str, spec: TenantSpec, secret: SecretSnapshot, token: ResolvedToken
    ) -> RefreshOutcome:
        self.calls.append(("refresh", namespace, spec, secret, token))
        return self.outcome

    async def retire_previous(
        self, namespace: str, spec: TenantSpec, secret: SecretSnapshot, current: ResolvedToken
    ) -> str:
        self.calls.append(("retire_previous", namespace, spec, secret, current))
        if isinstance(self.retire, Exception):
            raise self.retire
        return self.retire


@dataclass
class Case:
    id: str
    now: datetime
    calls: list[str]
    state: RotationState  # after the pass
    strategy: str = "Refresh"
    stored: RotationState = FRESH
    check: CheckResult | None = field(default_factory=check)
    token_valid: str = "True"  # the stored TokenValid status (used when no check ran)
    forced: bool = False
    previous_in_secret: bool = False
    outcome: RefreshOutcome = OK
    retire: str | Exception = RETIRED
    retired: str | None = None


CASES = [
    Case("External: no refresh after renewal", RENEWAL + DAY, [], FRESH, strategy="External"),
    Case("External: a forced refresh does nothing", T0, [], FRESH, strategy="External",
         forced=True),
    Case("Refresh: nothing before renewal", RENEWAL - SECOND, [], FRESH),
    Case("Refresh: refreshes at renewal", RENEWAL, ["refresh"], after_refresh(FRESH, OK, GRACE)),
    Case("Refresh: refreshes after renewal", RENEWAL + DAY, ["refresh"],
         after_refresh(FRESH, OK, GRACE)),
    Case("Refresh: forced refresh before renewal", T0 + DAY, ["refresh"],
         after_refresh(FRESH, OK, GRACE), forced=True),
    Case("Refresh: a failed refresh schedules a retry", RENEWAL, ["refresh"],
         RotationState(failures=1, next_attempt_at=RENEWAL + timedelta(seconds=30),
                       last_error=FAILED.message), outcome=FAILED),
    Case("Refresh: waits out the backoff", BACKOFF_END - SECOND, [], BACKING_OFF,
         stored=BACKING_OFF),
    Case("Refresh: retries when the backoff ends", BACKOFF_END, ["refresh"],
         after_refresh(BACKING_OFF, FAILED, GRACE), stored=BACKING_OFF, outcome=FAILED),
    Case("Refresh: not while the checked token is invalid", RENEWAL, [], FRESH,
         check=check(valid=False)),
    Case("Refresh: not while the checked token is invalid, even when forced", RENEWAL, [],
         FRESH, check=check(valid=False), forced=True),
    Case("Refresh: not while the Graph check failed", RENEWAL, [], FRESH,
         check=CheckResult(unavailable("debug_token: timed out"), unavailable("skipped"))),
    Case("Refresh: not while the stored TokenValid is False", RENEWAL, [], FRESH, check=None,
         token_valid="False"),
    Case("Refresh: due from the stored token times when no check ran", RENEWAL, ["refresh"],
         after_refresh(FRESH, OK, GRACE), check=None),
    Case("Refresh: never-expiring token is not refreshed", T0 + 1000 * DAY, [], FRESH,
         check=check(expires_at=None)),
    Case("retires the previous token after the grace", T0 + GRACE, ["retire_previous"],
         retired(AFTER_REFRESH), stored=AFTER_REFRESH, previous_in_secret=True,
         retired=RETIRED),
    Case("retires the previous token long after the grace", T0 + 10 * DAY, ["retire_previous"],
         retired(AFTER_REFRESH), stored=AFTER_REFRESH, previous_in_secret=True,
         retired=RETIRED),
    Case("keeps the previous token during the grace", T0 + GRACE - SECOND, [], AFTER_REFRESH,
         stored=AFTER_REFRESH, previous_in_secret=True),
    Case("a failed retirement leaves the state", T0 + GRACE, ["retire_previous"],
         AFTER_REFRESH, stored=AFTER_REFRESH, previous_in_secret=True,
         retire=RefreshError("revoke", "Graph API error 190")),
    Case("state cleared when previousAccessToken is already gone", T0 + GRACE,
         [], retired(AFTER_REFRESH), stored=AFTER_REFRESH),
    Case("state cleared when previousAccessToken is gone before the grace ends",
         T0 + timedelta(hours=1), [], retired(AFTER_REFRESH), stored=AFTER_REFRESH),
    Case("retirement waits while the token is not valid", T0 + GRACE, [], AFTER_REFRESH,
         stored=AFTER_REFRESH, previous_in_secret=True, check=check(valid=False)),
]  # fmt: skip


def _refreshes(result: str) -> float:
    value = REGISTRY.get_sample_value("whatsapp_operator_token_refreshes_total", {"result": result})
    return value or 0.0


@pytest.mark.parametrize("case", [pytest.param(x, id=x.id) for x in CASES])
async def test_rotate(case: Case) -> None:
    fake = FakeRefresher(case.outcome, case.retire)
    spec = tenant_spec(case.strategy)
    secret = snapshot(case.previous_in_secret)
    meta = {"namespace": NAMESPACE, "name": "acme"}
    label = "ok" if case.outcome.ok else case.outcome.step
    counted = _refreshes(label)
    inputs = await rotate(
        cast(Refresher, fake),
        meta=meta,
        spec=spec,
        snapshot=secret,
        token=CURRENT,
        check=case.check,
        status=stored_status(case.stored, case.token_valid),
        now=case.now,
        forced=case.forced,
    )
    assert inputs is not None
    assert [call[0] for call in fake.calls] == case.calls
    for call in fake.calls:
        assert call[1:] == (NAMESPACE, spec, secret, CURRENT)
    assert inputs.state == case.state
    assert inputs.strategy == case.strategy
    assert inputs.outcome == (case.outcome if "refresh" in case.calls else None)
    assert inputs.retired == case.retired
    assert _refreshes(label) == counted + (1 if "refresh" in case.calls else 0)


async def test_rotate_without_a_refresher_only_reports() -> None:
    inputs = await rotate(
        None,
        meta={"namespace": NAMESPACE},
        spec=tenant_spec(),
        snapshot=snapshot(previous=True),
        token=CURRENT,
        check=check(),
        status=stored_status(AFTER_REFRESH),
        now=RENEWAL + DAY,
        forced=True,
    )
    assert inputs == RotationInputs(
        "Refresh", None, TokenTimes(ISSUED, EXPIRES), AFTER_REFRESH, token_ok=True
    )


@pytest.mark.parametrize(
    ("token", "secret"),
    [
        pytest.param(None, snapshot(), id="no token"),
        pytest.param(CURRENT, None, id="no Secret"),
    ],
)
async def test_rotate_without_token_or_secret_gives_nothing(
    token: ResolvedToken | None, secret: SecretSnapshot | None
) -> None:
    fake = FakeRefresher(OK, RETIRED)
    inputs = await rotate(
        cast(Refresher, fake),
        meta={"namespace": NAMESPACE},
        spec=tenant_spec(),
        snapshot=secret,
        token=token,
        check=check(),
        status={},
        now=RENEWAL,
        forced=True,
    )
    assert inputs is None
    assert fake.calls == []


async def test_rotate_passes_renew_before_on() -> None:
    fake = FakeRefresher(OK, RETIRED)
    spec = tenant_spec(renewBefore="168h")
    args: dict[str, Any] = {
        "meta": {"namespace": NAMESPACE},
        "spec": spec,
        "snapshot": snapshot(),
        "token": CURRENT,
        "check": check(),
        "status": {},
    }
    early = await rotate(cast(Refresher, fake), now=RENEWAL + DAY, **args)
    assert early is not None
    assert early.renew_before == timedelta(days=7)
    assert early.renewal() == EXPIRES - timedelta(days=7)
    assert fake.calls == []
    await rotate(cast(Refresher, fake), now=EXPIRES - timedelta(days=7), **args)
    assert [call[0] for call in fake.calls] == ["refresh"]


@pytest.mark.parametrize(
    ("check_result", "stored_fp", "expected"),
    [
        pytest.param(None, CURRENT.fingerprint, TokenTimes(ISSUED, EXPIRES),
                     id="no check: the stored times of this token"),
        pytest.param(check(expires_at=EXPIRES + DAY), CURRENT.fingerprint,
                     TokenTimes(ISSUED, EXPIRES + DAY), id="a check: its times"),
        pytest.param(None, fingerprint(PREVIOUS), TokenTimes(None, None),
                     id="no check: never the stored times of another token"),
        pytest.param(CheckResult(unavailable("timed out"), unavailable("skipped")),
                     fingerprint(PREVIOUS), TokenTimes(None, None),
                     id="failed check: never the stored times of another token"),
    ],
)  # fmt: skip
async def test_rotate_token_times(
    check_result: CheckResult | None, stored_fp: str, expected: TokenTimes
) -> None:
    inputs = await rotate(
        cast(Refresher, FakeRefresher(OK, RETIRED)),
        meta={"namespace": NAMESPACE},
        spec=tenant_spec("External"),
        snapshot=snapshot(),
        token=CURRENT,
        check=check_result,
        status=stored_status(fp=stored_fp),
        now=T0,
    )
    assert inputs is not None
    assert inputs.times == expected


# --- api_version_condition ----------------------------------------------------------------


@dataclass(frozen=True)
class VersionCase:
    id: str
    version: str
    today: datetime
    status: str
    reason: str
    words: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()


VERSION_CASES = [
    VersionCase("v25.0 far from its end of life is current", "v25.0", T0, "True", "Current",
                ("v25.0", "end of life 2028-07-29")),
    VersionCase("v26.0 without an announced date is current", "v26.0", T0, "True", "Current",
                ("v26.0",), ("end of life",)),
    VersionCase("v27.0 newer than the table is current", "v27.0", T0, "True", "Current"),
    VersionCase("v21.0 within 90 days is deprecated", "v21.0", datetime(2026, 12, 1, tzinfo=UTC),
                "False", "ApiVersionDeprecated", ("2027-01-21", "newer version")),
    VersionCase("v21.0 late on its last day is deprecated", "v21.0",
                datetime(2027, 1, 21, 23, 59, 59, tzinfo=UTC), "False", "ApiVersionDeprecated"),
    VersionCase("v21.0 the day after is expired", "v21.0", datetime(2027, 1, 22, tzinfo=UTC),
                "False", "ApiVersionExpired", ("2027-01-21", "spec.graphApiVersion")),
    VersionCase("v20.0 past its end of life is expired", "v20.0", datetime(2026, 10, 1, tzinfo=UTC),
                "False", "ApiVersionExpired", ("past its end of life",)),
    VersionCase("v17.0 older than the table is expired", "v17.0", T0, "False",
                "ApiVersionExpired", ("v17.0",), ("(end of life",)),
    VersionCase("garbage is unknown", "latest", T0, "Unknown", "ApiVersionUnknown",
                ("latest", "not known")),
]  # fmt: skip


@pytest.mark.parametrize("case", [pytest.param(x, id=x.id) for x in VERSION_CASES])
def test_api_version_condition(case: VersionCase) -> None:
    cond = api_version_condition(case.version, case.today)
    assert cond.type == c.API_VERSION
    assert (cond.status, cond.reason) == (case.status, case.reason)
    for word in case.words:
        assert word in cond.message
    for word in case.absent:
        assert word not in cond.message


def test_current_reason_is_the_named_constant() -> None:
    assert api_version_condition("v25.0", T0).reason == Reason.API_VERSION_CURRENT


@pytest.mark.parametrize(
    ("meta", "requested"),
    [
        pytest.param({}, False, id="no annotations"),
        pytest.param({"annotations": None}, False, id="annotations null"),
        pytest.param({"annotations": {"other": "x"}}, False, id="another annotation"),
        pytest.param({"annotations": {REVALIDATE_ANNOTATION: ""}}, False, id="revalidate only"),
        pytest.param({"annotations": {REFRESH_ANNOTATION: ""}}, True, id="refresh, empty value"),
        pytest.param({"annotations": {REFRESH_ANNOTATION: "now"}}, True, id="refresh, a value"),
    ],
)
def test_refresh_requested(meta: dict[str, Any], requested: bool) -> None:
    assert refresh_requested(meta) is requested
