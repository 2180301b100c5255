"""The worker's log lines (issue 20): `--log-format json` (or WHATSAPP_WORKER_LOG_FORMAT) makes
each line one JSON object with the operator's keys and the send's tenant id, message id, shard
and Meta code; no token reaches a line, through its message or its `extra=` fields; text
stays the default. The operator and the receiver take `text` as their `plain`."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from test_sender_holds import TOKEN, World

from whatsapp_contract.redaction import MARK, REDACTOR
from whatsapp_operator.cli import load_config
from whatsapp_webhook.settings import WebhookSettings
from whatsapp_worker import cli
from whatsapp_worker.logs import TEXT_FORMAT, JsonFormatter, WorkerHandler, setup_logging


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """setup_logging's handler writing here; the worker's handler and warnings put back."""
    out = io.StringIO()
    yield out
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, WorkerHandler)]
    logging.captureWarnings(False)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every line of the stream, each of which must be one JSON object."""
    found = []
    for line in stream.getvalue().splitlines():
        body = json.loads(line)
        assert isinstance(body, dict), line
        found.append(body)
    return found


def undeliverable(request: httpx.Request) -> httpx.Response:
    """Meta refuses the send for good (131026), echoing the token in its message."""
    return httpx.Response(
        400, json={"error": {"message": f"Message undeliverable ({TOKEN})", "code": 131026,
                             "type": "OAuthException", "fbtrace_id": "A"}},
    )  # fmt: skip


@pytest.mark.usefixtures("restore_logging")
async def test_a_dead_letter_line_is_one_json_object_with_the_sends_ids(
    stream: io.StringIO,
) -> None:
    setup_logging("INFO", "json", stream)
    REDACTOR.add(TOKEN)
    world = World(answer=undeliverable)
    await world.send(mid="order-7")
    (line,) = [body for body in lines(stream) if "dead-lettered" in body["message"]]
    assert line["tenant_id"] == "acme"
    assert line["message_id"] == "order-7-0"
    assert line["shard"] == 0
    assert line["meta_code"] == 131026
    assert line["reason"] == "permanent_error"
    assert (line["severity"], line["logger"]) == ("warn", "whatsapp_worker.settle")
    assert line["timestamp"].endswith("+00:00")
    assert TOKEN not in stream.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_secrets_in_extra_fields_and_exceptions_are_redacted(stream: io.StringIO) -> None:
    setup_logging("INFO", "json", stream)
    REDACTOR.add(TOKEN)
    log = logging.getLogger("whatsapp_worker.test")
    log.warning("plain", extra={"tenant_id": f"x-{TOKEN}", "message_id": None, "shard": 3})
    try:
        raise RuntimeError(f"token {TOKEN}")
    except RuntimeError:
        log.exception("failed", extra={"reason": TOKEN})
    first, second = lines(stream)
    assert first == {**first, "tenant_id": f"x-{MARK}", "shard": 3}
    assert "message_id" not in first  # None fields are left out
    assert second["reason"] == MARK
    assert "RuntimeError: token" in second["exc_info"]
    assert TOKEN not in stream.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_text_stays_the_default_format(stream: io.StringIO) -> None:
    setup_logging("INFO", stream=stream)
    logging.getLogger("whatsapp_worker.test").info("hello %s", "there", extra={"shard": 1})
    line = stream.getvalue().strip()
    assert line.endswith(" INFO whatsapp_worker.test: hello there")
    assert not line.startswith("{")


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(
    ("argv", "env", "formatter"),
    [
        pytest.param([], {}, "text", id="default: text"),
        pytest.param(["--log-format", "json"], {}, "json", id="flag json"),
        pytest.param([], {"WHATSAPP_WORKER_LOG_FORMAT": "json"}, "json", id="env json"),
        pytest.param(
            ["--log-format", "text"],
            {"WHATSAPP_WORKER_LOG_FORMAT": "json"},
            "text",
            id="the flag wins over the env",
        ),
        pytest.param(["--log-format", "plain"], {}, "text", id="plain: text"),
    ],
)
def test_the_flag_or_the_environment_switches_the_format(
    argv: list[str], env: dict[str, str], formatter: str, monkeypatch: pytest.MonkeyPatch,
    stream: io.StringIO,
) -> None:  # fmt: skip
    monkeypatch.delenv("WHATSAPP_WORKER_LOG_FORMAT", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("whatsapp_worker.tracing.configure", lambda: False)
    prepared = cli.prepare(argv)
    assert not isinstance(prepared, int)
    (handler,) = [h for h in logging.getLogger().handlers if isinstance(h, WorkerHandler)]
    if formatter == "json":
        assert isinstance(handler.formatter, JsonFormatter)
    else:
        assert not isinstance(handler.formatter, JsonFormatter)
        assert handler.formatter is not None
        assert handler.formatter._fmt == TEXT_FORMAT


def test_an_unknown_format_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WHATSAPP_WORKER_LOG_FORMAT", raising=False)
    assert cli.prepare(["--log-format", "xml"]) == 2
    assert "log_format" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["text", "plain", "json"])
def test_the_operator_and_the_receiver_take_the_same_words(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", "/dev/null")
    assert load_config(["--log-format", value, "-A"]).log_format == value
    assert WebhookSettings(log_format=value).log_format == value
