"""The leak scanner finds every form of a token anywhere in any source, and nothing else."""

from __future__ import annotations

import base64

import pytest

from whatsapp_testkit.leaks import scan

TOKEN = "EAATsecretvalue0123456789abcdefghijklmnopqrstuvwxyz"
OTHER = "EAATanothersecret9876543210zyxwvutsrqponmlkjihgfedc"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(f"Authorization: Bearer {TOKEN}\n", ["raw"], id="raw in a line"),
        pytest.param(f"x{TOKEN}y", ["raw"], id="glued to other characters"),
        pytest.param(
            f'"accessToken": "{base64.b64encode(TOKEN.encode()).decode()}"',
            ["base64"],
            id="base64 as in a Secret",
        ),
        pytest.param(f"token={TOKEN[:24]}...", ["first 24 characters"], id="truncated"),
        pytest.param(f"{TOKEN[:23]}...", [], id="23 characters are not enough"),
        pytest.param("EAAT" + "x" * 60, [], id="the same shape is not a leak"),
        pytest.param("", [], id="empty source"),
    ],
)
def test_forms_found(text: str, expected: list[str]) -> None:
    found = scan([TOKEN, OTHER], {"log": text})
    assert sorted(form for _, form in found) == sorted(
        {*expected, *(["first 24 characters"] if "raw" in expected else [])}
    )
    assert all(where == "log" for where, _ in found)


def test_each_source_is_named_and_tokens_never_appear_in_the_answer() -> None:
    found = scan([TOKEN, OTHER], {"a": "clean", "b": OTHER, "c": f"{TOKEN} {OTHER}"})
    assert {where for where, _ in found} == {"b", "c"}
    assert TOKEN not in repr(found)
    assert OTHER not in repr(found)


def test_no_tokens_no_hits() -> None:
    assert scan([], {"log": TOKEN}) == []
