"""The reliability report: each fault scenario test records what it held and what it measured,
and the session writes one table (`make reliability` -> docs/reliability.md).

A scenario test asks for the `scenario` fixture (tests/conftest.py), describes the load it
holds and the faults it injects, and records the counts and times it measured. The outcome
(passed/failed) comes from pytest, so a failed scenario shows as failed in the table with the
figures it got to, never silently missing.
"""

from __future__ import annotations

import dataclasses
import datetime
import platform
from collections.abc import Iterable

COLUMNS = (
    ("scenario", "scenario"),
    ("load", "load held"),
    ("faults", "faults injected"),
    ("sent", "sent"),
    ("delivered", "delivered"),
    ("dead_lettered", "dead-lettered"),
    ("duplicates", "duplicates"),
    ("converged", "convergence"),
    ("outcome", "outcome"),
)


@dataclasses.dataclass
class Scenario:
    """One row. Counts are None where they do not apply (shown as a dash)."""

    test: str  # the pytest node id
    name: str = ""
    load: str = ""
    faults: str = ""
    sent: int | None = None
    delivered: int | None = None
    dead_lettered: int | None = None
    duplicates: int | None = None
    converged_s: float | None = None
    convergence_of: str = ""  # what the time measures, e.g. "rows correct after restart"
    notes: list[str] = dataclasses.field(default_factory=list)
    outcome: str = "not run"
    seconds: float | None = None

    def describe(self, name: str, *, load: str, faults: str) -> Scenario:
        self.name, self.load, self.faults = name, load, faults
        return self

    def record(
        self,
        *,
        sent: int | None = None,
        delivered: int | None = None,
        dead_lettered: int | None = None,
        duplicates: int | None = None,
        converged_s: float | None = None,
        convergence_of: str | None = None,
    ) -> None:
        """Keyword figures; only those given are (over)written."""
        given = {
            "sent": sent,
            "delivered": delivered,
            "dead_lettered": dead_lettered,
            "duplicates": duplicates,
            "converged_s": converged_s,
            "convergence_of": convergence_of,
        }
        for key, value in given.items():
            if value is not None:
                setattr(self, key, value)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def cell(self, column: str) -> str:
        if column == "scenario":
            return self.name or self.test
        if column == "converged":
            if self.converged_s is None:
                return "-"
            return f"{self.converged_s:.1f} s" + (
                f" ({self.convergence_of})" if self.convergence_of else ""
            )
        if column == "duplicates" and self.duplicates is not None and self.sent:
            return f"{self.duplicates} ({self.duplicates / self.sent:.2%})"
        value = getattr(self, column)
        return "-" if value is None or value == "" else str(value)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(scenarios: Iterable[Scenario], *, command: str) -> str:
    rows = sorted(scenarios, key=lambda s: s.test)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    passed = sum(1 for s in rows if s.outcome == "passed")
    lines = [
        "# Reliability: faults injected under load",
        "",
        f"Written by `{command}` on {now} ({platform.node()}, {platform.python_version()}): "
        f"{passed} of {len(rows)} scenarios passed. Each row is one test in `tests/`; the test "
        'states what "nothing lost" means for it and fails when it is not so.',
        "",
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "| " + " | ".join("---" for _ in COLUMNS) + " |",
    ]
    lines += ["| " + " | ".join(_escape(s.cell(c)) for c, _ in COLUMNS) + " |" for s in rows]
    notes = [(s, n) for s in rows for n in s.notes]
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- **{_escape(s.name or s.test)}**: {_escape(n)}" for s, n in notes]
    lines += ["", "## Tests", ""]
    lines += [
        f"- `{s.test}`: {s.outcome}" + (f" in {s.seconds:.1f} s" if s.seconds else "") for s in rows
    ]
    return "\n".join(lines) + "\n"
