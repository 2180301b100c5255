"""The worker heartbeat: a contract shared by the workers (pool membership, shard layout) and
the operator (which config each live worker runs). Published to the topic exchange
`whatsapp.heartbeats` with the pool as routing key, every few seconds, never persistent."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

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
    return json.dumps(body, separators=(",", ":")).encode()


def parse_heartbeat(data: bytes) -> Heartbeat | None:
    """The heartbeat in `data`, or None if it is not one."""
    try:
        body = json.loads(data)
        config_hash = body.get("configHash")
        return Heartbeat(
            worker=str(body["worker"]),
            pool=str(body["pool"]),
            at=float(body["at"]),
            interval=float(body["interval"]),
            shards=tuple(int(s) for s in body.get("shards", ())),
            config_hash=str(config_hash) if config_hash is not None else None,
            tenants=int(body.get("tenants", 0)),
            bye=bool(body.get("bye", False)),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
