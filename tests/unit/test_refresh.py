"""The staged token refresh and the retirement of the previous token
(operator/whatsapp_operator/tokens/refresh.py): a fake Kube, the real GraphClient over
httpx.MockTransport emulating Meta, and a budget that never waits."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest

from whatsapp_graph.client import GraphClient
from whatsapp_operator.meta.budget import RequestBudget
from whatsapp_operator.model.secret_data import ResolvedToken, fingerprint
from whatsapp_operator.model.spec import TenantSpec
from whatsapp_operator.runtime.kube import (
    Kube,
    KubeConflict,
    KubeError,
    KubeForbidden,
    KubeUnavailable,
    SecretSnapshot,
)
from whatsapp_operator.runtime.logs import REDACTOR
from whatsapp_operator.tokens.refresh import PREVIOUS_KEY, Refresher, RefreshError
from whatsapp_operator.tokens.rotation import RefreshOutcome

OLD = "EAAGrefreshOLDtoken0123456789abcdefghijKLMN"
NEW = "EAAGrefreshNEWtoken9876543210zyxwvutsrqPONM"
APP_ID = "424242424242"
APP_SECRET = "refreshappsecret0123456789abcdef"
SECRETS = (OLD, NEW, APP_SECRET)
WABA = "102290129340398"
PHONE = "106540352242922"
VERSION = "v23.0"
NAMESPACE = "shop"
T0 = datetime(2026, 9, 1, 12, 0, 0, tzinfo=UTC)
RV = "rv-7"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def tenant_spec(**rotation: Any) -> TenantSpec:
    return TenantSpec.model_validate(
        {
            "tenantId": "acme",
            "wabaId": WABA,
            "phoneNumberId": PHONE,
            "graphApiVersion": VERSION,
            "tokenSecretRef": {"name": "acme-meta", "key": "token"},
            "rotation": {"strategy": "Refresh", "appCredentialsSecretRef": {"name": "meta-app"}}
            | rotation,
        }
    )


def token(value: str) -> ResolvedToken:
    return ResolvedToken(value, fingerprint(value))


def envelope(code: int, message: str, status: int = 400, subcode: int | None = None) -> Any:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = "AbCdEf"
    return lambda _request: httpx.Response(status, json={"error": error})


def debug_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "app_id": APP_ID,
        "type": "SYSTEM_USER",
        "application": "Acme",
        "is_valid": True,
        "issued_at": int(T0.timestamp()),
        "expires_at": int((T0 + timedelta(days=60)).timestamp()),
        "data_access_expires_at": 0,
        "scopes": [
            "business_management",
            "whatsapp_business_management",
            "whatsapp_business_messaging",
        ],
        "granular_scopes": [
            {"scope": "whatsapp_business_management", "target_ids": [WABA]},
            {"scope": "whatsapp_business_messaging", "target_ids": [WABA]},
        ],
    }
    return data | changes


Answer = Callable[[httpx.Request], httpx.Response]


def answer(body: Any, status: int = 200) -> Answer:
    return lambda _request: httpx.Response(status, json=body)


class FakeMeta:
    """Meta's Graph API as far as refresh and revoke use it; `answers` overrides a route."""

    def __init__(self, **answers: Answer) -> None:
        self.answers = answers
        self.requests: list[tuple[str, httpx.Request]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        _, version, rest = request.url.path.split("/", 2)
        route = {
            "oauth/access_token": "exchange",
            "debug_token": "debug_token",
            PHONE: "phone",
            "oauth/revoke": "revoke",
        }[rest]
        self.requests.append((route, request))
        assert version == VERSION
        if route in self.answers:
            return self.answers[route](request)
        return getattr(self, route)(request)

    @property
    def routes(self) -> list[str]:
        return [route for route, _ in self.requests]

    def request(self, route: str) -> httpx.Request:
        (found,) = [r for name, r in self.requests if name == route]
        return found

    @staticmethod
    def exchange(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        if (params["client_id"], params["client_secret"]) != (APP_ID, APP_SECRET):
            return envelope(101, "Error validating application")(request)
        if params["fb_exchange_token"] != OLD:
            return envelope(190, "Invalid OAuth access token")(request)
        return httpx.Response(
            200, json={"access_token": NEW, "token_type": "bearer", "expires_in": 5183944}
        )

    @staticmethod
    def debug_token(request: httpx.Request) -> httpx.Response:
        assert request.url.params["input_token"] == NEW
        assert request.headers["authorization"] == f"Bearer {NEW}"
        return httpx.Response(200, json={"data": debug_data()})

    @staticmethod
    def phone(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {NEW}"
        return httpx.Response(200, json={"id": PHONE})

    @staticmethod
    def revoke(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"success": True})


APP_DATA = {"appId": b64(APP_ID), "appSecret": b64(APP_SECRET)}


class FakeKube:
    """read_secret from a dict; patch_secret records, or raises `patch_error`."""

    def __init__(
        self,
        app_data: dict[str, str] | None = None,
        *,
        read_error: KubeError | None = None,
        patch_error: KubeError | None = None,
    ) -> None:
        self.secrets = {} if app_data is None else {"meta-app": SecretSnapshot(app_data, "1", {})}
        self.read_error = read_error
        self.patch_error = patch_error
        self.attempts = 0
        self.patches: list[tuple[str, str, dict[str, Any], str | None]] = []

    async def read_secret(self, namespace: str, name: str) -> SecretSnapshot | None:
        assert namespace == NAMESPACE
        if self.read_error is not None:
            raise self.read_error
        return self.secrets.get(name)

    async def patch_secret(
        self, namespace: str, name: str, patch: dict[str, Any], resource_version: str | None
    ) -> None:
        self.attempts += 1
        if self.patch_error is not None:
            raise self.patch_error
        self.patches.append((namespace, name, patch, resource_version))


@dataclass
class World:
    meta: FakeMeta
    kube: FakeKube
    refresher: Refresher
    budget: RequestBudget


@pytest.fixture
async def make_world() -> AsyncIterator[Callable[..., World]]:
    clients: list[httpx.AsyncClient] = []

    def make(meta: FakeMeta | None = None, kube: FakeKube | None = None) -> World:
        meta = meta or FakeMeta()
        kube = kube or FakeKube(APP_DATA)
        http = httpx.AsyncClient(transport=httpx.MockTransport(meta))
        clients.append(http)
        graph = GraphClient(http, base_url="https://graph.test", version="v25.0")
        budget = RequestBudget(1000, 1000)
        refresher = Refresher(cast(Kube, kube), graph, budget, clock=lambda: T0)
        return World(meta, kube, refresher, budget)

    yield make
    for http in clients:
        await http.aclose()


def assert_no_secret_in(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text
            assert b64(secret) not in text


def tenant_secret(*, previous: str | None = None) -> SecretSnapshot:
    data = {"token": b64(OLD if previous is None else NEW)}
    if previous is not None:
        data[PREVIOUS_KEY] = b64(previous)
    return SecretSnapshot(data, RV, {})


# --- refresh: success ---------------------------------------------------------------------


async def test_refresh_writes_the_new_token_and_keeps_the_old_one(
    make_world: Callable[..., World],
) -> None:
    world = make_world()
    outcome = await world.refresher.refresh(NAMESPACE, tenant_spec(), tenant_secret(), token(OLD))
    assert outcome == RefreshOutcome(
        True, "done", f"token refreshed ({fingerprint(NEW)})", T0, fingerprint(OLD)
    )
    assert world.kube.patches == [
        (NAMESPACE, "acme-meta", {"data": {"token": b64(NEW), PREVIOUS_KEY: b64(OLD)}}, RV)
    ]
    assert world.meta.routes == ["exchange", "debug_token", "phone"]
    exchange = world.meta.request("exchange").url.params
    assert dict(exchange) == {
        "grant_type": "fb_exchange_token",
        "client_id": APP_ID,
        "client_secret": APP_SECRET,
        "set_token_expires_in_60_days": "true",
        "fb_exchange_token": OLD,
    }
    assert world.meta.request("phone").url.params["fields"] == "id"
    assert world.budget.granted == 3
    assert_no_secret_in(str(outcome), repr(outcome), outcome.message)
    assert REDACTOR.scrub(f"a {APP_SECRET} b {NEW}") == "a [REDACTED] b [REDACTED]"


async def test_refresh_reads_the_app_credentials_under_their_configured_keys(
    make_world: Callable[..., World],
) -> None:
    world = make_world(kube=FakeKube({"id": b64(APP_ID), "secret": b64(APP_SECRET + "\n")}))
    spec = tenant_spec(
        appCredentialsSecretRef={"name": "meta-app", "appIdKey": "id", "appSecretKey": "secret"}
    )
    outcome = await world.refresher.refresh(NAMESPACE, spec, tenant_secret(), token(OLD))
    assert outcome.ok, outcome.message
    assert world.meta.request("exchange").url.params["client_secret"] == APP_SECRET


# --- refresh: each failing stage leaves the Secret alone ----------------------------------


@dataclass
class FailCase:
    id: str
    step: str
    words: tuple[str, ...]
    routes: list[str]
    meta: Callable[[], FakeMeta] = FakeMeta
    kube: Callable[[], FakeKube] = lambda: FakeKube(APP_DATA)
    rotation: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0  # patch attempts (all failed)


FAIL_CASES = [
    FailCase("app credentials: spec names no Secret", "app credentials",
             ("appCredentialsSecretRef",), [], rotation={"appCredentialsSecretRef": None}),
    FailCase("app credentials: Secret missing", "app credentials", ("'meta-app' not found",), [],
             kube=lambda: FakeKube(None)),
    FailCase("app credentials: appSecret key missing", "app credentials", ("lacks",), [],
             kube=lambda: FakeKube({"appId": b64(APP_ID)})),
    FailCase("app credentials: appId key missing", "app credentials", ("lacks",), [],
             kube=lambda: FakeKube({"appSecret": b64(APP_SECRET)})),
    FailCase("app credentials: appSecret not base64", "app credentials", ("lacks",), [],
             kube=lambda: FakeKube({"appId": b64(APP_ID), "appSecret": "!!not base64!!"})),
    FailCase("app credentials: Secret unreadable (403)", "app credentials", ("HTTP 403",), [],
             kube=lambda: FakeKube(APP_DATA, read_error=KubeForbidden(
                 "reading Secret shop/meta-app: HTTP 403 Forbidden"))),
    FailCase("app credentials: API server unavailable", "app credentials", ("HTTP 503",), [],
             kube=lambda: FakeKube(APP_DATA, read_error=KubeUnavailable(
                 "reading Secret shop/meta-app: HTTP 503"))),
    FailCase("exchange: Meta error 190 (echoing the token and the app secret)", "exchange",
             ("190", "[REDACTED]"), ["exchange"],
             meta=lambda: FakeMeta(exchange=envelope(
                 190, f"Error validating access token {OLD} for client_secret={APP_SECRET}",
                 subcode=463))),
    FailCase("exchange: HTTP 500", "exchange", ("500",), ["exchange"],
             meta=lambda: FakeMeta(exchange=answer("oops", 500))),
    FailCase("exchange: Meta returns the same token", "exchange", ("same token",), ["exchange"],
             meta=lambda: FakeMeta(exchange=answer({"access_token": OLD}))),
    FailCase("exchange: answer without access_token", "exchange", ("no access_token",),
             ["exchange"], meta=lambda: FakeMeta(exchange=answer({"token_type": "bearer"}))),
    FailCase("exchange: wrong app credentials", "exchange", ("101",), ["exchange"],
             kube=lambda: FakeKube({"appId": b64("1"), "appSecret": b64(APP_SECRET)})),
    FailCase("verify: the new token lacks a scope", "verify", ("whatsapp_business_messaging",),
             ["exchange", "debug_token"],
             meta=lambda: FakeMeta(debug_token=answer({"data": debug_data(
                 scopes=["whatsapp_business_management"])}))),
    FailCase("verify: the new token does not cover the WABA", "verify", ("not usable",),
             ["exchange", "debug_token"],
             meta=lambda: FakeMeta(debug_token=answer({"data": debug_data(granular_scopes=[
                 {"scope": "whatsapp_business_management", "target_ids": ["999"]}])}))),
    FailCase("verify: Meta says the new token is invalid", "verify", ("not usable",),
             ["exchange", "debug_token"],
             meta=lambda: FakeMeta(debug_token=answer({"data": debug_data(is_valid=False)}))),
    FailCase("verify: the new token is already expired", "verify", ("expired",),
             ["exchange", "debug_token"],
             meta=lambda: FakeMeta(debug_token=answer({"data": debug_data(
                 expires_at=int(T0.timestamp()) - 1)}))),
    FailCase("verify: debug_token fails (echoing the new token)", "verify", ("190",),
             ["exchange", "debug_token"],
             meta=lambda: FakeMeta(debug_token=envelope(190, f"bad token {NEW}"))),
    FailCase("verify: debug_token HTTP 503", "verify", ("503",), ["exchange", "debug_token"],
             meta=lambda: FakeMeta(debug_token=answer(None, 503))),
    FailCase("verify: the phone GET fails", "verify", ("100",),
             ["exchange", "debug_token", "phone"],
             meta=lambda: FakeMeta(phone=envelope(
                 100, "Unsupported get request. Object does not exist"))),
    FailCase("verify: the phone GET is denied", "verify", ("200",),
             ["exchange", "debug_token", "phone"],
             meta=lambda: FakeMeta(phone=envelope(200, "Permissions error", status=403))),
    FailCase("write: the Secret changed meanwhile (conflict)", "write", ("changed meanwhile",),
             ["exchange", "debug_token", "phone"], attempts=1,
             kube=lambda: FakeKube(APP_DATA, patch_error=KubeConflict(
                 "updating Secret shop/acme-meta: HTTP 409 Conflict"))),
    FailCase("write: forbidden", "write", ("HTTP 403",), ["exchange", "debug_token", "phone"],
             attempts=1, kube=lambda: FakeKube(APP_DATA, patch_error=KubeForbidden(
                 "updating Secret shop/acme-meta: HTTP 403 Forbidden"))),
]  # fmt: skip


@pytest.mark.parametrize("case", [pytest.param(x, id=x.id) for x in FAIL_CASES])
async def test_refresh_failure_leaves_the_secret_alone(
    case: FailCase, make_world: Callable[..., World]
) -> None:
    world = make_world(meta=case.meta(), kube=case.kube())
    spec = tenant_spec(**case.rotation)
    outcome = await world.refresher.refresh(NAMESPACE, spec, tenant_secret(), token(OLD))
    assert not outcome.ok
    assert outcome.step == case.step
    assert outcome.at == T0
    assert outcome.previous_fingerprint is None
    assert outcome.message.startswith(f"{case.step}: ")
    for word in case.words:
        assert word in outcome.message
    assert world.kube.patches == []
    assert world.kube.attempts == case.attempts
    assert world.meta.routes == case.routes
    assert_no_secret_in(str(outcome), repr(outcome), outcome.message)


# --- retire_previous ----------------------------------------------------------------------

DROP = (NAMESPACE, "acme-meta", {"data": {PREVIOUS_KEY: None}}, RV)


@dataclass
class RetireCase:
    id: str
    routes: list[str]
    patches: list[tuple[str, str, dict[str, Any], str | None]]
    revoke: bool = False
    previous: str | None = OLD  # previousAccessToken in the Secret (None: absent)
    meta: Callable[[], FakeMeta] = FakeMeta
    kube: Callable[[], FakeKube] = lambda: FakeKube(APP_DATA)
    error_step: str | None = None
    words: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()


RETIRE_CASES = [
    RetireCase("without revokePrevious: drops the key only", [], [DROP],
               words=(fingerprint(OLD), "removed"), absent=("revoked",)),
    RetireCase("without revokePrevious: needs no app credentials", [], [DROP],
               kube=lambda: FakeKube(None)),
    RetireCase("with revokePrevious: revokes at Meta, then drops the key", ["revoke"], [DROP],
               revoke=True, words=(fingerprint(OLD), "revoked at Meta")),
    RetireCase("revoke failure (190) raises and keeps the key", ["revoke"], [], revoke=True,
               meta=lambda: FakeMeta(revoke=envelope(
                   190, f"cannot revoke {OLD} with {NEW} for {APP_SECRET}")),
               error_step="revoke", words=("190",)),
    RetireCase("revoke HTTP 500 raises and keeps the key", ["revoke"], [], revoke=True,
               meta=lambda: FakeMeta(revoke=answer({}, 500)), error_step="revoke",
               words=("500",)),
    RetireCase("revoke without app credentials raises and keeps the key", [], [], revoke=True,
               kube=lambda: FakeKube(None), error_step="app credentials"),
    RetireCase("key already gone: nothing to revoke or patch", [], [], revoke=True,
               previous=None),
    RetireCase("previous equal to the current token is not revoked", [], [DROP], revoke=True,
               previous=NEW, absent=("revoked",)),
    RetireCase("dropping the key conflicts: raises", [], [], error_step="retire",
               kube=lambda: FakeKube(APP_DATA, patch_error=KubeConflict(
                   "updating Secret shop/acme-meta: HTTP 409 Conflict")),
               words=("409",)),
]  # fmt: skip


@pytest.mark.parametrize("case", [pytest.param(x, id=x.id) for x in RETIRE_CASES])
async def test_retire_previous(case: RetireCase, make_world: Callable[..., World]) -> None:
    world = make_world(meta=case.meta(), kube=case.kube())
    spec = tenant_spec(revokePrevious=case.revoke)
    secret = tenant_secret(previous=case.previous)
    if case.previous is None:
        secret = SecretSnapshot({"token": b64(NEW)}, RV, {})
    text = ""
    if case.error_step is None:
        text = await world.refresher.retire_previous(NAMESPACE, spec, secret, token(NEW))
    else:
        with pytest.raises(RefreshError) as caught:
            await world.refresher.retire_previous(NAMESPACE, spec, secret, token(NEW))
        assert caught.value.step == case.error_step
        text = str(caught.value)
        assert_no_secret_in(repr(caught.value))
    assert world.meta.routes == case.routes
    assert world.kube.patches == case.patches
    for word in case.words:
        assert word in text
    for word in case.absent:
        assert word not in text
    assert_no_secret_in(text)


async def test_revoke_names_the_old_token_and_calls_as_the_current_one(
    make_world: Callable[..., World],
) -> None:
    world = make_world()
    await world.refresher.retire_previous(
        NAMESPACE, tenant_spec(revokePrevious=True), tenant_secret(previous=OLD), token(NEW)
    )
    request = world.meta.request("revoke")
    assert request.url.path == f"/{VERSION}/oauth/revoke"
    assert dict(request.url.params) == {
        "client_id": APP_ID,
        "client_secret": APP_SECRET,
        "revoke_token": OLD,
        "access_token": NEW,
    }
    assert world.budget.granted == 1


def test_refresh_error_text_is_step_and_message() -> None:
    exc = RefreshError("exchange", "Graph API error 190")
    assert (exc.step, str(exc)) == ("exchange", "exchange: Graph API error 190")
