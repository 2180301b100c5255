"""The operator's settings for shared apps: --operator-namespace and --webhook-receiver."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from whatsapp_operator.cli import load_config

ENV = "WHATSAPP_OPERATOR_"


pytestmark = pytest.mark.usefixtures("clean_operator_env")


def test_off_by_default() -> None:
    cfg = load_config([])
    assert cfg.webhook_receiver is False
    assert cfg.operator_namespace is None


def test_flags_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(["--webhook-receiver", "--operator-namespace", "ops"])
    assert (cfg.webhook_receiver, cfg.operator_namespace) == (True, "ops")
    monkeypatch.setenv(f"{ENV}WEBHOOK_RECEIVER", "true")
    monkeypatch.setenv(f"{ENV}OPERATOR_NAMESPACE", "platform")
    cfg = load_config([])
    assert (cfg.webhook_receiver, cfg.operator_namespace) == (True, "platform")


def test_a_namespace_name_only() -> None:
    with pytest.raises(ValidationError):
        load_config(["--operator-namespace", "Ops_1"])


def test_the_receiver_needs_a_namespace_for_its_config(tmp_path: Path) -> None:
    cfg = load_config(["--workers-namespace", "workers"])
    missing = tmp_path / "none"
    assert cfg.resolved_operator_namespace(missing) == "workers"
    with pytest.raises(ValidationError, match="webhook_receiver needs operator_namespace"):
        load_config(["--webhook-receiver"])
    assert load_config(["--webhook-receiver", "--workers-namespace", "w"]).webhook_receiver


def test_the_operators_namespace_is_its_pods_unless_named(tmp_path: Path) -> None:
    pod = tmp_path / "namespace"
    pod.write_text("whatsapp-system\n")
    cfg = load_config(["--workers-namespace", "workers"])
    assert cfg.resolved_operator_namespace(pod) == "whatsapp-system"
    named = load_config(["--workers-namespace", "workers", "--operator-namespace", "ops"])
    assert named.resolved_operator_namespace(pod) == "ops"
