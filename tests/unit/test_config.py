"""Operator settings from flags and environment (operator/whatsapp_operator/cli.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from whatsapp_operator.cli import load_config

ENV = "WHATSAPP_OPERATOR_"


pytestmark = pytest.mark.usefixtures("clean_operator_env")


def test_defaults() -> None:
    cfg = load_config([])
    assert cfg.graph_api_url == "https://graph.facebook.com"
    assert cfg.graph_rate == 10.0
    assert cfg.graph_burst == 20
    assert cfg.unavailable_grace == timedelta(minutes=15)
    assert cfg.namespace_list == []
    assert cfg.all_namespaces is False
    assert cfg.peering is None
    assert (cfg.event_loop, cfg.http_backend) == ("uvloop", "aiohttp")
    assert cfg.initial_shards == 4


@pytest.mark.parametrize(
    ("env", "argv", "field", "expected"),
    [
        pytest.param({"GRAPH_RATE": "2.5"}, [], "graph_rate", 2.5, id="env sets graph rate"),
        pytest.param(
            {"GRAPH_RATE": "2.5"}, ["--graph-rate", "7"], "graph_rate", 7.0, id="flag beats env"
        ),
        pytest.param({"GRAPH_BURST": "5"}, [], "graph_burst", 5, id="env sets burst"),
        pytest.param(
            {"GRAPH_BURST": "5"}, ["--graph-burst", "9"], "graph_burst", 9, id="burst flag wins"
        ),
        pytest.param(
            {"GRAPH_API_URL": "http://sim:8080"},
            [],
            "graph_api_url",
            "http://sim:8080",
            id="env sets the Graph API URL",
        ),
        pytest.param(
            {"GRAPH_API_URL": "http://sim:8080"},
            ["--graph-api-url", "http://other:9090"],
            "graph_api_url",
            "http://other:9090",
            id="URL flag wins",
        ),
        pytest.param(
            {"UNAVAILABLE_GRACE": "30m"},
            [],
            "unavailable_grace",
            timedelta(minutes=30),
            id="env grace as a duration",
        ),
        pytest.param(
            {"UNAVAILABLE_GRACE": "30m"},
            ["--unavailable-grace", "1h"],
            "unavailable_grace",
            timedelta(hours=1),
            id="grace flag wins",
        ),
        pytest.param(
            {"NAMESPACES": "a, b"},
            [],
            "namespace_list",
            ["a", "b"],
            id="env namespaces, comma-separated",
        ),
        pytest.param(
            {"NAMESPACES": "a,b"},
            ["-n", "x", "--namespace", "y"],
            "namespace_list",
            ["x", "y"],
            id="repeated namespace flags win",
        ),
        pytest.param({"ALL_NAMESPACES": "true"}, [], "all_namespaces", True, id="env all ns"),
        pytest.param(
            {"ALL_NAMESPACES": "false"}, ["-A"], "all_namespaces", True, id="-A flag wins"
        ),
        pytest.param({"PEERING": "whatsapp"}, [], "peering", "whatsapp", id="env peering"),
        pytest.param(
            {"LIVENESS_PORT": "9000"}, ["--liveness-port", "0"], "liveness_port", 0, id="port 0"
        ),
        pytest.param(
            {"GRAPH_API_VERSION": "v23.0"},
            [],
            "graph_api_version",
            "v23.0",
            id="env Graph API version",
        ),
        pytest.param({"LOG_FORMAT": "json"}, [], "log_format", "json", id="env log format"),
    ],
)
def test_flags_override_env(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], argv: list[str], field: str, expected: Any
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(ENV + name, value)
    assert getattr(load_config(argv), field) == expected


@pytest.mark.parametrize(
    ("env", "argv"),
    [
        pytest.param({}, ["--graph-rate", "0"], id="zero rate flag"),
        pytest.param({"GRAPH_RATE": "-1"}, [], id="negative rate in env"),
        pytest.param({"GRAPH_RATE": "fast"}, [], id="non-numeric rate in env"),
        pytest.param({}, ["--graph-burst", "0"], id="zero burst"),
        pytest.param({}, ["--unavailable-grace", "1d"], id="grace in days"),
        pytest.param({"UNAVAILABLE_GRACE": "soon"}, [], id="grace not a duration in env"),
        pytest.param({}, ["--graph-api-version", "25"], id="version without v"),
        pytest.param({}, ["--liveness-port", "70000"], id="port out of range"),
        pytest.param({"LOG_FORMAT": "xml"}, [], id="unknown log format in env"),
        pytest.param({"EVENT_LOOP": "trio"}, [], id="unknown event loop in env"),
        pytest.param({}, ["--initial-shards", "3"], id="a shard layout not a power of two"),
        pytest.param({"INITIAL_SHARDS": "2048"}, [], id="a shard layout above the maximum"),
        pytest.param({}, ["--initial-shards", "0"], id="no shards"),
        pytest.param({"HTTP_BACKEND": "requests"}, [], id="unknown HTTP backend in env"),
        pytest.param({}, ["-n", "shop", "-n", "payments-*"], id="a namespace pattern"),
        pytest.param({"NAMESPACES": "Shop"}, [], id="a namespace name with capitals"),
    ],
)
def test_invalid_values_raise_validation_error(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], argv: list[str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(ENV + name, value)
    with pytest.raises(ValidationError):
        load_config(argv)


def test_flag_with_a_value_argparse_cannot_read_exits() -> None:
    with pytest.raises(SystemExit):
        load_config(["--graph-rate", "fast"])
