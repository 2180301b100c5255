"""A tenant's `spec.appRef` (apps/tenant_ref.py and the tenant pass): whether it may use the
WhatsAppApp, what its conditions and Ready say, and what the app gives it (proof, Refresh
credentials, Graph API version, the row's verify_token, the published config's
webhook_app_id, its number in the receiver's config)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from whatsapp_graph.client import appsecret_proof
from whatsapp_operator.apps.index import AppIndex
from whatsapp_operator.apps.selector import LabelSelector
from whatsapp_operator.apps.tenant_ref import (
    AppRefOutcome,
    ResolvedApp,
    judge_app_ref,
    number_entry,
    require_proof,
)
from whatsapp_operator.meta.app_proof import app_proof
from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.conditions import Reason
from whatsapp_operator.model.facts import CheckResult, PhoneFacts, TokenFacts, Verdict
from whatsapp_operator.model.secret_data import resolve_token
from whatsapp_operator.model.spec import parse_spec
from whatsapp_operator.pools.publication import plan_publication
from whatsapp_operator.postgres.crypto import Keyring, TokenCipher
from whatsapp_operator.postgres.rows import (
    HASHED_COLUMNS,
    StoredRow,
    WriteKind,
    desired_row,
    plan_write,
    row_hash,
)
from whatsapp_operator.tenant.compose import Inputs, decide
from whatsapp_operator.tenant.gather import _resolve_app
from whatsapp_operator.tokens.refresh import Refresher

T0 = datetime(2026, 9, 1, 12, 0, 0, tzinfo=UTC)
TOKEN = "EAAGm0PX4ZCpsBAKZBappRefTOKEN1234567890"
APP_SECRET = "0123456789abcdef0123456789abcdef"
VERIFY = "hooks-verify-token-1"
APP = ResolvedApp(
    "hooks", "424242424242", True, "Ready", "verified", APP_SECRET, VERIFY,
    graph_api_version="v24.0", selector=LabelSelector.model_validate({"matchLabels": {"wa": "on"}}),
)  # fmt: skip
ALLOWED = {"wa": "on", "kubernetes.io/metadata.name": "shop"}


# --- may the tenant use the app? -------------------------------------------------------------
@dataclass
class RefCase:
    id: str
    app: ResolvedApp | None
    labels: dict[str, str] | None
    status: str
    reason: str
    message: str


REF_CASES = [
    RefCase("allowed and Ready", APP, ALLOWED, "True", "Resolved", "WhatsAppApp 'hooks'"),
    RefCase("no such app", None, ALLOWED, "False", Reason.APP_NOT_FOUND, "'hooks' not found"),
    RefCase("namespace without the label", APP, {"kubernetes.io/metadata.name": "shop"},
            "False", Reason.APP_NOT_ALLOWED, "namespace 'shop' is not selected"),
    RefCase("namespace labels not known yet", APP, None, "False", Reason.APP_NOT_ALLOWED,
            "labels are not known yet"),
    RefCase("app without a namespaceSelector allows nobody", replace(APP, selector=None), ALLOWED,
            "False", Reason.APP_NOT_ALLOWED, "no spec.namespaceSelector"),
    RefCase("empty selector allows every namespace", replace(APP, selector=LabelSelector()), {},
            "True", "Resolved", ""),
    RefCase("app not Ready", replace(APP, ready=False, reason="AppSecretInvalid",
                                     message="Meta refused"),
            ALLOWED, "False", Reason.APP_NOT_READY, "is not Ready (AppSecretInvalid)"),
    RefCase("allowed is checked before Ready", replace(APP, ready=False),
            {}, "False", Reason.APP_NOT_ALLOWED, "not selected"),
]  # fmt: skip


@pytest.mark.parametrize("case", REF_CASES, ids=lambda c: c.id)
def test_judge_app_ref(case: RefCase) -> None:
    outcome = judge_app_ref("hooks", case.app, "shop", case.labels)
    assert (outcome.verdict.status, outcome.verdict.reason) == (case.status, case.reason)
    assert case.message in outcome.verdict.message
    assert outcome.usable is (case.status == "True")
    assert APP_SECRET not in repr(outcome)
    assert VERIFY not in repr(outcome)


@pytest.mark.parametrize(
    ("require", "token", "proof", "reason"),
    [
        pytest.param(True, True, False, Reason.APP_SECRET_PROOF_REQUIRED,
                     id="required, a token but no proof: refused"),
        pytest.param(True, True, True, "Resolved", id="required and present"),
        pytest.param(True, False, False, "Resolved", id="no token: SecretResolved says why"),
        pytest.param(False, True, False, "Resolved", id="not required"),
    ],
)  # fmt: skip
def test_require_proof(require: bool, token: bool, proof: bool, reason: str) -> None:
    outcome = judge_app_ref("hooks", replace(APP, require_proof=require), "shop", ALLOWED)
    assert require_proof(outcome, token, proof).verdict.reason == reason


# --- the gather step: the app, the namespace's labels, the version ---------------------------
class FakeIndex:
    def __init__(self, apps: dict[str, ResolvedApp], listed: tuple[str, ...] = ()) -> None:
        self.apps = apps
        self.listed = listed

    def get(self, name: str) -> ResolvedApp | None:
        return self.apps.get(name)

    def pending(self, name: str) -> bool:
        return name in self.listed and name not in self.apps


SPEC = {"tenantId": "t_1", "wabaId": "111", "phoneNumberId": "222",
        "tokenSecretRef": {"name": "tok"}, "appRef": {"name": "hooks"}}  # fmt: skip


def test_resolve_app_reads_the_namespace_index_and_takes_the_apps_version() -> None:
    spec, _ = parse_spec(SPEC)
    assert spec is not None
    rt = SimpleNamespace(apps=FakeIndex({"hooks": APP}), namespace_labels={"shop": [ALLOWED]})
    resolved, outcome = _resolve_app(rt, "shop", spec)  # type: ignore[arg-type]
    assert outcome is not None
    assert outcome.usable
    assert resolved.graph_api_version == "v24.0"
    own, _ = parse_spec({**SPEC, "graphApiVersion": "v25.0"})
    assert own is not None
    assert _resolve_app(rt, "shop", own)[0].graph_api_version == "v25.0"  # type: ignore[arg-type]
    elsewhere, outcome = _resolve_app(rt, "other", spec)  # type: ignore[arg-type]
    assert outcome is not None
    assert outcome.verdict.reason == Reason.APP_NOT_ALLOWED
    assert elsewhere.graph_api_version is None  # an app it may not use gives nothing
    plain, _ = parse_spec({k: v for k, v in SPEC.items() if k != "appRef"})
    assert plain is not None
    assert _resolve_app(rt, "shop", plain) == (plain, None)  # type: ignore[arg-type]


def test_the_proof_is_keyed_by_the_apps_secret() -> None:
    data = {"accessToken": base64.b64encode(TOKEN.encode()).decode()}
    outcome = app_proof(resolve_token(data, "tok", "accessToken"), "hooks", APP_SECRET)
    assert outcome.token is not None
    assert outcome.token.proof == appsecret_proof(TOKEN, APP_SECRET)
    assert "from WhatsAppApp 'hooks'" in outcome.message
    assert APP_SECRET not in outcome.message


async def test_refresh_takes_the_apps_credentials() -> None:
    refresher = Refresher(None, None, None, lambda: T0)  # type: ignore[arg-type]
    assert await refresher._app("shop", None, ("1", "s")) == ("1", "s")


# --- the decision: conditions and Ready --------------------------------------------------------
def secret() -> Any:
    data = {"accessToken": base64.b64encode(TOKEN.encode()).decode()}
    return resolve_token(data, "tok", "accessToken")


GOOD_CHECK = CheckResult(
    Verdict("True", Reason.TOKEN_VALID, "token valid"),
    Verdict("True", Reason.PHONE_NUMBER_VERIFIED, "phone verified"),
    TokenFacts(is_valid=True, type="SYSTEM_USER"),
    PhoneFacts(display_phone_number="+1 555"),
    checked_at=T0,
)


def inputs(app: Verdict | None, check: CheckResult | None = None, **more: Any) -> Inputs:
    return Inputs(generation=1, spec_error="", secret=secret(), conflict=None, check=check,
                  status=more.pop("status", {}), now=T0, app=app, **more)  # fmt: skip


def summary(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {x["type"]: (x["status"], x["reason"]) for x in status["conditions"]}


RESOLVED = judge_app_ref("hooks", APP, "shop", ALLOWED).verdict
NOT_ALLOWED = judge_app_ref("hooks", APP, "shop", {}).verdict


def test_a_usable_app_adds_app_resolved_in_its_place() -> None:
    decision = decide(inputs(RESOLVED, GOOD_CHECK))
    assert summary(decision.status)[c.READY] == ("True", Reason.READY)
    assert [x["type"] for x in decision.status["conditions"]][:4] == [
        c.SECRET_RESOLVED, c.APP_RESOLVED, c.TOKEN_VALID, c.PHONE_NUMBER_VERIFIED,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("verdict", "reason"),
    [
        pytest.param(NOT_ALLOWED, Reason.APP_NOT_ALLOWED, id="not allowed"),
        pytest.param(judge_app_ref("hooks", None, "shop", ALLOWED).verdict, Reason.APP_NOT_FOUND,
                     id="not found"),
        pytest.param(judge_app_ref("hooks", replace(APP, ready=False), "shop", ALLOWED).verdict,
                     Reason.APP_NOT_READY, id="not Ready"),
    ],
)  # fmt: skip
def test_an_unusable_app_makes_the_tenant_not_ready_and_unchecked(
    verdict: Verdict, reason: str
) -> None:
    ready_before = decide(inputs(RESOLVED, GOOD_CHECK)).status
    decision = decide(inputs(verdict, status=ready_before))
    conditions = summary(decision.status)
    assert conditions[c.READY] == ("False", reason)
    assert conditions[c.APP_RESOLVED] == ("False", reason)
    assert conditions[c.TOKEN_VALID] == ("Unknown", Reason.NOT_CHECKED)  # not carried over
    assert [(e.type, e.reason) for e in decision.events][:1] == [("Warning", reason)]


def test_app_resolved_goes_when_the_tenant_names_no_app_any_more() -> None:
    with_app = decide(inputs(RESOLVED, GOOD_CHECK)).status
    without = decide(inputs(None, GOOD_CHECK, status=with_app)).status
    assert c.APP_RESOLVED not in summary(without)
    assert summary(without)[c.READY] == ("True", Reason.READY)


# --- what the app gives the published config, the receiver and the row -------------------------
def test_the_published_config_names_the_webhook_app() -> None:
    spec, _ = parse_spec(SPEC)
    assert spec is not None
    token = secret().token
    plan: dict[str, Any] = {"blocked_code": None, "phone": None, "default_version": "v25.0"}
    config = plan_publication(spec, token, publishable=True, webhook_app_id="424242424242", **plan)
    assert config is not None
    assert config.webhook_app_id == "424242424242"
    plain = plan_publication(spec, token, publishable=True, **plan)
    assert plain is not None
    assert plain.webhook_app_id is None


def test_number_entry() -> None:
    entry = number_entry(app=APP, tenant_id="t_1", waba_id="111", phone_number_id="222",
                         namespace="shop", name="acme", pool="default",
                         phone=PhoneFacts(display_phone_number="+1 555"))  # fmt: skip
    assert (entry.app_id, entry.display_phone_number, entry.namespace) == (
        "424242424242", "+1 555", "shop",
    )  # fmt: skip


def row(verify: str | None = VERIFY) -> Any:
    spec, _ = parse_spec(SPEC)
    return desired_row(
        spec=spec, uid="u", namespace="shop", name="acme", generation=1, token=TOKEN,
        token_fingerprint="sha256:x", phone=None, ready=True, was_configured=False,
        verify_token=verify,
    )  # fmt: skip


def stored(verify: str | None) -> StoredRow:
    desired = row()
    values = {col: getattr(desired, col) for col in HASHED_COLUMNS if col != "access_token"}
    base = StoredRow(id=1, tenant_id="t_1", access_token="sealed", verify_token=verify, **values)
    return replace(base, row_hash=row_hash(base.values()))


@pytest.mark.parametrize(
    ("desired_verify", "stored_sealed", "stored_plain", "stale", "store", "kind", "columns"),
    [
        pytest.param(VERIFY, "enc:x", VERIFY, False, True, WriteKind.NOOP, (),
                     id="the same verify token: no write"),
        pytest.param(VERIFY, None, None, False, True, WriteKind.UPDATE, ("verify_token",),
                     id="empty column: filled"),
        pytest.param(VERIFY, "enc:x", "old", False, True, WriteKind.UPDATE, ("verify_token",),
                     id="another verify token: replaced"),
        pytest.param(VERIFY, "plain", VERIFY, True, True, WriteKind.UPDATE, ("verify_token",),
                     id="stored under an old key or mode: rewritten"),
        pytest.param(None, "legacy", "legacy", False, True, WriteKind.NOOP, (),
                     id="no app: a legacy value stays untouched"),
        pytest.param(VERIFY, "plain", VERIFY, True, False, WriteKind.UPDATE, ("verify_token",),
                     id="none mode: wiped"),
        pytest.param(VERIFY, None, None, False, False, WriteKind.NOOP, (),
                     id="none mode, empty: nothing to do"),
    ],
)  # fmt: skip
def test_plan_write_and_the_verify_token(
    desired_verify: str | None, stored_sealed: str | None, stored_plain: str | None,
    stale: bool, store: bool, kind: WriteKind, columns: tuple[str, ...],
) -> None:  # fmt: skip
    plan = plan_write(
        stored(stored_sealed), row(desired_verify), stored_token=TOKEN if store else None,
        store_token=store, adopt=False, stored_verify=stored_plain, verify_stale=stale,
    )  # fmt: skip
    if not store:  # the none mode also wipes the stored token: only look at verify_token
        assert ("verify_token" in plan.columns) is ("verify_token" in columns)
        return
    assert (plan.kind, plan.columns) == (kind, columns)


def test_the_row_hash_leaves_the_verify_token_out() -> None:
    assert "verify_token" not in HASHED_COLUMNS  # rows written before it existed stay undrifted
    assert VERIFY not in repr(row())


def test_a_sealed_verify_token_opens_only_as_itself() -> None:
    cipher = TokenCipher("encrypted", Keyring({"k1": b"k" * 32}))
    sealed = cipher.seal(VERIFY, "t_1", "verify_token")
    assert VERIFY not in sealed
    assert len(sealed) <= 255  # the seed's VARCHAR(255), for the longest verify token allowed
    assert len(cipher.seal("v" * 100, "t_1", "verify_token")) <= 255
    assert cipher.open(sealed, "t_1", "verify_token") == VERIFY
    assert cipher.open(sealed, "t_1") is None  # not as an access token
    assert cipher.open(sealed, "t_2", "verify_token") is None  # not in another tenant's row
    token = cipher.seal(TOKEN, "t_1")
    assert cipher.open(token, "t_1", "verify_token") is None
    assert cipher.open(token, "t_1") == TOKEN  # the access token's form is unchanged


def test_outcome_is_frozen_and_quiet() -> None:
    outcome = AppRefOutcome(RESOLVED, APP)
    assert APP_SECRET not in str(outcome)


def test_after_a_restart_a_tenant_waits_for_its_apps_first_pass() -> None:
    """The app exists (kopf's index lists it) but has not been filed yet: not AppNotFound."""
    spec, _ = parse_spec(SPEC)
    assert spec is not None
    rt = SimpleNamespace(apps=FakeIndex({}, listed=("hooks",)), namespace_labels={})
    _, outcome = _resolve_app(rt, "shop", spec)  # type: ignore[arg-type]
    assert outcome is not None
    assert outcome.pending
    assert not outcome.usable
    gone = SimpleNamespace(apps=FakeIndex({}), namespace_labels={})
    _, outcome = _resolve_app(gone, "shop", spec)  # type: ignore[arg-type]
    assert outcome is not None
    assert (outcome.pending, outcome.verdict.reason) == (False, Reason.APP_NOT_FOUND)


def test_the_index_knows_a_pending_app() -> None:
    index = AppIndex()
    index.listed = {"hooks": ["uid-1"]}
    assert index.pending("hooks")
    assert not index.pending("other")
    index.put("hooks", "uid-1", APP)
    assert not index.pending("hooks")
