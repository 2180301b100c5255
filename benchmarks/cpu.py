"""Where a benchmark's CPU went: per process tree (utime + stime from /proc, children that
were reaped included) and for the whole machine (/proc/stat), between two readings. Linux
only, as the benchmarks are."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state is field 0


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def tree_seconds(pid: int, children: dict[int, list[int]] | None = None) -> float:
    """CPU seconds of `pid` and, given the process tree (`_children()`), every live
    descendant, each with its reaped children; without it, `pid` alone."""
    tree, total, todo = children or {}, 0.0, [pid]
    while todo:
        current = todo.pop()
        fields = _stat(current)
        if fields is None:
            continue
        # utime, stime, cutime, cstime: fields 14-17 of the file, 11-14 here
        total += sum(int(v) for v in fields[11:15]) / TICK
        todo.extend(tree.get(current, ()))
    return total


def machine_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / TICK, sum(values) / TICK


@dataclass
class CpuWindow:
    """CPU used by named process trees, and the machine's busy share, over a window. A name
    in `alone` counts its process only (the benchmark's own, whose children are the servers
    measured by their own names)."""

    pids: dict[str, int]
    alone: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self._start = self._read()
        self._machine = machine_seconds()

    def _read(self) -> dict[str, float]:
        tree = _children()  # one scan of /proc for all the names
        return {
            name: tree_seconds(pid, None if name in self.alone else tree)
            for name, pid in self.pids.items()
        }

    def used(self) -> dict[str, float]:
        """CPU seconds per name since the window opened, and 'machine busy %' (of all
        cores)."""
        now = self._read()
        used = {name: now[name] - self._start[name] for name in self.pids}
        busy, total = machine_seconds()
        span = total - self._machine[1]
        used["machine busy %"] = 100.0 * (busy - self._machine[0]) / span if span else 0.0
        return used
