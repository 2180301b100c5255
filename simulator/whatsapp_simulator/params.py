"""Meta's error shapes for request parameters, and typed accessors that raise them.

Texts as users saw them (sends.py lists the sources): `(#100) The parameter X is required.`,
`(#100) Unexpected key "K" on param "P".`, `(#100) Param P must be one of {...} - got "V".`,
and 131009 "Parameter value is not valid" with "... length invalid" details.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from whatsapp_simulator.faults import GraphError

# --- Meta's error shapes ------------------------------------------------------------------


def required(path: str) -> GraphError:
    return GraphError(100, message=f"(#100) The parameter {path} is required.")


def unexpected(key: str, path: str) -> GraphError:
    return GraphError(100, message=f'(#100) Unexpected key "{key}" on param "{path}".')


def one_of(path: str, allowed: frozenset[str], got: object) -> GraphError:
    names = ", ".join(sorted(a.upper() for a in allowed))
    return GraphError(100, message=f'(#100) Param {path} must be one of {{{names}}} - got "{got}".')


def too_long(path: str, limit: int) -> GraphError:
    return GraphError(100, message=f"(#100) Param {path} must be at most {limit} characters long.")


def not_valid(details: str) -> GraphError:
    return GraphError(131009, details=details)


def sub(path: str, key: str | int) -> str:
    """Meta's name of a nested parameter: `text['body']`, `components[0]`; "" is the top."""
    if not path:
        return str(key)
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}['{key}']"


# --- helpers ------------------------------------------------------------------------------


def obj(value: object, path: str, allowed: set[str] | frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GraphError(100, message=f"(#100) Param {path} must be an object.")
    for key in value:
        if key not in allowed:
            raise unexpected(str(key), path)
    return value


def items(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise GraphError(100, message=f"(#100) Param {path} must be an array.")
    return value


def text(d: Mapping[str, Any], key: str, path: str, *, need: bool, empty: bool = False) -> str:
    value = d.get(key)
    if value is None or (value == "" and not empty):
        if need:
            raise required(sub(path, key))
        return ""
    if not isinstance(value, str):
        raise GraphError(100, message=f"(#100) Param {sub(path, key)} must be a string.")
    return value


def bounded(value: str, label: str, high: int, low: int = 1) -> None:
    """Interactive texts: 131009 with Meta's "... length invalid" details."""
    if not low <= len(value) <= high:
        raise not_valid(f"{label} length invalid. Min length: {low}, Max length: {high}")


def count(found: list[Any], label: str, high: int) -> None:
    if not 1 <= len(found) <= high:
        raise not_valid(
            f"Invalid {label} count. Min allowed {label}: 1, Max allowed {label}: {high}"
        )
