"""Graph API versions and their end of life (graph/whatsapp_graph/versions.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pytest

from whatsapp_graph.versions import END_OF_LIFE, WARN_BEFORE, VersionState, version_state

DAY = timedelta(days=1)
ANY_DAY = date(2026, 9, 1)

# The dates of shared/meta-cloud-api.md ("usable until"), copied by hand: a typo in the table
# of the code must not go unnoticed.
DOCUMENTED = {
    "v26.0": None,
    "v25.0": date(2028, 7, 29),
    "v24.0": date(2028, 2, 18),
    "v23.0": date(2027, 10, 8),
    "v22.0": date(2027, 5, 20),
    "v21.0": date(2027, 1, 21),
    "v20.0": date(2026, 9, 24),
    "v18.0": date(2026, 1, 26),
}


@dataclass(frozen=True)
class Case:
    id: str
    version: str
    today: date
    state: VersionState
    end: date | None


def _around_end_of_life() -> list[Case]:
    cases = []
    for version, end in END_OF_LIFE.items():
        if end is None:
            continue
        warn = end - WARN_BEFORE
        cases += [
            Case(f"{version} current the day before the warning", version, warn - DAY,
                 VersionState.CURRENT, end),
            Case(f"{version} deprecated on the first warning day", version, warn,
                 VersionState.DEPRECATED, end),
            Case(f"{version} deprecated inside the warning window", version, end - 30 * DAY,
                 VersionState.DEPRECATED, end),
            Case(f"{version} deprecated on its end-of-life day", version, end,
                 VersionState.DEPRECATED, end),
            Case(f"{version} expired the day after", version, end + DAY,
                 VersionState.EXPIRED, end),
            Case(f"{version} expired years later", version, end + 1000 * DAY,
                 VersionState.EXPIRED, end),
        ]  # fmt: skip
    return cases


OTHER_CASES = [
    Case("v26.0 without an announced date is current", "v26.0", ANY_DAY, VersionState.CURRENT,
         None),
    Case("v26.0 is current years later", "v26.0", date(2040, 1, 1), VersionState.CURRENT, None),
    Case("v27.0 newer than the table is current", "v27.0", ANY_DAY, VersionState.CURRENT, None),
    Case("v30.1 newer than the table is current", "v30.1", ANY_DAY, VersionState.CURRENT, None),
    Case("v100.0 newer than the table is current", "v100.0", ANY_DAY, VersionState.CURRENT,
         None),
    Case("v17.0 older than the table is expired", "v17.0", ANY_DAY, VersionState.EXPIRED, None),
    Case("v2.0 older than the table is expired", "v2.0", ANY_DAY, VersionState.EXPIRED, None),
    Case("v0.0 older than the table is expired", "v0.0", ANY_DAY, VersionState.EXPIRED, None),
    Case("v19.5 inside the table's range but not in it is unknown", "v19.5", ANY_DAY,
         VersionState.UNKNOWN, None),
    Case("v25.1 next to a known version is unknown", "v25.1", ANY_DAY, VersionState.UNKNOWN,
         None),
    Case("v26.1 at the newest major is unknown", "v26.1", ANY_DAY, VersionState.UNKNOWN, None),
    Case("empty string is unknown", "", ANY_DAY, VersionState.UNKNOWN, None),
    Case("'latest' is unknown", "latest", ANY_DAY, VersionState.UNKNOWN, None),
    Case("missing minor 'v25' is unknown", "v25", ANY_DAY, VersionState.UNKNOWN, None),
    Case("missing v '25.0' is unknown", "25.0", ANY_DAY, VersionState.UNKNOWN, None),
    Case("capital V 'V25.0' is unknown", "V25.0", ANY_DAY, VersionState.UNKNOWN, None),
    Case("three parts 'v25.0.1' is unknown", "v25.0.1", ANY_DAY, VersionState.UNKNOWN, None),
    Case("leading space is unknown", " v25.0", ANY_DAY, VersionState.UNKNOWN, None),
    Case("trailing space is unknown", "v25.0 ", ANY_DAY, VersionState.UNKNOWN, None),
    Case("negative 'v-1.0' is unknown", "v-1.0", ANY_DAY, VersionState.UNKNOWN, None),
    Case("huge garbage 'v99999999999999999999x' is unknown", "v99999999999999999999x", ANY_DAY,
         VersionState.UNKNOWN, None),
]  # fmt: skip

CASES = _around_end_of_life() + OTHER_CASES


@pytest.mark.parametrize("case", [pytest.param(x, id=x.id) for x in CASES])
def test_version_state(case: Case) -> None:
    assert version_state(case.version, case.today) == (case.state, case.end)


@pytest.mark.parametrize(
    ("version", "end"), [pytest.param(v, e, id=v) for v, e in DOCUMENTED.items()]
)
def test_table_matches_the_documented_dates(version: str, end: date | None) -> None:
    assert version in END_OF_LIFE
    assert END_OF_LIFE[version] == end


def test_newer_versions_live_longer() -> None:
    """A version never ends before the one it replaced (a typo check on the table)."""
    dated = sorted(
        ((int(v[1:].split(".")[0]), e) for v, e in END_OF_LIFE.items() if e is not None),
    )
    ends = [e for _, e in dated]
    assert ends == sorted(ends)
    assert len(set(ends)) == len(ends)


def test_warning_window_is_ninety_days() -> None:
    assert timedelta(days=90) == WARN_BEFORE
