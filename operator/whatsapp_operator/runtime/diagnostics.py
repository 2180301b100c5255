"""On SIGUSR1, log where every asyncio task of the operator is waiting; and supervision of
the operator's own background tasks.

A stuck operator is otherwise a black box: `kill -USR1 <pid>` (in a pod:
`kubectl exec deploy/… -- kill -USR1 1`) writes one log record per task with its name and
the frames it is suspended in, and carries on. Started with `PYTHONTRACEMALLOC=<frames>`,
the operator also logs its largest allocation sites (where memory goes). Frames show code
locations only, never local variables, so no token can appear in the dump.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import traceback
import tracemalloc
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)
# name -> a callable describing some state worth seeing beside the tasks (connection pools)
REPORTERS: dict[str, Callable[[], str]] = {}


def _awaiting(task: asyncio.Task[object]) -> list[FrameType]:
    """The frames of the task's whole chain of awaits, outermost first (`Task.get_stack`
    gives only the outermost coroutine's frame)."""
    frames: list[FrameType] = []
    current: object = task.get_coro()
    while current is not None and len(frames) < 64:
        frame = next(
            (f for a in ("cr_frame", "gi_frame", "ag_frame") if (f := getattr(current, a, None))),
            None,
        )
        if frame is None:
            break
        frames.append(frame)
        current = next(
            (
                n
                for a in ("cr_await", "gi_yieldfrom", "ag_await")
                if (n := getattr(current, a, None)) is not None
            ),
            None,
        )
    return frames


def describe_tasks(tasks: set[asyncio.Task[object]] | None = None) -> list[str]:
    """One text block per task: its name, what it waits for, and the frames of its awaits."""
    found = asyncio.all_tasks() if tasks is None else tasks
    blocks = []
    for task in sorted(found, key=lambda t: t.get_name()):
        summary = traceback.StackSummary.extract(
            ((f, f.f_lineno) for f in _awaiting(task)), capture_locals=False
        )
        lines = "".join(summary.format()).rstrip()
        blocks.append(f"task {task.get_name()!r}: {task!r}\n{lines}")
    return blocks


def dump_tasks() -> None:
    blocks = describe_tasks()
    log.warning("SIGUSR1: %d asyncio tasks follow", len(blocks))
    if tracemalloc.is_tracing():  # PYTHONTRACEMALLOC=<frames> in the environment
        snapshot = tracemalloc.take_snapshot()
        stats = snapshot.statistics(
            "traceback" if tracemalloc.get_traceback_limit() > 1 else "lineno"
        )
        total = sum(stat.size for stat in stats)
        log.warning("SIGUSR1: %.1f MB traced; the largest allocation sites follow", total / 1e6)
        for stat in stats[:25]:
            where = " <- ".join(f"{f.filename}:{f.lineno}" for f in stat.traceback[:6])
            log.warning("SIGUSR1: %8.1f kB in %7d blocks at %s", stat.size / 1e3, stat.count, where)
    for name, report in sorted(REPORTERS.items()):
        try:
            log.warning("SIGUSR1: %s: %s", name, report())
        except Exception as exc:  # a diagnostic must never take the operator down
            log.warning("SIGUSR1: %s: unavailable (%s)", name, type(exc).__name__)
    for block in blocks:
        log.warning("%s", block)


def install(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Dump the tasks on SIGUSR1 (a no-op where the loop cannot take signal handlers)."""
    target = loop or asyncio.get_running_loop()
    try:
        target.add_signal_handler(signal.SIGUSR1, dump_tasks)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
        log.debug("SIGUSR1 task dumps unavailable here")


def supervise(task: asyncio.Task[None]) -> asyncio.Task[None]:
    """A background loop (publisher, heartbeats, drift check…) must run as long as the
    operator does. If one ends other than by cancellation, say so loudly and stop the
    operator (SIGTERM to itself: kopf shuts down cleanly, the pod restarts) rather than run
    on without it, silently doing half its job."""

    def ended(done: asyncio.Task[None]) -> None:
        if done.cancelled():
            return
        error = done.exception()
        log.critical(
            "background task %r ended unexpectedly (%s); stopping the operator so that it restarts",
            done.get_name(),
            f"{type(error).__name__}: {error}" if error is not None else "returned",
            exc_info=error,
        )
        os.kill(os.getpid(), signal.SIGTERM)

    task.add_done_callback(ended)
    return task
