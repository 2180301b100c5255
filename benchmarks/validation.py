"""The operator's token check against a raw httpx floor, on the same simulator, same run.

For N tenants, both sides make the same three Graph calls per tenant (debug_token, the
phone number read, and the WABA's phone_numbers page that proves the number is the WABA's)
with the same concurrency: the floor with a bare `httpx.AsyncClient`, the
operator with its `Validator` (GraphClient, error classification, the request budget set
high enough not to bind, the pure judges). The ratio is what the operator's own code costs.
Runs are repeated and medians reported (2 noisy cores).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import httpx

from benchmarks import write_results
from whatsapp_graph.client import PHONE_FIELDS, GraphClient
from whatsapp_operator.meta.budget import RequestBudget
from whatsapp_operator.meta.validation import Validator
from whatsapp_operator.model.spec import parse_spec
from whatsapp_simulator.client import SimulatorAdmin
from whatsapp_testkit.services import GraphSimulator

SCOPES = ["business_management", "whatsapp_business_management", "whatsapp_business_messaging"]


def world(admin: SimulatorAdmin, n: int) -> list[tuple[str, str, str]]:
    admin.add_app("1", "bench")
    tenants = []
    for i in range(n):
        waba, phone, token = f"2{i:09d}", f"3{i:09d}", f"EAAbench{i:08d}{'x' * 180}"
        admin.add_phone(phone, waba_id=waba, display_phone_number=f"+1 555 {i:04d}")
        admin.add_token(token, app_id="1", scopes=SCOPES, targets={s: [waba] for s in SCOPES[1:]})
        tenants.append((waba, phone, token))
    return tenants


async def run_all(jobs: Sequence[Callable[[], Awaitable[object]]], concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[object]]) -> None:
        async with gate:
            await job()

    started = time.perf_counter()
    await asyncio.gather(*(one(j) for j in jobs))
    return time.perf_counter() - started


async def floor(url: str, tenants: list[tuple[str, str, str]], concurrency: int) -> float:
    async with httpx.AsyncClient(base_url=f"{url}/v25.0") as http:

        async def check(waba: str, phone: str, token: str) -> None:
            auth = {"Authorization": f"Bearer {token}"}
            r = await http.get("debug_token", params={"input_token": token}, headers=auth)
            assert r.json()["data"]["is_valid"]
            r = await http.get(phone, params={"fields": ",".join(PHONE_FIELDS)}, headers=auth)
            assert r.status_code == 200
            listed = {"fields": "id", "limit": "100"}
            r = await http.get(f"{waba}/phone_numbers", params=listed, headers=auth)
            assert phone in {n["id"] for n in r.json()["data"]}

        return await run_all([partial(check, w, p, t) for w, p, t in tenants], concurrency)


async def operator(url: str, tenants: list[tuple[str, str, str]], concurrency: int) -> float:
    async with httpx.AsyncClient() as http:
        validator = Validator(
            GraphClient(http, base_url=url), RequestBudget(1e6, 10**6), lambda: datetime.now(UTC)
        )

        async def check(waba: str, phone: str, token: str) -> None:
            spec, _ = parse_spec({"tenantId": "t", "wabaId": waba, "phoneNumberId": phone,
                                  "tokenSecretRef": {"name": "s"}})  # fmt: skip
            assert spec is not None
            result = await validator.check(token, spec)
            assert result.phone_verdict.ok, result.phone_verdict

        return await run_all([partial(check, w, p, t) for w, p, t in tenants], concurrency)


async def main(argv: list[str]) -> None:
    args = argparse.ArgumentParser(prog="benchmarks.validation")
    args.add_argument("--tenants", type=int, default=1000)
    args.add_argument("--concurrency", type=int, default=50)
    args.add_argument("--repeat", type=int, default=3)
    args.add_argument("--latency-ms", type=int, default=20)
    opts = args.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sim = GraphSimulator(Path(tmp) / "sim.log", latency_ms=opts.latency_ms)
        sim.start()
        try:
            with SimulatorAdmin(sim.url) as admin:
                tenants = world(admin, opts.tenants)
            floors, ours = [], []
            for _ in range(opts.repeat):
                floors.append(await floor(sim.url, tenants, opts.concurrency))
                ours.append(await operator(sim.url, tenants, opts.concurrency))
        finally:
            sim.stop()
    f, o = statistics.median(floors), statistics.median(ours)
    table = "\n".join([
        f"# Token checks: {opts.tenants} tenants, 3 Graph calls each, concurrency "
        f"{opts.concurrency}, simulator latency {opts.latency_ms} ms, median of {opts.repeat}",
        "",
        "| client | wall time (s) | checks/s | ratio to floor |",
        "| --- | --- | --- | --- |",
        f"| floor: raw httpx | {f:.2f} | {opts.tenants / f:.0f} | 1.00 |",
        f"| operator: Validator | {o:.2f} | {opts.tenants / o:.0f} | {o / f:.2f} |",
    ])  # fmt: skip
    write_results("validation", table)
