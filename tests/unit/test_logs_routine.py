"""kopf's per-event success lines are dropped at INFO; everything else is kept."""

from __future__ import annotations

import logging

import pytest

from whatsapp_operator.runtime.logs import RoutineFilter


@pytest.mark.parametrize(
    ("level", "message", "kept"),
    [
        (logging.INFO, "Handler 'tenant_changed' succeeded.", False),
        (logging.INFO, "Indexer 'tenants_by_secret' succeeded.", False),
        (logging.INFO, "Handler 'tenant_deleted' failed temporarily: PostgreSQL down", True),
        (logging.INFO, "Daemon 'tenant_loop' succeeded.", True),
        (logging.WARNING, "Handler 'tenant_changed' succeeded.", True),
        (logging.INFO, "Handler 'x' succeeded. And more", True),
    ],
)
def test_routine_lines(level: int, message: str, kept: bool) -> None:
    record = logging.LogRecord("kopf.objects", level, __file__, 1, message, (), None)
    assert RoutineFilter().filter(record) is kept
