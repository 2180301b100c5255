"""The mounted ReceiverConfig: indexed for routing, reloaded when kubelet swaps the file, the
last good config kept (and the problem counted) when the new file is bad, no secret in any
log line, error or repr."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from conftest import APP_A, APP_B, NUMBERS
from whatsapp_contract.webhook import CONFIG_KEY, ReceiverConfig, dump_receiver_config
from whatsapp_testkit.kubelet import KubeletVolume
from whatsapp_testkit.webhook import number, receiver_config
from whatsapp_webhook.config import ConfigStore, Index
from whatsapp_webhook.metrics import WebhookMetrics

SECRETS = (APP_A.secret, APP_B.secret, APP_A.verify_token, APP_B.verify_token)


def test_index_lookups(index: Index) -> None:
    assert set(index.apps) == {"1001", "1002"}
    assert index.numbers["2003"].app_id == "1002"
    assert [n.phone_number_id for n in index.wabas["3001"]] == ["2001", "2002"]
    assert [n.phone_number_id for n in index.displays[("3001", "15550101")]] == ["2002"]
    assert index.secrets["1001"] == APP_A.secret.encode()
    assert index.verify_tokens["1002"] == APP_B.verify_token.encode()
    assert not any(s in repr(index) for s in SECRETS)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def mount(tmp_path: Path) -> KubeletVolume:
    return KubeletVolume(tmp_path)


@pytest.fixture
def metrics() -> WebhookMetrics:
    return WebhookMetrics(CollectorRegistry())


@pytest.fixture
def store(mount: KubeletVolume, metrics: WebhookMetrics) -> ConfigStore:
    return ConfigStore(mount.target / CONFIG_KEY, metrics=metrics, clock=Clock())


def sample(metrics: WebhookMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def write(mount: KubeletVolume, config: ReceiverConfig | bytes) -> None:
    mount.write({CONFIG_KEY: config if isinstance(config, bytes) else dump_receiver_config(config)})


def test_nothing_mounted_yet_is_not_ready(store: ConfigStore, metrics: WebhookMetrics) -> None:
    assert store.check() is False
    assert store.index is None
    assert store.error is not None
    assert "cannot read" in store.error
    assert sample(metrics, "whatsapp_webhook_config_loaded") == 0
    assert sample(metrics, "whatsapp_webhook_config_failures_total", reason="unreadable") == 1


def test_loads_and_reloads_on_a_kubelet_swap(
    store: ConfigStore, mount: KubeletVolume, config: ReceiverConfig, metrics: WebhookMetrics
) -> None:
    write(mount, config)
    assert store.check() is True
    assert store.index is not None
    assert len(store.index.numbers) == 4
    assert store.check() is False  # unchanged: not read again
    more = receiver_config([APP_A, APP_B], [*NUMBERS, number("2005", "3001", "1001")])
    write(mount, more)
    assert store.check() is True
    assert "2005" in store.index.numbers
    assert sample(metrics, "whatsapp_webhook_config_numbers") == 5
    assert sample(metrics, "whatsapp_webhook_config_loaded") == 1


def test_same_bytes_written_again_are_not_a_reload(
    store: ConfigStore, mount: KubeletVolume, config: ReceiverConfig
) -> None:
    write(mount, config)
    assert store.check() is True
    loaded = store.index
    (mount.target / CONFIG_KEY).resolve().touch()  # another mtime, the same content
    assert store.check() is False
    assert store.index is loaded


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        pytest.param(b"{not json", "invalid", id="not JSON"),
        pytest.param(b'{"schema_version": 2}', "invalid", id="another schema"),
        pytest.param(
            dump_receiver_config(receiver_config([APP_A], NUMBERS[:1])).replace(
                b'"pool":"p1"', b'"pool":"' + APP_A.secret.encode() + b'!"'
            ),
            "invalid",
            id="a bad value next to the secrets",
        ),
        pytest.param(
            dump_receiver_config(receiver_config([APP_A], []))[:-1]
            + b',"numbers":[{"phone_number_id":"2001","waba_id":"3001","tenant_id":"t",'
            b'"namespace":"n","name":"n","pool":"p","app_id":"9999"}]}',
            "invalid",
            id="a number of an app not listed",
        ),
    ],
)
def test_a_bad_file_keeps_the_last_good_config(
    store: ConfigStore, mount: KubeletVolume, config: ReceiverConfig, metrics: WebhookMetrics,
    bad: bytes, reason: str, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    write(mount, config)
    store.check()
    good = store.index
    caplog.set_level(logging.INFO)
    write(mount, bad)
    assert store.check() is False
    assert store.index is good
    assert store.error is not None
    assert sample(metrics, "whatsapp_webhook_config_failures_total", reason=reason) == 1
    assert store.check() is False  # the same bad file: counted and logged once
    assert sample(metrics, "whatsapp_webhook_config_failures_total", reason=reason) == 1
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert not any(s in caplog.text or s in store.error for s in SECRETS)
    write(mount, config)  # fixed: loaded again, the error gone
    assert store.check() is True
    assert store.error is None


def test_the_file_is_hashed_again_after_a_while(
    store: ConfigStore, mount: KubeletVolume, config: ReceiverConfig
) -> None:
    write(mount, config)
    store.check()
    path = (mount.target / CONFIG_KEY).resolve()
    stat = path.stat()
    more = receiver_config([APP_A, APP_B], NUMBERS[:2])
    path.write_bytes(dump_receiver_config(more).ljust(stat.st_size)[: stat.st_size])
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # a write stat cannot see
    assert store.check() is False
    assert store.index is not None
    assert len(store.index.numbers) == 4
    store._clock.now += 61  # type: ignore[attr-defined]
    assert store.check() is True
    assert len(store.index.numbers) == 2
