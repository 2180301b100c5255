"""The drift check wakes tenants whose rows were edited or deleted behind the operator's back,
and never a tenant whose first row was written while its query ran (fake database)."""

from __future__ import annotations

from typing import Any

import pytest

from whatsapp_operator.postgres.maintenance import drift_pass
from whatsapp_operator.runtime.registry import Registry


class FakeDb:
    owner = "whatsapp-operator"

    def __init__(self, registry: Registry, drifted: set[str], present: set[str]) -> None:
        self.registry, self.answer = registry, (drifted, present)
        self.during: Any = None

    async def drifted(self, owner: str) -> tuple[set[str], set[str]]:
        if self.during is not None:
            self.during()
        return self.answer


class FakeRows:
    def __init__(self, db: FakeDb) -> None:
        self.db = db


def registry_with(*tenants: str) -> Registry:
    reg = Registry()
    for t in tenants:
        reg.register(("ns", t))
        reg.owners[t] = ("ns", t)
    return reg


@pytest.mark.parametrize(
    ("drifted", "present", "woken"),
    [
        (set(), {"a", "b"}, set()),
        ({"a"}, {"a", "b"}, {"a"}),  # edited
        (set(), {"b"}, {"a"}),  # deleted
        ({"b"}, {"b"}, {"a", "b"}),
    ],
)
async def test_edited_or_deleted_rows_wake_their_tenant(
    drifted: set[str], present: set[str], woken: set[str]
) -> None:
    reg = registry_with("a", "b")
    assert await drift_pass(FakeRows(FakeDb(reg, drifted, present)), reg) == len(woken)  # type: ignore[arg-type]
    assert {k[1] for k, e in reg.wakers.items() if e.is_set()} == woken


async def test_a_row_written_while_the_query_ran_is_not_drift(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg = registry_with("a")
    db = FakeDb(reg, set(), {"a"})
    reg.register(("ns", "new"))
    db.during = lambda: reg.owners.__setitem__("new", ("ns", "new"))  # synced mid-query
    assert await drift_pass(FakeRows(db), reg) == 0  # type: ignore[arg-type]
    assert "changed outside the operator" not in caplog.text
