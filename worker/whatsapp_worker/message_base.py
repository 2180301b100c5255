"""What every model of Meta's message type objects shares: strict pydantic bases, and errors
read as `(location, message)` pairs that never contain a value from the input.

Objects Meta documents as closed are `ClosedObject` (`extra="forbid"`); a few objects Meta
keeps growing are `OpenObject`, checked for their required keys only. Every model is strict:
a JSON string is never coerced into a number or a boolean, and an explicit `null` for a
declared field is an error (omit the field instead).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]

_FRIENDLY = {
    "missing": "is required",
    "extra_forbidden": "is not allowed",
    "model_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "list_type": "must be a JSON array",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "int_type": "must be an integer",
    "float_type": "must be a number",
}


def problems_of(exc: ValidationError, prefix: Loc = ()) -> list[Problem]:
    """pydantic errors as (location, message), without the offending values."""
    found: list[Problem] = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        message = _FRIENDLY.get(err["type"], err["msg"]).removeprefix("Value error, ")
        found.append(((*prefix, *err["loc"]), message))
    return found


class ClosedObject(BaseModel):
    """A Meta object with a known, closed set of keys."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                if value is None and key in cls.model_fields:
                    raise ValueError(f"`{key}` must not be null (omit it instead)")
        return data

    def present(self, *names: str) -> set[str]:
        return {name for name in names if name in self.model_fields_set}


class OpenObject(ClosedObject):
    """A Meta object checked for its required keys only; other keys are passed on."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


def require_unique(values: list[str], what: str) -> None:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} must be unique")
