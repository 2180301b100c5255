"""Kubernetes label selectors (metav1.LabelSelector), matched in Python. Pure.

A WhatsAppApp's `namespaceSelector` says which namespaces may use the app. As everywhere in
Kubernetes, an empty selector (`{}`) matches every namespace; an app *without* one matches
none: a platform team allows namespaces explicitly (README, "Shared apps").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]


class Requirement(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    key: str = Field(min_length=1)
    operator: Operator
    values: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _values_fit_the_operator(self) -> Requirement:
        # the API server's own rule (LabelSelectorRequirement): In/NotIn need values,
        # Exists/DoesNotExist must have none
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs values")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        if self.operator == "In":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values  # NotIn


class LabelSelector(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")
    match_expressions: tuple[Requirement, ...] = Field(default=(), alias="matchExpressions")

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Every matchLabels pair and every expression hold (an empty selector: all)."""
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            r.matches(labels) for r in self.match_expressions
        )

    def describe(self) -> str:
        """The selector as kubectl's -l syntax, for messages (`{}`: everything)."""
        parts = [f"{k}={v}" for k, v in sorted(self.match_labels.items())]
        for r in self.match_expressions:
            if r.operator == "Exists":
                parts.append(r.key)
            elif r.operator == "DoesNotExist":
                parts.append(f"!{r.key}")
            else:
                word = "in" if r.operator == "In" else "notin"
                parts.append(f"{r.key} {word} ({','.join(r.values)})")
        return ",".join(parts) or "{} (every namespace)"


def selects(selector: LabelSelector | None, labels: Mapping[str, str] | None) -> bool:
    """Whether `selector` admits a namespace with `labels` (None selector: no namespace;
    None labels: the namespace is not known, so no)."""
    if selector is None or labels is None:
        return False
    return selector.matches(labels)
