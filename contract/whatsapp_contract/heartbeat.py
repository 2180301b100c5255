"""The worker heartbeat: a contract shared by the workers (pool membership, shard layout) and
the operator (which config each live worker runs). Published to the topic exchange
`whatsapp.heartbeats` with the pool as routing key, every few seconds, never persistent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from whatsapp_contract.wire import dump, load_object

EXCHANGE = "whatsapp.heartbeats"


@dataclass(frozen=True)
class Heartbeat:
    worker: str
    pool: str
    at: float  # the sender's wall clock
    interval: float
    shards: tuple[int, ...] = ()
    config_hash: str | None = None
    tenants: int = 0
    bye: bool = False  # a clean shutdown: forget this worker now

    def alive(self, now: float, misses: float = 3.0) -> bool:
        return not self.bye and now - self.at <= self.interval * misses


def dump_heartbeat(beat: Heartbeat) -> bytes:
    body: dict[str, Any] = {
        "worker": beat.worker,
        "pool": beat.pool,
        "at": beat.at,
        "interval": beat.interval,
        "shards": list(beat.shards),
        "configHash": beat.config_hash,
        "tenants": beat.tenants,
    }
    if beat.bye:
        body["bye"] = True
    return dump(body)


def parse_heartbeat(data: bytes) -> Heartbeat | None:
    """The heartbeat in `data`, or None if it is not one."""
    body = load_object(data)
    if body is None:
        return None
    worker, pool, at, interval = (body.get(k) for k in ("worker", "pool", "at", "interval"))
    shards, config_hash = body.get("shards", []), body.get("configHash")
    tenants, bye = body.get("tenants", 0), body.get("bye", False)
    if not (
        isinstance(worker, str) and worker and isinstance(pool, str) and pool
        and _number(at) and _number(interval)
        and isinstance(shards, list) and all(_integer(s) for s in shards)
        and (config_hash is None or isinstance(config_hash, str))
        and _integer(tenants) and isinstance(bye, bool)
    ):  # fmt: skip
        return None
    assert isinstance(at, int | float)
    assert isinstance(interval, int | float)
    return Heartbeat(
        worker=worker,
        pool=pool,
        at=float(at),
        interval=float(interval),
        shards=tuple(shards),
        config_hash=config_hash,
        tenants=tenants,
        bye=bye,
    )


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
