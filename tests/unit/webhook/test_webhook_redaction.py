"""The receiver's logging redacts the secrets it knows: its apps' secrets and verify tokens
(from the mounted config) and the broker's password, wherever they stand in a line, in plain
and JSON lines, exception text included (whatsapp_contract/redaction.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from whatsapp_contract.redaction import MARK, url_password
from whatsapp_contract.webhook import CONFIG_KEY, dump_receiver_config
from whatsapp_testkit.kubelet import KubeletVolume
from whatsapp_testkit.leaks import scan
from whatsapp_testkit.webhook import App, number, receiver_config
from whatsapp_webhook.config import ConfigStore
from whatsapp_webhook.logs import setup_logging

# secrets of a realistic length (the receiver's small world uses short ones)
APP = App("1009", "0f" * 16, "verify-token-of-app-9-xyz", name="app-9")
AMQP = "amqp://webhook:broker-pass-0123456789@rabbit:5672/"


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_the_receivers_logging_redacts_app_secrets_verify_tokens_and_the_broker_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], log_format: str
) -> None:
    setup_logging("INFO", log_format, secrets=url_password(AMQP))
    mount = KubeletVolume(tmp_path)
    mount.write(
        {CONFIG_KEY: dump_receiver_config(receiver_config([APP], [number("2009", "3009", "1009")]))}
    )
    assert ConfigStore(tmp_path / CONFIG_KEY).check() is True
    log = logging.getLogger("whatsapp_webhook.ingress")
    log.warning("hub.verify_token=%s.", APP.verify_token)
    log.warning("signature key file-%s", APP.secret)
    try:
        raise ConnectionError(json.dumps({"url": AMQP}))
    except ConnectionError:
        log.exception("broker: %s", "unreachable")
    err = capsys.readouterr().err
    assert "unreachable" in err
    assert "ConnectionError" in err
    assert err.count(MARK) >= 3
    secrets = [APP.secret, APP.verify_token, "broker-pass-0123456789"]
    assert scan(secrets, {"stderr": err}) == []
