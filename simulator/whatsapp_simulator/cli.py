"""Running the simulator: in-process for async tests, in a thread for sync tests and
benchmarks, or as the `whatsapp-graph-sim` program for the local demo."""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import importlib
import importlib.util
import logging
import os
import re
import signal
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from whatsapp_simulator.seed import apply_seed, apply_webhooks, load_seed
from whatsapp_simulator.server import build_app
from whatsapp_simulator.state import SimState, fingerprint

log = logging.getLogger("whatsapp_simulator")
T = TypeVar("T")
SHUTDOWN_SECONDS = 1.0
ADMIN_TOKENS = "/_sim/tokens/"
FINGERPRINT = re.compile(r"[0-9a-f]{12}|revoke|expire")


class PathOnlyAccessLogger(AbstractAccessLogger):
    """Access log without query strings, which may carry tokens (`access_token=`), and
    with the token in admin paths (/_sim/tokens/{token}) shown as its fingerprint."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = request.path
        if path.startswith(ADMIN_TOKENS):
            key = path[len(ADMIN_TOKENS) :]
            path = ADMIN_TOKENS + (key if FINGERPRINT.fullmatch(key) else fingerprint(key))
        self.logger.debug("%s %s %s %.1fms", request.method, path, response.status, time * 1000)


@dataclass
class RunningSimulator:
    host: str
    port: int
    state: SimState

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"{self.url}/_sim"


@asynccontextmanager
async def run_simulator(
    host: str = "127.0.0.1", port: int = 0, state: SimState | None = None
) -> AsyncIterator[RunningSimulator]:
    """Serve the simulator on the running loop; `port=0` picks a free port.

    `async with run_simulator() as sim:` then talk to `sim.url`, inspect `sim.state`.
    """
    sim_state = state if state is not None else SimState()
    access_log = log if log.isEnabledFor(logging.DEBUG) else None
    runner = web.AppRunner(
        build_app(sim_state),
        access_log_class=PathOnlyAccessLogger,
        access_log=access_log,
        handler_cancellation=True,  # a client that gives up ends a hanging fault
        shutdown_timeout=SHUTDOWN_SECONDS,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = int(runner.addresses[0][1])
        yield RunningSimulator(host=host, port=bound, state=sim_state)
    finally:
        await runner.cleanup()


class SimulatorThread:
    """The simulator on its own event loop in a daemon thread, for synchronous code.

    Use the admin API (or `call`) to change the state: the loop thread owns it.
    """

    def __init__(
        self, state: SimState | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.state = state if state is not None else SimState()
        self._host, self._port = host, port
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._sim: RunningSimulator | None = None
        self._thread = threading.Thread(target=self._run, name="graph-simulator", daemon=True)

    @property
    def url(self) -> str:
        assert self._sim is not None, "the simulator thread is not running"
        return self._sim.url

    @property
    def port(self) -> int:
        assert self._sim is not None, "the simulator thread is not running"
        return self._sim.port

    def start(self, timeout: float = 10.0) -> SimulatorThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the simulator did not start in time")
        if self._error is not None:
            raise RuntimeError("the simulator failed to start") from self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def call(self, fn: Callable[[SimState], T], timeout: float = 10.0) -> T:
        """Run `fn(state)` on the simulator's loop and return its result."""
        assert self._loop is not None, "the simulator thread is not running"
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(self.state))
            except Exception as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result(timeout)

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start(); the thread just ends
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with run_simulator(self._host, self._port, self.state) as sim:
            self._sim = sim
            self._ready.set()
            await self._stop.wait()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="whatsapp-graph-sim", description="Simulate Meta's WhatsApp Cloud API (Graph API)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--seed", type=Path, help="YAML or JSON seed file")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="default added latency")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    parser.add_argument(
        "--webhook",
        action="append",
        default=[],
        metavar="SETTING=VALUE",
        help="a webhook setting (docs/simulator.md), e.g. read_ratio=0.5; repeatable",
    )
    parser.add_argument(
        "--log-level", default="INFO", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser.parse_args(argv)


def webhook_settings(items: Sequence[str]) -> dict[str, str]:
    """`--webhook read_ratio=0.5 --webhook seed=7` -> {"read_ratio": "0.5", "seed": "7"}."""
    settings = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--webhook takes SETTING=VALUE, got {item!r}")
        settings[name.strip()] = value.strip()
    return settings


def write_port_file(path: Path, port: int) -> None:
    """Atomically, so a reader polling for the file never sees it half written."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(f"{port}\n", encoding="utf-8")
    os.replace(partial, path)


async def serve(args: argparse.Namespace, state: SimState) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with run_simulator(args.host, args.port, state) as sim:
        if args.port_file is not None:
            write_port_file(args.port_file, sim.port)
        print(f"whatsapp-graph-sim listening on {sim.url}", flush=True)
        await stop.wait()
        log.info("stopping")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when uvloop happens to be installed; asyncio's otherwise."""
    if importlib.util.find_spec("uvloop") is None:
        return None
    uvloop: Any = importlib.import_module("uvloop")
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    state = SimState()
    if args.seed is not None:
        apply_seed(state, load_seed(args.seed))
    if args.latency_ms:
        state.config.default_latency_ms = args.latency_ms
    apply_webhooks(state, webhook_settings(args.webhook))
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve(args, state))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
