"""Log lines with fields (plain and JSON), the rejection throttle, and the settings flags."""

from __future__ import annotations

import json
import logging

import pytest

from whatsapp_webhook.cli import load_settings
from whatsapp_webhook.logs import JsonFormatter, PlainFormatter, Throttle


def record(**fields: object) -> logging.LogRecord:
    rec = logging.LogRecord("whatsapp_webhook.ingress", logging.WARNING, __file__, 1,
                            "webhook rejected", None, None)  # fmt: skip
    rec.fields = fields
    return rec


def test_plain_lines_quote_what_needs_quoting() -> None:
    line = PlainFormatter("%(message)s").format(
        record(reason="unsigned", remote="", app="a b", evil="x\ny")
    )
    assert line == 'webhook rejected reason=unsigned remote="" app="a b" evil="x\\ny"'


def test_json_lines_carry_the_fields() -> None:
    body = json.loads(JsonFormatter().format(record(reason="too_large", status=413)))
    assert body["message"] == "webhook rejected"
    assert (body["reason"], body["status"], body["level"]) == ("too_large", 413, "WARNING")


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("events", "allowed"),
    [
        pytest.param([0.0] * 3, [(True, 0)] * 3, id="under the burst"),
        pytest.param([0.0] * 4, [(True, 0)] * 3 + [(False, 0)], id="over the burst: held"),
        pytest.param([0.0] * 5 + [10.0], [(True, 0)] * 3 + [(False, 0)] * 2 + [(True, 2)],
                     id="the next window reports what was held"),
    ],
)  # fmt: skip
def test_throttle(events: list[float], allowed: list[tuple[bool, int]]) -> None:
    clock = Clock()
    throttle = Throttle(burst=3, window=10.0, clock=clock)
    got = []
    for at in events:
        clock.now = at
        got.append(throttle.allow("reject:unsigned"))
    assert got == allowed
    assert throttle.allow("reject:other") == (True, 0)  # each key its own budget


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHATSAPP_WEBHOOK_LISTEN_PORT", "1234")
    monkeypatch.setenv("WHATSAPP_WEBHOOK_INGRESS_SHARDS", "8")
    monkeypatch.delenv("WHATSAPP_WEBHOOK_CONFIG", raising=False)  # restored after: flags set it
    settings = load_settings(["--listen-port", "8081", "--config", "/x/config.json"])
    assert (settings.listen_port, settings.ingress_shards) == (8081, 8)
    assert settings.config == "/x/config.json"
    assert settings.max_body_bytes == 3_000_000
    assert settings.metrics_port == 9090
    assert "guest" not in repr(settings)  # the URL's password
