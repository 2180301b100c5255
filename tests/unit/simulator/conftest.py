"""The Graph API simulator's unit tests: one running simulator per test, on a seeded SimState,
and an httpx client for it.

    clock       a ManualClock (at its default start)
    sim_state   the world: examples/simulator-seed.yaml on `clock`
    sim         the simulator serving `sim_state` on a free loopback port
    http        an httpx.AsyncClient on `sim`: base URL `sim.url + http_root`, a bearer token
                `http_token` (none when None)
    admin       an httpx.AsyncClient on `sim`'s admin API (/_sim)
    recorder    a webhook receiver in this process (whatsapp_simulator.webhook_recorder) that
                answers the verification GET for RECORDER_TOKEN
    subscribed_sim_state
                the seeded world with the seed's app calling back `recorder`, its WABA
                subscribed to the app, and fast webhook timings (webhook_world.FAST)

A module changes its world by overriding `clock`, `sim_state` (it may ask for the seeded one
under the same name and add to it, or return `subscribed_sim_state`), `http_root` or
`http_token`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from webhook_world import APP, FAST, WABA

from whatsapp_simulator import (
    ManualClock,
    RunningSimulator,
    SimState,
    apply_seed,
    load_seed,
    run_simulator,
)
from whatsapp_simulator.webhook_recorder import Recorder, run_recorder

SEED = Path(__file__).parents[3] / "examples" / "simulator-seed.yaml"
SEED_TOKEN = "EAAdemoTOKEN0000000000000000000000000000000000000000000001"  # the seed's token
RECORDER_TOKEN = "verify-me"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim_state(clock: ManualClock) -> SimState:
    return apply_seed(SimState(clock=clock), load_seed(SEED))


@pytest.fixture
def subscribed_sim_state(clock: ManualClock, recorder: Recorder) -> SimState:
    state = apply_seed(SimState(clock=clock), load_seed(SEED))
    state.apps[APP].callback_url = recorder.url
    state.wabas[WABA].subscribed_apps = [APP]
    state.config.webhooks.__dict__.update(FAST)
    state.webhooks.reseed()
    return state


@pytest.fixture
async def sim(sim_state: SimState) -> AsyncIterator[RunningSimulator]:
    async with run_simulator(state=sim_state) as running:
        yield running


@pytest.fixture
def http_root() -> str:
    """What `http`'s base URL adds to the simulator's: "" or a version, "/v25.0"."""
    return "/v25.0"


@pytest.fixture
def http_token() -> str | None:
    return SEED_TOKEN


@pytest.fixture
async def http(
    sim: RunningSimulator, http_root: str, http_token: str | None
) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {http_token}"} if http_token else {}
    async with httpx.AsyncClient(
        base_url=f"{sim.url}{http_root}", headers=headers, timeout=5.0
    ) as client:
        yield client


@pytest.fixture
async def admin(sim: RunningSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.admin_url, timeout=10.0) as client:
        yield client


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    async with run_recorder(verify_token=RECORDER_TOKEN) as running:
        yield running
