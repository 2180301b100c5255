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
import difflib
import platform
import re
from collections.abc import Callable, Collection, Iterable, Mapping

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


# --- the committed report's scenarios against the tests' own (CI: `make test`) ---------

DESCRIBED = ("scenario", "load", "faults")  # the columns a scenario's test writes as text
Description = tuple[str, str, str]
_CELL_SPLIT = re.compile(r"(?<!\\) \| ")
_TEST_LINE = re.compile(r"^- `(?P<test>[^`]+)`: ")


def description(scenario: Scenario) -> Description:
    """What the scenario says it holds and injects, as the table shows it."""
    scenario_cell, load, faults = (_escape(scenario.cell(c)) for c in DESCRIBED)
    return scenario_cell, load, faults


def read_descriptions(text: str) -> dict[str, Description]:
    """test id -> (scenario, load held, faults injected) of a report `render` wrote: its table
    rows and its list of tests are in the same order (by test id)."""
    lines = text.splitlines()
    header = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    if header not in lines:
        raise ValueError("not a reliability report: its table header is missing")
    start = lines.index(header) + 2  # after the header and its separator
    rows: list[Description] = []
    for line in lines[start:]:
        if not line.startswith("| "):
            break
        cells = _CELL_SPLIT.split(line[2:-2])
        if len(cells) != len(COLUMNS):
            raise ValueError(f"a table row without {len(COLUMNS)} cells: {line[:80]}")
        rows.append((cells[0], cells[1], cells[2]))
    tests = [m["test"] for line in lines if (m := _TEST_LINE.match(line))]
    if len(tests) != len(rows):
        raise ValueError(f"{len(rows)} table rows but {len(tests)} tests listed")
    return dict(zip(tests, rows, strict=True))


def _line(test: str, described: Description) -> str:
    return f"{test}: " + " | ".join(described)


def scenario_drift(
    committed: Mapping[str, Description],
    ran: Mapping[str, Description],
    *,
    gone: Collection[str] = (),
) -> list[str]:
    """How the committed report's scenarios differ from those the tests just described, as a
    unified diff (empty: they agree). A scenario that did not run is compared only when it is
    in `gone` (its test no longer exists); figures are never compared."""
    tests = sorted(set(ran) | (set(committed) & set(gone)))
    old = [_line(t, committed[t]) for t in tests if t in committed]
    new = [_line(t, ran[t]) for t in tests if t in ran]
    if old == new:
        return []
    return list(difflib.unified_diff(old, new, "committed", "the tests", lineterm="", n=0))


def gone_tests(
    committed: Iterable[str], collected: Collection[str], exists: Callable[[str], bool]
) -> list[str]:
    """The committed scenarios whose test no longer exists: its file is gone, or its file was
    collected in this session (selected or deselected) without it. A file this session did
    not collect at all tells nothing (a partial run)."""
    files = {test.split("::")[0] for test in collected}
    return [
        test
        for test in committed
        if test not in collected
        and (test.split("::")[0] in files or not exists(test.split("::")[0]))
    ]
