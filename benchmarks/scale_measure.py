"""What benchmarks/scale.py measures (see its docstring): a process's CPU and memory from /proc,
the API server's requests by verb and resource over a window, the wait for a quiet API, the
tenants Ready, and the floors it compares the operator with."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client as kclient

from benchmarks.meta_calls import GROUP, PLURAL, VERSION, api_client
from whatsapp_testkit.controlplane import ControlPlane

TICKS = os.sysconf("SC_CLK_TCK")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class ProcSample:
    at: float
    cpu_seconds: float
    rss_mb: float
    hwm_mb: float


def sample(pid: int) -> ProcSample:
    stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return ProcSample(
        time.monotonic(),
        (int(stat[11]) + int(stat[12])) / TICKS,  # utime, stime (fields 14, 15)
        int(status["VmRSS"].split()[0]) / 1024,
        int(status["VmHWM"].split()[0]) / 1024,
    )


def cpu_percent(before: ProcSample, after: ProcSample) -> float:
    return 100 * (after.cpu_seconds - before.cpu_seconds) / (after.at - before.at)


def apiserver_requests(metrics: str) -> Counter[tuple[str, str]]:
    """apiserver_request_total summed by (verb, group/resource[/subresource])."""
    counts: Counter[tuple[str, str]] = Counter()
    for line in metrics.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(_LABEL.findall(line.partition("}")[0]))
        resource = "/".join(
            p for p in (labels.get("group"), labels.get("resource"), labels.get("subresource")) if p
        )  # fmt: skip
        counts[labels.get("verb", "?"), resource or "(non-resource)"] += int(
            float(line.rpartition(" ")[2])
        )
    return counts


@dataclass(frozen=True)
class Window:
    seconds: float
    procs: list[tuple[ProcSample, ProcSample]]  # (before, after) per pid
    requests: Counter[tuple[str, str]]  # API server requests in the window


async def measure_window(cp: ControlPlane, pids: list[int], seconds: float) -> Window:
    """Process samples and API server request counts before and after `seconds` of idling."""
    before = [sample(pid) for pid in pids], apiserver_requests(cp.get("/metrics").decode())
    await asyncio.sleep(seconds)
    after = [sample(pid) for pid in pids], apiserver_requests(cp.get("/metrics").decode())
    delta = after[1]
    delta.subtract(before[1])
    delta["GET", "(non-resource)"] -= 1  # our own first scrape
    return Window(
        after[0][0].at - before[0][0].at,
        list(zip(before[0], after[0], strict=True)),
        Counter({k: v for k, v in delta.items() if v > 0}),
    )


OWN = {"coordination.k8s.io/leases", "endpoints"}  # the API server's own writes


async def wait_quiet(cp: ControlPlane, within: float, step: float = 10.0) -> float:
    """Seconds until a `step`-s window passes with no write (PATCH/POST/PUT/DELETE) other than
    the API server's own: the operator has converged, not just reported Ready."""
    started = time.monotonic()
    last = apiserver_requests(cp.get("/metrics").decode())
    while time.monotonic() - started < within:
        await asyncio.sleep(step)
        now = apiserver_requests(cp.get("/metrics").decode())
        writes = sum(
            n - last[verb, res]
            for (verb, res), n in now.items()
            if verb in ("PATCH", "POST", "PUT", "DELETE", "CREATE") and res not in OWN
        )
        if writes == 0:
            return time.monotonic() - started
        last = now
    raise RuntimeError(f"the operator still writes to the API {within:.0f} s after Ready")


async def count_ready(kubeconfig: Path) -> int:
    """Tenants whose stored status has Ready=True (a paged list, 500 at a time)."""
    ready, token = 0, None
    async with await api_client(kubeconfig) as api:
        listing: Callable[..., Awaitable[Any]] = kclient.CustomObjectsApi(
            api
        ).list_cluster_custom_object
        while True:
            more: dict[str, str] = {"_continue": token} if token else {}
            response = await listing(
                GROUP, VERSION, PLURAL, limit=500, _preload_content=False, **more
            )
            page = json.loads(await response.read())
            for item in page["items"]:
                conditions = (item.get("status") or {}).get("conditions") or []
                ready += any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
            token = page["metadata"].get("continue")
            if not token:
                return ready


# The floors, each a child process that prints "listed ..." once it holds every object.
RAW_FLOOR = "raw list+watch holder (kubernetes_asyncio)"
FLOORS = {
    RAW_FLOOR: ["benchmarks.informer_floor"],
    "kopf, the operator's watches and indexes, no work": ["benchmarks.kopf_floor"],
    "kopf, as above + a sleeping daemon per tenant": ["benchmarks.kopf_floor", "--daemons"],
}


async def start_floor(
    command: list[str], kubeconfig: Path, tenants: int, within: float
) -> asyncio.subprocess.Process:
    if command == FLOORS[RAW_FLOOR]:
        args = [*command, str(kubeconfig)]
    else:
        args = [*command, "--tenants", str(tenants)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *args, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path),
             "KUBECONFIG": str(kubeconfig)},
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), within)
    except TimeoutError:
        line = b"(nothing within the time)"
    if not line.startswith(b"listed"):
        proc.kill()
        raise RuntimeError(f"the floor {' '.join(command)} did not list: {line!r}")
    return proc
