"""Which worker process consumes which queue shard of its pool: pure decisions, no I/O.

Every worker publishes a heartbeat (its id, the shards it holds, its config hash) and hears
everyone else's, so each one knows the live members of its pool. The target layout is
deterministic: shards dealt round-robin over the sorted live workers, so replicas agree on it
without talking to each other, and two workers hold 4 shards each out of 8.

A worker releases a shard whose target is someone else (after finishing what it has started:
`queue_shards.py` drains before closing the shard's channel) and claims a shard whose target is
itself. A shard consumer is exclusive at the broker, so a claim made while the old owner is
still draining is refused and simply tried again on the next tick: never two consumers. A
shard that nobody has held for `orphan_after` seconds is claimed by anyone, so a wrong view
of the membership can delay a shard but never strand it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from whatsapp_contract.heartbeat import Heartbeat


@dataclass
class Membership:
    """The latest heartbeat of every worker of one pool."""

    pool: str
    beats: dict[str, Heartbeat] = field(default_factory=dict)

    def observe(self, beat: Heartbeat) -> None:
        if beat.pool != self.pool:
            return
        if beat.bye:
            self.forget(beat.worker)
            return
        known = self.beats.get(beat.worker)
        if known is None or beat.at >= known.at:
            self.beats[beat.worker] = beat

    def forget(self, worker: str) -> None:
        """A worker said goodbye (a clean shutdown): do not wait for its heartbeat to age."""
        self.beats.pop(worker, None)

    def live(self, now: float) -> dict[str, Heartbeat]:
        for worker in [w for w, b in self.beats.items() if not b.alive(now, misses=10)]:
            del self.beats[worker]  # long dead: keep the table small
        return {w: b for w, b in self.beats.items() if b.alive(now)}


def target_layout(shards: int, workers: Iterable[str]) -> dict[int, str]:
    """shard -> the worker that should hold it, for the given live workers."""
    ordered = sorted(set(workers))
    if not ordered:
        return {}
    return {shard: ordered[shard % len(ordered)] for shard in range(shards)}


@dataclass(frozen=True)
class Plan:
    claim: tuple[int, ...] = ()
    release: tuple[int, ...] = ()


def plan(
    *,
    me: str,
    shards: int,
    live: Mapping[str, Heartbeat],
    held: Iterable[int],
    unheld_since: Mapping[int, float],
    now: float,
    orphan_after: float,
) -> Plan:
    """What `me` should claim and release now.

    `live` are the live workers' latest heartbeats (including me once I have sent one);
    `unheld_since` says since when each shard has had no consumer, as far as I have seen
    (a shard absent from it is held by someone).
    """
    mine = set(held)
    target = target_layout(shards, set(live) | {me})
    release = sorted(s for s in mine if target.get(s) != me)
    claim = []
    for shard in range(shards):
        if shard in mine:
            continue
        since = unheld_since.get(shard)
        if since is None:
            continue  # someone holds it
        if target.get(shard) == me or now - since >= orphan_after:
            claim.append(shard)
    return Plan(claim=tuple(claim), release=tuple(release))
