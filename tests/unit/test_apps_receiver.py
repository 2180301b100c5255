"""The webhook receiver's config as the operator publishes it (apps/receiver.py): what it
lists, when it is written, and what a restarted or standby operator does."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from whatsapp_contract.webhook import (
    CONFIG_KEY,
    CONFIG_SECRET,
    AppEntry,
    NumberEntry,
    dump_receiver_config,
    parse_receiver_config,
)
from whatsapp_operator.apps import receiver as receiver_module
from whatsapp_operator.apps.receiver import (
    HASH_ANNOTATION,
    ReceiverPublisher,
    build_receiver_config,
)
from whatsapp_operator.runtime.kube import SecretSnapshot


def app(app_id: str, name: str) -> AppEntry:
    return AppEntry.model_validate(
        {"app_id": app_id, "name": name, "app_secret": f"secret-{app_id}",
         "verify_token": f"verify-{app_id}"},
        strict=False,
    )  # fmt: skip


def number(phone: str, app_id: str, name: str = "acme", namespace: str = "shop") -> NumberEntry:
    return NumberEntry(
        phone_number_id=phone, waba_id="200", display_phone_number="+1 555", tenant_id=f"t_{name}",
        namespace=namespace, name=name, pool="default", app_id=app_id,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("apps", "numbers", "app_ids", "phones"),
    [
        pytest.param([app("1", "a")], [number("31", "1")], ["1"], ["31"], id="one app, one number"),
        pytest.param([], [number("31", "1")], [], [], id="a number of an app not Ready: left out"),
        pytest.param(
            [app("1", "b"), app("1", "a")], [], ["1"], [], id="two apps, one id: the first by name"
        ),
        pytest.param(
            [app("1", "a")], [number("31", "1", "zed"), number("31", "1", "abe")], ["1"], ["31"],
            id="one phone claimed twice: listed once",
        ),
        pytest.param(
            [app("2", "b"), app("1", "a")], [number("32", "2", "x"), number("31", "1", "y")],
            ["1", "2"], ["31", "32"], id="sorted, two apps",
        ),
    ],
)  # fmt: skip
def test_build_receiver_config(
    apps: list[AppEntry], numbers: list[NumberEntry], app_ids: list[str], phones: list[str]
) -> None:
    config = build_receiver_config(apps, numbers)
    assert [a.app_id for a in config.apps] == app_ids
    assert [n.phone_number_id for n in config.numbers] == phones
    if len(numbers) == 2 and phones == ["31"]:
        assert config.numbers[0].name == "abe"  # the first by namespace and name
    parse_receiver_config(dump_receiver_config(config))  # the receiver can read it


class FakeKube:
    def __init__(self, existing: bytes | None = None) -> None:
        self.secrets: dict[str, dict[str, Any]] = {}
        self.writes: list[bytes] = []
        if existing is not None:
            self.secrets[CONFIG_SECRET] = {
                "metadata": {"annotations": {HASH_ANNOTATION: "sha256:old"}},
                "data": {CONFIG_KEY: base64.b64encode(existing).decode()},
            }

    async def read_secret(self, namespace: str, name: str) -> SecretSnapshot | None:
        body = self.secrets.get(name)
        if body is None:
            return None
        annotations = dict(body["metadata"].get("annotations") or {})
        return SecretSnapshot(dict(body["data"]), "1", annotations, name)

    async def create_secret(self, namespace: str, body: dict[str, Any]) -> bool:
        if body["metadata"]["name"] in self.secrets:
            return False
        self._store(body)
        return True

    async def patch_secret(
        self, namespace: str, name: str, patch: dict[str, Any], rv: str | None
    ) -> None:
        self._store({"metadata": {**patch["metadata"], "name": name}, "data": patch["data"]})

    def _store(self, body: dict[str, Any]) -> None:
        self.secrets[body["metadata"]["name"]] = body
        self.writes.append(base64.b64decode(body["data"][CONFIG_KEY]))

    def config(self) -> Any:
        return parse_receiver_config(self.writes[-1])


async def test_written_once_per_content_change() -> None:
    kube = FakeKube()
    publisher = ReceiverPublisher(kube, "ops")  # type: ignore[arg-type]
    assert await publisher.publish()  # nothing reported yet: an empty config, where none is
    assert not await publisher.publish()
    publisher.set_app("hooks", app("1", "hooks"))
    publisher.set_number(("shop", "acme"), number("31", "1"))
    assert await publisher.publish()
    assert not await publisher.publish()  # the same content: no write
    publisher.set_number(("shop", "acme"), number("31", "1"))  # reported again, unchanged
    assert not await publisher.publish()
    publisher.set_number(("shop", "acme"), None)
    assert await publisher.publish()
    assert [len(parse_receiver_config(w).numbers) for w in kube.writes] == [0, 1, 0]
    secret = kube.secrets[CONFIG_SECRET]
    assert secret["metadata"]["annotations"][HASH_ANNOTATION].startswith("sha256:")
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "whatsapp-operator"


async def test_a_restart_adopts_what_is_published_and_drops_the_unknown_after_the_grace() -> None:
    before = build_receiver_config(
        [app("1", "hooks"), app("2", "gone")],
        [number("31", "1"), number("32", "1", "gone"), number("33", "1", "slow")],
    )
    kube = FakeKube(dump_receiver_config(before))
    now = [0.0]
    publisher = ReceiverPublisher(
        kube, "ops", clock=lambda: now[0], startup_grace=60,  # type: ignore[arg-type]
        known_tenants=lambda: {("shop", "acme"), ("shop", "slow")}, known_apps=lambda: {"hooks"},
    )  # fmt: skip
    await publisher.load()
    publisher.set_app("hooks", app("1", "hooks"))
    publisher.set_number(("shop", "acme"), number("31", "1"))  # the others have not reported
    await publisher.publish()
    assert [n.name for n in kube.config().numbers] == ["acme", "gone", "slow"]  # kept meanwhile
    now[0] = 61.0
    publisher._prune()
    await publisher.publish()
    # gone while the operator was away: dropped; known but its first pass still to come: kept
    assert [n.name for n in kube.config().numbers] == ["acme", "slow"]
    assert [a.name for a in kube.config().apps] == ["hooks"]


async def test_a_standby_that_reports_nothing_never_writes() -> None:
    before = build_receiver_config([app("1", "hooks")], [number("31", "1")])
    kube = FakeKube(dump_receiver_config(before))
    now = [0.0]
    publisher = ReceiverPublisher(kube, "ops", clock=lambda: now[0], startup_grace=1)  # type: ignore[arg-type]
    await publisher.load()
    now[0] = 100.0
    publisher._prune()
    assert not await publisher.publish()
    assert kube.writes == []


async def test_the_background_task_debounces_a_burst(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(receiver_module, "MIN_INTERVAL", 0.0)
    kube = FakeKube()
    publisher = ReceiverPublisher(kube, "ops", startup_grace=0)  # type: ignore[arg-type]
    task = asyncio.create_task(publisher.run())
    try:
        publisher.set_app("hooks", app("1", "hooks"))
        for i in range(50):
            publisher.set_number(("shop", f"t{i}"), number(str(100 + i), "1", f"t{i}"))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if kube.writes:
                break
        await asyncio.sleep(0.3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(kube.writes) == 1
    assert len(kube.config().numbers) == 50


async def test_an_empty_config_is_created_only_where_there_is_none() -> None:
    """A fresh install's receiver needs a config to turn ready; an existing one (another
    replica's, with numbers) is never replaced by an empty one."""
    kube = FakeKube()
    publisher = ReceiverPublisher(kube, "ops")  # type: ignore[arg-type]
    await publisher.load()
    assert await publisher.publish()
    assert kube.config() == build_receiver_config((), ())
    before = build_receiver_config([app("1", "hooks")], [number("31", "1")])
    kube = FakeKube(dump_receiver_config(before))
    standby = ReceiverPublisher(kube, "ops")  # type: ignore[arg-type]
    await standby.load()
    assert not await standby.publish()
    assert kube.writes == []
    racing = ReceiverPublisher(kube, "ops")  # type: ignore[arg-type]
    assert not await racing.publish()  # not loaded: its create finds one and leaves it
    assert kube.writes == []
