"""What the operator sees of its dependencies, in kopf's health endpoint (`/healthz`).

Each probe reads state the operator already keeps (never a new call to the dependency), so
the endpoint stays cheap and `kubectl whatsapp check` shows the operator's own view:

- postgresql: the row sync's connection pool (down after a failed connection, until a probe
  gets through);
- rabbitmq: whether the heartbeat listener is consuming, and the live workers it hears;
- graph: what the last Graph API call of a tenant check met, and when.

A probe must never raise: kopf would fail the whole endpoint, and the pod's liveness with it.
"""

from __future__ import annotations

from typing import Any

import kopf

from whatsapp_operator.model.conditions import rfc3339

OFF, UP, DOWN = "off", "up", "down"


def _probe(state: str, detail: str) -> dict[str, str]:
    return {"state": state, "detail": detail}


STARTING = {"state": "unknown", "detail": "the operator is starting"}


def postgresql(runtime: Any) -> dict[str, str]:
    if runtime is None:
        return STARTING
    rows = getattr(runtime, "rows", None)
    if rows is None:
        return _probe(OFF, "no database URL: PostgreSQL sync off")
    if rows.db.available:
        return _probe(UP, f"connected ({rows.db.writes} row writes)")
    return _probe(DOWN, "the last connection attempt failed")


def rabbitmq(runtime: Any) -> dict[str, str]:
    if runtime is None:
        return STARTING
    listener = getattr(runtime, "convergence", None)
    if listener is None:
        return _probe(OFF, "no AMQP URL: worker heartbeats not read")
    if not listener.connected:
        return _probe(DOWN, "not consuming worker heartbeats")
    pools = ", ".join(f"{p}: {c.describe()}" for p, c in sorted(listener.summary.items()))
    return _probe(UP, f"consuming worker heartbeats ({pools or 'no live workers'})")


def graph(runtime: Any) -> dict[str, str]:
    if runtime is None:
        return STARTING
    validator = getattr(runtime, "validator", None)
    last = getattr(validator, "last_graph", None)
    if last is None:
        return _probe("unknown", "no Graph API call made yet")
    what, when = last
    state = {"answered": UP, "throttled": "throttled"}.get(what, DOWN)
    return _probe(state, f"last call {what} at {rfc3339(when)}")


@kopf.on.probe(id="postgresql")
async def probe_postgresql(memo: Any, **_: Any) -> dict[str, str]:
    return postgresql(getattr(memo, "runtime", None))


@kopf.on.probe(id="rabbitmq")
async def probe_rabbitmq(memo: Any, **_: Any) -> dict[str, str]:
    return rabbitmq(getattr(memo, "runtime", None))


@kopf.on.probe(id="graph")
async def probe_graph(memo: Any, **_: Any) -> dict[str, str]:
    return graph(getattr(memo, "runtime", None))
