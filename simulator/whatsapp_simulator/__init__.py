"""A Graph API simulator: a real HTTP server that behaves like Meta's WhatsApp Cloud API.

Used by tests, benchmarks and the local demo. Start it in-process with
`async with run_simulator() as sim:` (or `SimulatorThread` from sync code), set it up
through `SimulatorAdmin(sim.url)` or directly on `sim.state`, and run the program
`whatsapp-graph-sim --seed examples/simulator-seed.yaml` for the demo. Webhooks (statuses,
customers' messages, notices) go to apps' callback URLs (webhooks.py); `run_recorder` is a
receiver for tests.
"""

from whatsapp_simulator.cli import RunningSimulator, SimulatorThread, run_simulator
from whatsapp_simulator.client import SimulatorAdmin
from whatsapp_simulator.faults import FaultRule, GraphError
from whatsapp_simulator.seed import apply_seed, load_seed
from whatsapp_simulator.server import build_app
from whatsapp_simulator.state import (
    App,
    AuthCode,
    Enforcement,
    ManualClock,
    Message,
    Phone,
    SimState,
    Token,
    Waba,
    fingerprint,
)
from whatsapp_simulator.webhook_model import Delivery, WebhookConfig
from whatsapp_simulator.webhook_recorder import Received, Recorder, run_recorder

__all__ = [
    "App",
    "AuthCode",
    "Delivery",
    "Enforcement",
    "FaultRule",
    "GraphError",
    "ManualClock",
    "Message",
    "Phone",
    "Received",
    "Recorder",
    "RunningSimulator",
    "SimState",
    "SimulatorAdmin",
    "SimulatorThread",
    "Token",
    "Waba",
    "WebhookConfig",
    "apply_seed",
    "build_app",
    "fingerprint",
    "load_seed",
    "run_recorder",
    "run_simulator",
]
