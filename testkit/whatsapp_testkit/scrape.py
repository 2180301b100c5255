"""The metric families a live process exports, and the table of them in docs/metrics.md.

A family is named as its `# TYPE` line names it (a counter with its `_total`): prometheus-client
writes HELP and TYPE for every registered family, samples or not, so a labelled counter that
has counted nothing yet is still listed. The alert, dashboard and documentation tests compare
their metric names with these (tests/conftest.py's `exported_metrics` fixture scrapes an
operator, a worker and a webhook receiver once per session).
"""

from __future__ import annotations

import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PROCESSES = ("operator", "worker", "webhook")
DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
_TYPE = re.compile(r"^# TYPE (\S+) (\S+)\s*$")
_ROW = re.compile(r"^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|(.*)\|\s*$")


def families(text: str) -> dict[str, str]:
    """Family name -> type (counter, gauge, histogram, ...) from an exposition's TYPE lines.
    prometheus-client writes the creation time of an unlabelled counter or histogram `X` as
    a gauge family `X_created` of its own: not a metric of ours, left out."""
    found = {}
    for line in text.splitlines():
        match = _TYPE.match(line)
        if match:
            found[match.group(1)] = match.group(2)
    return {
        name: kind
        for name, kind in found.items()
        if not (name.endswith("_created") and _created_of(name[: -len("_created")], found))
    }


def _created_of(base: str, found: dict[str, str]) -> bool:
    return found.get(f"{base}_total") == "counter" or found.get(base) in ("histogram", "summary")


def scrape(url: str, timeout: float = 30.0) -> dict[str, str]:
    """The families of the metrics page at `url` (an http:// URL of a test's process)."""
    if not url.startswith("http://"):
        raise ValueError(f"not a plain-HTTP metrics URL: {url}")
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
        return families(response.read().decode())


@dataclass(frozen=True)
class Documented:
    """A row of docs/metrics.md's table."""

    name: str
    type: str
    processes: frozenset[str]
    labels: tuple[str, ...]
    meaning: str


def documented(path: Path = DOC) -> dict[str, Documented]:
    """The table's rows by metric name: | `name` | type | processes | labels | meaning |
    (processes and labels comma-separated, labels in backquotes, `-` for none)."""
    rows: dict[str, Documented] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match is None:
            continue
        cells = [c.strip() for c in match.group(2).split("|")]
        if len(cells) != 4:
            raise ValueError(f"{path.name}: a row needs 5 cells: {line}")
        kind, processes, labels, meaning = cells
        if match.group(1) in rows:
            raise ValueError(f"{path.name}: {match.group(1)} is in the table twice")
        rows[match.group(1)] = Documented(
            match.group(1),
            kind,
            frozenset(p.strip() for p in processes.split(",")),
            tuple(x.strip().strip("`") for x in labels.split(",") if x.strip() not in ("", "-")),
            meaning,
        )
    return rows


def by_process(rows: dict[str, Documented]) -> dict[str, set[str]]:
    """Process -> the names the table says it exports."""
    found: dict[str, set[str]] = {p: set() for p in PROCESSES}
    for row in rows.values():
        for process in row.processes:
            found.setdefault(process, set()).add(row.name)
    return found
