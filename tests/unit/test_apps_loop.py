"""One WhatsAppApp's passes (apps/loop.py) against fake Kubernetes and Graph doors: Meta is
asked only when due, the status is written only when it changes, Events only on transitions,
and the index (what tenants read) follows. Plus the kopf registration of the apps."""

from __future__ import annotations

import base64
import inspect
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf

from whatsapp_graph.errors import GraphApiError, GraphApiErrorInfo
from whatsapp_operator.apps import handlers
from whatsapp_operator.apps.index import AppIndex
from whatsapp_operator.apps.loop import AppLoop, AppServices
from whatsapp_operator.meta.budget import RequestBudget
from whatsapp_operator.model.fragment import Event
from whatsapp_operator.runtime.kube import SecretSnapshot

APP_ID = "424242424242"
SECRET = "0123456789abcdef0123456789abcdef"
VERIFY = "verify-me"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class FakeKube:
    def __init__(self) -> None:
        self.data: dict[str, str] | None = {"appSecret": b64(SECRET), "verifyToken": b64(VERIFY)}
        self.patches: list[dict[str, Any]] = []
        self.rv = 10

    async def read_secret(self, namespace: str, name: str) -> SecretSnapshot | None:
        assert namespace == "ops"
        return None if self.data is None else SecretSnapshot(dict(self.data), "1", {}, name)

    async def patch_cluster_status(self, plural: str, name: str, patch: dict[str, Any]) -> str:
        assert (plural, name) == ("whatsappapps", "hooks")
        self.patches.append(patch)
        self.rv += 1
        return str(self.rv)


class FakeGraph:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None]] = []
        self.refuse = False

    async def app(self, app_id: str, app_secret: str, *, version: str | None = None) -> Any:
        self.calls.append((app_id, app_secret, version))
        if self.refuse or app_secret != SECRET:
            info = GraphApiErrorInfo(190, None, "OAuthException", "bad signature", None, None, 400)
            raise GraphApiError(info)
        return {"id": app_id, "name": "Acme Hooks"}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 9, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def setup() -> tuple[AppLoop, FakeKube, FakeGraph, Clock, list[Event], AppIndex]:
    kube, graph, clock, events = FakeKube(), FakeGraph(), Clock(), []
    index = AppIndex(None, "ops")
    services = AppServices(
        kube=kube, graph=graph, budget=RequestBudget(1000.0, 100), clock=clock,  # type: ignore[arg-type]
        post_event=lambda body, event: events.append(event), grace=timedelta(minutes=15),
        index=index, default_version="v25.0",
    )  # fmt: skip
    body: dict[str, Any] = {
        "metadata": {"name": "hooks", "uid": "uid-1", "generation": 1, "resourceVersion": "5"},
        "spec": {"appId": APP_ID, "appSecretRef": {"name": "meta-app"},
                 "verifyTokenRef": {"name": "meta-app"}, "namespaceSelector": {}},
    }  # fmt: skip
    return AppLoop(services, body, "hooks"), kube, graph, clock, events, index


async def test_a_pass_verifies_once_and_then_only_hourly() -> None:
    loop, kube, graph, clock, events, index = setup()
    delay = await loop.step()
    assert graph.calls == [(APP_ID, SECRET, "v25.0")]
    assert 3500 < delay <= 3600
    assert [(e.type, e.reason) for e in events] == [("Normal", "Ready")]
    assert len(kube.patches) == 1
    app = index.get("hooks")
    assert app is not None
    assert app.usable
    assert app.verify_token == VERIFY
    await loop.step()  # nothing changed, nothing due
    assert len(graph.calls) == 1
    assert len(kube.patches) == 1
    assert len(events) == 1
    clock.now += timedelta(hours=1)
    await loop.step()
    assert len(graph.calls) == 2  # asked again, hourly; the same verdict
    assert len(events) == 1


async def test_a_new_secret_is_checked_at_once_and_a_refusal_withdraws_the_app() -> None:
    loop, kube, graph, _, events, index = setup()
    await loop.step()
    assert kube.data is not None
    kube.data["appSecret"] = b64("not-the-secret")
    await loop.step()
    assert len(graph.calls) == 2
    assert events[-1].reason == "AppSecretInvalid"
    app = index.get("hooks")
    assert app is not None
    assert not app.usable
    for text in (repr(kube.patches), repr(events)):
        assert "not-the-secret" not in text
        assert SECRET not in text


async def test_a_missing_secret_asks_meta_nothing() -> None:
    loop, kube, graph, _, events, _ = setup()
    kube.data = None
    delay = await loop.step()
    assert graph.calls == []
    assert events[-1].reason == "SecretNotFound"
    assert delay == 3600.0  # the Secret watch wakes it when the Secret comes


def test_the_app_handlers_are_registered_and_async() -> None:
    registry = kopf.get_default_registry()
    found = {
        str(h.id): h
        for part in ("_indexing", "_watching", "_spawning")
        for h in getattr(registry, part).get_all_handlers()
    }
    for name in ("app_daemon", "app_changed", "whatsapp_apps", "namespace_labels",
                 "namespace_changed"):  # fmt: skip
        assert name in found, name
        assert inspect.iscoroutinefunction(found[name].fn)  # type: ignore[attr-defined]
    assert handlers.APPS[2] == "whatsappapps"
