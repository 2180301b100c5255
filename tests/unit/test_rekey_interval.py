"""The rekey interval (re-encryption of rows under a new key): `--rekey-interval` and
WHATSAPP_OPERATOR_REKEY_INTERVAL, with the former `--rotation-interval` and
WHATSAPP_OPERATOR_ROTATION_INTERVAL still accepted (deprecated aliases)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from whatsapp_operator.cli import load_config

ENV = "WHATSAPP_OPERATOR_"


pytestmark = pytest.mark.usefixtures("clean_operator_env")


def test_default_is_30s() -> None:
    assert load_config([]).rekey_interval == timedelta(seconds=30)


@pytest.mark.parametrize("flag", ["--rekey-interval", "--rotation-interval"])
def test_both_flag_spellings(flag: str) -> None:
    assert load_config([flag, "5s"]).rekey_interval == timedelta(seconds=5)
    assert load_config([f"{flag}=1m"]).rekey_interval == timedelta(minutes=1)


@pytest.mark.parametrize("name", ["REKEY_INTERVAL", "ROTATION_INTERVAL"])
def test_both_env_spellings(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(ENV + name, "45s")
    assert load_config([]).rekey_interval == timedelta(seconds=45)


@pytest.mark.parametrize("name", ["REKEY_INTERVAL", "ROTATION_INTERVAL"])
@pytest.mark.parametrize("flag", ["--rekey-interval", "--rotation-interval"])
def test_a_flag_beats_either_env(monkeypatch: pytest.MonkeyPatch, name: str, flag: str) -> None:
    monkeypatch.setenv(ENV + name, "45s")
    assert load_config([flag, "7s"]).rekey_interval == timedelta(seconds=7)


def test_the_new_env_name_beats_the_old_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV + "ROTATION_INTERVAL", "45s")
    monkeypatch.setenv(ENV + "REKEY_INTERVAL", "15s")
    assert load_config([]).rekey_interval == timedelta(seconds=15)


@pytest.mark.parametrize("name", ["REKEY_INTERVAL", "ROTATION_INTERVAL"])
def test_unprefixed_names_are_not_read(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "45s")
    monkeypatch.setenv(name.lower(), "45s")
    assert load_config([]).rekey_interval == timedelta(seconds=30)


def test_the_last_of_two_spellings_wins() -> None:
    argv = ["--rotation-interval", "5s", "--rekey-interval", "9s"]
    assert load_config(argv).rekey_interval == timedelta(seconds=9)
