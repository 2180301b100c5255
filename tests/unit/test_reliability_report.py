"""The reliability report's table: figures as recorded, failures shown, nothing dropped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from whatsapp_testkit.reliability import Scenario, render


def _row(test: str, **figures: int | float) -> Scenario:
    row = Scenario(test=test).describe("worker SIGKILL", load="10,000 messages", faults="kill x3")
    row.record(**figures)  # type: ignore[arg-type]
    return row


@pytest.mark.parametrize(
    ("column", "figures", "expected"),
    [
        pytest.param("sent", {"sent": 10_000}, "10000", id="a count"),
        pytest.param("sent", {}, "-", id="not recorded"),
        pytest.param(
            "duplicates", {"sent": 10_000, "duplicates": 12}, "12 (0.12%)", id="a share of sent"
        ),
        pytest.param("duplicates", {"duplicates": 3}, "3", id="no share without a sent count"),
        pytest.param("converged", {"converged_s": 4.26}, "4.3 s", id="seconds"),
        pytest.param("scenario", {}, "worker SIGKILL", id="the scenario's name"),
    ],
)
def test_cells(column: str, figures: dict[str, float], expected: str) -> None:
    assert _row("t.py::a", **figures).cell(column) == expected


def test_record_overwrites_only_what_it_is_given() -> None:
    row = _row("t.py::a", sent=5, delivered=5)
    row.record(delivered=4, convergence_of="rows correct")
    assert (row.sent, row.delivered, row.convergence_of) == (5, 4, "rows correct")


def test_the_table_shows_every_scenario_with_its_outcome_and_notes() -> None:
    ok = _row("t.py::b", sent=100, delivered=100, duplicates=0)
    ok.outcome = "passed"
    bad = _row("t.py::a", sent=100, delivered=97)
    bad.outcome = "failed"
    bad.note("3 | lost")
    text = render([ok, bad], command="make reliability")
    table = [line for line in text.splitlines() if line.startswith("| worker")]
    assert len(table) == 2
    assert table[0].endswith("| failed |")  # sorted by test id
    assert "| 97 |" in table[0]
    assert table[1].endswith("| passed |")
    assert "| 0 (0.00%) |" in table[1]
    assert "1 of 2 scenarios passed" in text
    assert "3 \\| lost" in text  # a pipe in a note cannot break the table


def test_the_make_targets_pass_the_report_path_in_one_argument() -> None:
    """`--reliability-report docs/reliability.md` (two arguments) broke `make reliability`
    once the file existed: pytest reads an existing path among its arguments, before the
    conftest that defines the option is loaded, as where to look for conftests, and then
    does not know the option."""
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    uses = re.findall(r"--reliability-report(\S*)", makefile)
    assert len(uses) == 2  # make test, make reliability
    assert all(u.startswith("=") for u in uses), uses
