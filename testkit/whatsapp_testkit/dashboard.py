"""The Grafana dashboard's queries (charts/whatsapp-operator/files/dashboard.json) and the
metric names they read, for the tests that hold them to what the processes export.

Queries are parsed as PromQL (promql-parser, the Rust parser's Python binding) after
Grafana's variables are put in: a query that does not parse fails, and the metric names come
from its vector selectors only, never from functions, label names or keywords.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts" / "whatsapp-operator" / "files" / "dashboard.json"

# What Grafana puts in for its variables before sending a query (any valid value will do:
# only the query's shape matters here).
_RANGES = r"__(?:rate_interval|interval|range)"
_GRAFANA_RANGE = re.compile(rf"\$(?:{_RANGES}\b|\{{{_RANGES}\}})")
_VARIABLE = re.compile(r"\$\{?(\w+)(?::\w+)?\}?")
# label_values(metric, label) / label_values(label) / query_result(expr) of the variables
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+),\s*)?(?P<label>\w+)\s*\)\s*$")
_QUERY_RESULT = re.compile(r"^\s*query_result\((?P<expr>.+)\)\s*$")

# The sample names of a family of each type, as suffixes of the family's name as its `# TYPE`
# line names it (whatsapp_testkit/scrape.py: a counter's name ends in _total already).
SUFFIXES = {
    "counter": ("",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
}
ANY_SUFFIX = ("", "_bucket", "_count", "_sum")  # the type unknown


@dataclass(frozen=True, slots=True)
class Query:
    where: str  # the panel's title and the target's refId, or the variable's name
    expr: str


def load(path: Path = DASHBOARD) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _panels(panels: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or ())  # a collapsed row holds its panels


def queries(dashboard: Mapping[str, Any]) -> list[Query]:
    """Every PromQL query: the panels' targets and the query variables' queries."""
    found = [
        Query(f"panel {panel.get('title')!r} {target.get('refId')}", target["expr"])
        for panel in _panels(dashboard.get("panels") or ())
        for target in panel.get("targets") or ()
        if "expr" in target
    ]
    for var in (dashboard.get("templating") or {}).get("list") or ():
        if var.get("type") != "query":
            continue
        query = var.get("query")
        text = query.get("query") if isinstance(query, dict) else query
        found.append(Query(f"variable {var.get('name')!r}", variable_expr(str(text))))
    return found


def variable_expr(text: str) -> str:
    """The PromQL inside a query variable: label_values(selector, label) reads `selector`;
    query_result(expr) reads `expr`. label_values(label) alone reads no metric: ""."""
    match = _LABEL_VALUES.match(text)
    if match:
        return match.group("selector") or ""
    match = _QUERY_RESULT.match(text)
    if match:
        return match.group("expr")
    raise ValueError(f"not a Prometheus query variable: {text!r}")


def substitute(expr: str) -> str:
    """The query as Grafana sends it: ranges for $__rate_interval and friends, a plain value
    for the dashboard's own variables (they appear only inside label matchers)."""
    return _VARIABLE.sub("x", _GRAFANA_RANGE.sub("5m", expr))


def selectors(expr: str) -> dict[str, set[str]]:
    """Metric name -> the label names its selectors match on, for each metric a PromQL query
    reads; ValueError when it does not parse or when a selector names no metric (a dashboard
    query should always say which)."""
    if not expr.strip():
        return {}
    found: dict[str, set[str]] = {}
    unnamed: list[str] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            labels = {m.name for m in node.matchers.matchers}
            by_label = [m.value for m in node.matchers.matchers if m.name == "__name__"]
            name = node.name or (by_label[0] if len(by_label) == 1 else None)
            if name is None:
                unnamed.append(str(node))
            else:
                found.setdefault(name, set()).update(labels - {"__name__"})

    promql_parser.walk(promql_parser.parse(substitute(expr)), visit)
    if unnamed:
        raise ValueError(f"a selector without a metric name: {unnamed[0]}")
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL query reads (see `selectors`)."""
    return set(selectors(expr))


def family_of(name: str, families: Mapping[str, str]) -> str | None:
    """The exported family a sample name belongs to (None: none of them). `families` maps a
    family name (as its `# TYPE` line names it) to its type, or to "" when unknown."""
    for family, kind in families.items():
        suffixes = SUFFIXES.get(kind, ANY_SUFFIX)
        if name.startswith(family) and name[len(family) :] in suffixes:
            return family
    return None


def unexported(dashboard: Mapping[str, Any], families: Mapping[str, str]) -> dict[str, set[str]]:
    """Query (where) -> the metric names it reads that no exported family has."""
    missing: dict[str, set[str]] = {}
    for query in queries(dashboard):
        names = {n for n in metric_names(query.expr) if family_of(n, families) is None}
        if names:
            missing[query.where] = names
    return missing


def unknown_labels(
    dashboard: Mapping[str, Any], labels: Mapping[str, Iterable[str]], target: Iterable[str]
) -> dict[str, set[str]]:
    """Query (where) -> "metric:label" for each label a selector matches on that the metric's
    family does not have. `labels`: family -> its labels; `target`: the labels Prometheus adds
    to every series (job, instance...)."""
    families = dict.fromkeys(labels, "")
    extra = set(target)
    wrong: dict[str, set[str]] = {}
    for query in queries(dashboard):
        for name, used in selectors(query.expr).items():
            family = family_of(name, families)
            known = set(labels[family]) if family is not None else set()
            if name.endswith("_bucket"):
                known.add("le")
            bad = {f"{name}:{label}" for label in used - known - extra}
            if bad:
                wrong.setdefault(query.where, set()).update(bad)
    return wrong
