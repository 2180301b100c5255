"""JSON merge patches (operator/whatsapp_operator/model/patches.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from whatsapp_operator.model.patches import merge_patch


def apply(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch, written from the RFC's pseudo-code."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply(result.get(key), value)
    return result


COND = {"type": "Ready", "status": "True"}

CASES = [
    pytest.param({}, {}, {}, id="both empty"),
    pytest.param({"a": 1, "b": {"c": [1, 2]}}, {"a": 1, "b": {"c": [1, 2]}}, {}, id="equal"),
    pytest.param({"a": 1}, {"a": 2}, {"a": 2}, id="scalar changed"),
    pytest.param({}, {"a": 1}, {"a": 1}, id="key added"),
    pytest.param({"a": 1, "b": 2}, {"a": 1}, {"b": None}, id="removed key becomes null"),
    pytest.param(
        {"token": {"fingerprint": "x", "expiresAt": "t"}, "phone": {"q": "GREEN"}},
        {"token": {"fingerprint": "y", "expiresAt": "t"}, "phone": {"q": "GREEN"}},
        {"token": {"fingerprint": "y"}},
        id="nested change touches only that leaf",
    ),
    pytest.param(
        {"token": {"fingerprint": "x", "expiresAt": "t"}},
        {"token": {"fingerprint": "x"}},
        {"token": {"expiresAt": None}},
        id="nested removed key becomes null",
    ),
    pytest.param(
        {"conditions": [COND, {"type": "TokenValid", "status": "True"}]},
        {"conditions": [COND, {"type": "TokenValid", "status": "False"}]},
        {"conditions": [COND, {"type": "TokenValid", "status": "False"}]},
        id="list replaced whole",
    ),
    pytest.param({"a": {"b": 1}}, {"a": 5}, {"a": 5}, id="mapping replaced by a scalar"),
    pytest.param({"a": 5}, {"a": {"b": 1}}, {"a": {"b": 1}}, id="scalar replaced by a mapping"),
    pytest.param({"a": 1}, {"a": "1"}, {"a": "1"}, id="type change"),
]


@pytest.mark.parametrize(("old", "new", "expected"), CASES)
def test_merge_patch(old: dict[str, Any], new: dict[str, Any], expected: dict[str, Any]) -> None:
    before = copy.deepcopy(old)
    patch = merge_patch(old, new)
    assert patch == expected
    assert old == before
    assert apply(old, patch) == new
