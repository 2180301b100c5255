"""The WhatsAppTenant spec model (operator/whatsapp_operator/model/spec.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from whatsapp_operator.model.spec import parse_duration, parse_spec

MINIMAL = {
    "tenantId": "acme",
    "wabaId": "102290129340398",
    "phoneNumberId": "106540352242922",
    "tokenSecretRef": {"name": "acme-meta"},
}


def test_parse_spec_applies_defaults() -> None:
    spec, error = parse_spec(MINIMAL)
    assert error == ""
    assert spec is not None
    assert spec.tenant_id == "acme"
    assert spec.token_secret_ref.name == "acme-meta"
    assert spec.token_secret_ref.key == "accessToken"
    assert spec.active is True
    assert spec.suspend is False
    assert spec.graph_api_version is None
    assert spec.business_id is None
    assert spec.sender_pool == "default"
    assert spec.validation.interval == timedelta(hours=1)


def test_parse_spec_reads_every_field() -> None:
    spec, error = parse_spec(
        {
            **MINIMAL,
            "tokenSecretRef": {"name": "s", "key": "token"},
            "businessId": "884400000000001",
            "active": False,
            "suspend": True,
            "graphApiVersion": "v23.0",
            "senderPool": "bulk",
            "validation": {"interval": "1h30m"},
            "unknownField": "ignored",
        }
    )
    assert error == ""
    assert spec is not None
    assert spec.token_secret_ref.key == "token"
    assert spec.business_id == "884400000000001"
    assert (spec.active, spec.suspend) == (False, True)
    assert spec.graph_api_version == "v23.0"
    assert spec.sender_pool == "bulk"
    assert spec.validation.interval == timedelta(hours=1, minutes=30)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        pytest.param(None, ["tenantId", "wabaId", "phoneNumberId", "tokenSecretRef"], id="none"),
        pytest.param({**MINIMAL, "wabaId": "abc"}, ["wabaId"], id="non-numeric wabaId"),
        pytest.param({**MINIMAL, "tenantId": ""}, ["tenantId"], id="empty tenantId"),
        pytest.param({**MINIMAL, "tenantId": "x" * 51}, ["tenantId"], id="tenantId too long"),
        pytest.param(
            {**MINIMAL, "tokenSecretRef": {"name": ""}},
            ["tokenSecretRef.name"],
            id="empty Secret name",
        ),
        pytest.param(
            {**MINIMAL, "validation": {"interval": "1d"}},
            ["validation.interval", "not a duration"],
            id="bad interval",
        ),
    ],
)
def test_parse_spec_invalid_says_what_is_wrong(spec: Any, words: list[str]) -> None:
    parsed, error = parse_spec(spec)
    assert parsed is None
    assert error.startswith("spec is invalid: ")
    assert "\n" not in error
    for word in words:
        assert word in error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("1h", timedelta(hours=1), id="1h"),
        pytest.param("90m", timedelta(minutes=90), id="90m"),
        pytest.param("45s", timedelta(seconds=45), id="45s"),
        pytest.param("1h30m10s", timedelta(hours=1, minutes=30, seconds=10), id="1h30m10s"),
        pytest.param("2h15s", timedelta(hours=2, seconds=15), id="2h15s"),
        pytest.param(" 5m ", timedelta(minutes=5), id="surrounding spaces"),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("1d", id="days are not supported"),
        pytest.param("5", id="a bare number"),
        pytest.param("m", id="a unit without a number"),
        pytest.param("30m1h", id="parts out of order"),
        pytest.param("1.5h", id="fraction"),
        pytest.param("-1h", id="negative"),
        pytest.param("1h 30m", id="inner space"),
    ],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
