"""The reliability report's table: figures as recorded, failures shown, nothing dropped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from whatsapp_testkit.reliability import (
    Scenario,
    description,
    gone_tests,
    read_descriptions,
    render,
    scenario_drift,
)


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


# --- the committed report against the tests' own descriptions (CI fails on a stale one) --


def _described(test: str, name: str, load: str, faults: str) -> Scenario:
    row = Scenario(test=test).describe(name, load=load, faults=faults)
    row.record(sent=100, delivered=100, duplicates=0)
    row.outcome = "passed"
    return row


def test_a_rendered_report_reads_back_its_descriptions_by_test() -> None:
    rows = [
        _described("t.py::b", "broker restarted", "3,000 messages | 4 numbers", "stopped 10 s"),
        _described("t.py::a", "apiserver restarted", "20 tenants", "stopped; revalidate"),
    ]
    read = read_descriptions(render(rows, command="make reliability"))
    assert read == {
        "t.py::a": ("apiserver restarted", "20 tenants", "stopped; revalidate"),
        "t.py::b": ("broker restarted", "3,000 messages \\| 4 numbers", "stopped 10 s"),
    }
    assert read == {r.test: description(r) for r in rows}


def test_the_committed_report_reads() -> None:
    """docs/reliability.md is what `read_descriptions` understands (else CI could not check)."""
    committed = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
    described = read_descriptions(committed.read_text())
    assert len(described) >= 10
    assert all(test.startswith("tests/integration/test_") for test in described)


COMMITTED = {
    "t.py::a": ("apiserver restarted", "20 tenants", "stopped"),
    "t.py::b": ("broker restarted", "3,000 messages", "stopped 10 s"),
    "u.py::c": ("old scenario", "x", "y"),
}


@pytest.mark.parametrize(
    ("ran", "gone", "expected"),
    [
        pytest.param(
            {"t.py::a": ("apiserver restarted", "20 tenants", "stopped")}, [], [], id="agree"
        ),
        pytest.param(
            {"t.py::b": ("broker restarted", "3,000 messages", "stopped 5 s")},
            [],
            [
                "-t.py::b: broker restarted | 3,000 messages | stopped 10 s",
                "+t.py::b: broker restarted | 3,000 messages | stopped 5 s",
            ],
            id="a scenario changed",
        ),
        pytest.param(
            {"v.py::d": ("new scenario", "x", "y")},
            [],
            ["+v.py::d: new scenario | x | y"],
            id="a scenario the report lacks",
        ),
        pytest.param({}, ["u.py::c"], ["-u.py::c: old scenario | x | y"], id="a test gone"),
        pytest.param({}, [], [], id="a partial run compares what ran"),
    ],
)
def test_scenario_drift(
    ran: dict[str, tuple[str, str, str]], gone: list[str], expected: list[str]
) -> None:
    diff = scenario_drift(COMMITTED, ran, gone=gone)
    assert [line for line in diff if line[:1] in "+-" and line[:3] not in ("---", "+++")] == (
        expected
    )


def test_a_test_is_gone_when_its_file_is_gone_or_was_collected_without_it() -> None:
    committed = ["a.py::kept", "a.py::renamed", "b.py::not_collected", "c.py::deleted_file"]
    collected = {"a.py::kept", "a.py::other"}
    assert gone_tests(committed, collected, lambda f: f != "c.py") == [
        "a.py::renamed",
        "c.py::deleted_file",
    ]
