"""The audit writer keeps entries while PostgreSQL is unavailable and writes them, in order,
once it answers; fields are refused at submit time (fake audit log, no server)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from whatsapp_operator.postgres import audit_writer
from whatsapp_operator.postgres.audit_writer import AuditWriter
from whatsapp_operator.postgres.errors import DatabaseUnavailable


class FlakyLog:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.batches: list[list[Any]] = []

    async def append_many(self, entries: list[Any]) -> list[Any]:
        if self.failures:
            self.failures -= 1
            raise DatabaseUnavailable("postgresql://db: connection refused")
        self.batches.append(list(entries))
        return []


def writer(log: FlakyLog) -> AuditWriter:
    return AuditWriter(log, max_batch=3)  # type: ignore[arg-type]


async def test_entries_wait_out_an_outage_and_keep_their_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audit_writer, "RETRY_DELAYS", (0.01,))
    log = FlakyLog(failures=2)
    w = writer(log)
    task = asyncio.create_task(w.run())
    try:
        for i in range(7):
            w.submit(f"t_{i}", "validated", "operator")
        assert await w.flush(seconds=5)
    finally:
        task.cancel()
    written = [entry[0] for batch in log.batches for entry in batch]
    assert written == [f"t_{i}" for i in range(7)]
    assert max(len(b) for b in log.batches) <= 3
    assert (w.written, w.pending, w.dropped) == (7, [], 0)


async def test_flush_reports_what_could_not_be_written() -> None:
    w = writer(FlakyLog(failures=10**6))
    task = asyncio.create_task(w.run())
    try:
        w.submit("t_0", "validated", "operator")
        assert not await w.flush(seconds=0.2)
        assert len(w.pending) == 1
    finally:
        task.cancel()


async def test_refused_fields_are_the_callers_error_and_queue_nothing() -> None:
    w = writer(FlakyLog(failures=0))
    with pytest.raises(ValueError, match="looks like it holds a Meta access token"):
        w.submit("t_0", "validated", "operator", None, "EAAGm0PX4ZCpsBAKZB7ZCZBdbAUDITtoken0")
    assert w.pending == []
    assert await w.flush(seconds=0.1)


async def test_a_very_long_outage_drops_the_oldest_loudly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(audit_writer, "MAX_PENDING", 5)
    w = writer(FlakyLog(failures=0))
    for i in range(8):
        w.submit(f"t_{i}", "validated", "operator")
    assert [e[0] for e in w.pending] == [f"t_{i}" for i in range(3, 8)]
    assert w.dropped == 3
    assert "entries dropped" in caplog.text
