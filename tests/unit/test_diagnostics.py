"""The SIGUSR1 task dump: names each task and the line it waits on, never local values."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import pytest

from whatsapp_operator.runtime import diagnostics


async def _deep_inside(gate: asyncio.Event) -> None:
    await gate.wait()


async def _stuck_holding(secret: str, gate: asyncio.Event) -> None:
    assert secret
    await _deep_inside(gate)


def test_a_waiting_task_is_named_with_its_frame_and_no_locals() -> None:
    async def main() -> list[str]:
        gate = asyncio.Event()
        task = asyncio.create_task(_stuck_holding("EAAG-secret-value", gate), name="tenant-x")
        await asyncio.sleep(0)
        blocks = diagnostics.describe_tasks({task})
        gate.set()
        await task
        return blocks

    (block,) = asyncio.run(main())
    assert "tenant-x" in block
    assert "_stuck_holding" in block
    assert "_deep_inside" in block  # the whole chain of awaits, not only the outer frame
    assert "await gate.wait()" in block
    assert "EAAG-secret-value" not in block


def test_sigusr1_logs_every_task(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        diagnostics.install()
        gate = asyncio.Event()
        task = asyncio.create_task(_stuck_holding("x", gate), name="waiting-one")
        await asyncio.sleep(0)
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.sleep(0.05)
        asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
        gate.set()
        await task

    with caplog.at_level(logging.WARNING, logger=diagnostics.__name__):
        asyncio.run(main())
    text = caplog.text
    assert "asyncio tasks follow" in text
    assert "waiting-one" in text


def test_reporters_are_logged_and_a_failing_one_is_contained(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(diagnostics, "REPORTERS", {"pool": lambda: "3 in use", "bad": broken})

    async def main() -> None:
        diagnostics.dump_tasks()

    with caplog.at_level(logging.WARNING, logger=diagnostics.__name__):
        asyncio.run(main())
    assert "SIGUSR1: pool: 3 in use" in caplog.text
    assert "SIGUSR1: bad: unavailable (RuntimeError)" in caplog.text


@pytest.mark.parametrize("how", ["raises", "returns", "cancelled"])
def test_a_background_task_that_ends_stops_the_operator(
    how: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    signals: list[int] = []
    monkeypatch.setattr(diagnostics.os, "kill", lambda pid, sig: signals.append(sig))

    async def body() -> None:
        if how == "raises":
            raise KeyError("t_1")
        if how == "cancelled":
            await asyncio.sleep(3600)

    async def main() -> None:
        task = diagnostics.supervise(asyncio.create_task(body(), name="publisher"))
        await asyncio.sleep(0)
        if how == "cancelled":
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)  # done callbacks run on the next loop turn

    with caplog.at_level(logging.CRITICAL, logger=diagnostics.__name__):
        asyncio.run(main())
    if how == "cancelled":  # the operator's own shutdown: nothing to say
        assert signals == []
        assert caplog.text == ""
    else:
        assert signals == [signal.SIGTERM]
        assert "background task 'publisher' ended unexpectedly" in caplog.text
        assert ("KeyError" in caplog.text) == (how == "raises")


def test_allocation_sites_are_logged_when_tracing(caplog: pytest.LogCaptureFixture) -> None:
    import tracemalloc

    tracemalloc.start(3)
    try:
        kept = [bytearray(1000) for _ in range(1000)]

        async def main() -> None:
            diagnostics.dump_tasks()

        with caplog.at_level(logging.WARNING, logger=diagnostics.__name__):
            asyncio.run(main())
    finally:
        tracemalloc.stop()
    assert len(kept) == 1000
    assert "MB traced; the largest allocation sites follow" in caplog.text
    assert "test_diagnostics.py" in caplog.text
