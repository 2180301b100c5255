"""Prometheus metrics of the operator. Labels name tenants (namespace, name, tenant id) and
outcomes; never a token."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator, Sized
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Metric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from whatsapp_graph import observe as graph

TENANT_LABELS = ("namespace", "name", "tenant_id")
# name -> help of the per-tenant gauges (served by `TenantGauges`)
TOKEN_EXPIRY = "whatsapp_tenant_token_expiry_timestamp_seconds"
TOKEN_RENEWAL = "whatsapp_tenant_token_renewal_timestamp_seconds"
READY = "whatsapp_tenant_ready"
SENDING_BLOCKED = "whatsapp_tenant_sending_blocked"  # its own family: one more label, `code`
SENDING_BLOCKED_HELP = (
    "1 while Meta blocks sending from the tenant's number (code: Meta's error code); absent "
    "otherwise"
)
CONDITION = "whatsapp_tenant_condition"  # its own family: type, status, reason
CONDITION_HELP = (
    "1 for each condition of the tenant's status, labelled with its type, status and reason "
    "(reason empty when the condition has none)"
)
_TENANT_HELP = {
    TOKEN_EXPIRY: "When the tenant's access token expires (unix seconds); absent for "
    "never-expiring tokens",
    TOKEN_RENEWAL: "When the tenant's access token is due for renewal (unix seconds)",
    READY: "1 when the tenant is Ready, else 0",
}


@dataclass(frozen=True, slots=True)
class _TenantFacts:
    tenant_id: str
    ready: bool
    expiry: float | None
    renewal: float | None
    blocked_code: int | None = None
    conditions: tuple[tuple[str, str, str], ...] = ()  # (type, status, reason), shared


# Condition sets seen so far, each kept once: most tenants share a handful of them (all Ready,
# or the same few failing reasons), so a tenant's record holds a reference, not its own tuples.
_CONDITION_SETS: dict[tuple[tuple[str, str, str], ...], tuple[tuple[str, str, str], ...]] = {}
_CONDITION_SETS_MAX = 4096  # beyond it (free-text reasons?) sets are kept per tenant


def _conditions(conditions: object) -> tuple[tuple[str, str, str], ...]:
    """The (type, status, reason) of each well-formed condition, in the status's order."""
    if not isinstance(conditions, list):
        return ()
    found = tuple(
        (sys.intern(c["type"]), sys.intern(str(c.get("status", ""))),
         sys.intern(str(c.get("reason") or "")))
        for c in conditions
        if isinstance(c, dict) and isinstance(c.get("type"), str)
    )  # fmt: skip
    shared = _CONDITION_SETS.get(found)
    if shared is not None:
        return shared
    if len(_CONDITION_SETS) < _CONDITION_SETS_MAX:
        _CONDITION_SETS[found] = found
    return found


def _esc(value: str) -> str:
    """A label value as the exposition formats quote it."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


class Paused(Protocol):
    """kopf's `operator_paused` toggle set (runtime/toggles.paused_set): on while peering
    pauses this replica."""

    def is_on(self) -> bool: ...

    async def wait_for(self, __state: bool) -> None: ...


class TenantGauges(Collector):
    """The per-tenant gauges, built from one small record per tenant at each scrape.

    prometheus-client's labelled Gauge keeps a child object per label set (with its own lock
    and value): three per tenant with an expiring token took 2,170 bytes (22 MB at 10,000
    tenants); a record here, its key strings included, 228 (tests/unit/test_metrics.py). A
    scrape renders the same samples the children would have.

    Only the active replica exports them: while kopf's peering pauses this replica (`paused`
    on) the families have no samples and the records are dropped (`follow_leadership`). A
    standby's copies would be frozen at its last pass, yet look current to Prometheus (a
    gauge has no age): every per-tenant alert would fire, or stay resolved, once per replica
    on stale data. Absent series are what Prometheus users expect of a non-leader (as
    kube-state-metrics' shards or leader-elected exporters do): the leader's series are the
    truth, and `whatsapp_operator_leader` says which replica that is."""

    def __init__(self) -> None:
        self.tenants: dict[tuple[str, str], _TenantFacts] = {}
        self.rendered_elsewhere = threading.local()  # set by the thread serving /metrics
        self.paused: Paused | None = None  # None: never paused (standalone, or not started)

    def leading(self) -> bool:
        """Whether this replica is the active one (always, without peering)."""
        return self.paused is None or not self.paused.is_on()

    def render(self) -> str:
        """The same families as `collect`, as exposition text (identical in Prometheus's text
        format and in OpenMetrics: gauges only, no `# EOF`). prometheus-client spent ~30 µs
        per sample building and formatting them (2.9 s at 10,000 tenants with 8 conditions,
        80 % of it in the conditions); this writes each tenant's labels once per scrape."""
        parts: dict[str, list[str]] = {name: [] for name in (*_TENANT_HELP, SENDING_BLOCKED)}
        conditions: list[str] = []
        suffixes: dict[int, list[str]] = {}  # id of a shared condition set -> its lines' ends
        for (namespace, name), facts in self._current():
            tenant = _esc(facts.tenant_id)
            labels = f'{{namespace="{_esc(namespace)}",name="{_esc(name)}",tenant_id="{tenant}"'
            parts[READY].append(f"{READY}{labels}}} {'1.0' if facts.ready else '0.0'}\n")
            if facts.expiry is not None:
                parts[TOKEN_EXPIRY].append(f"{TOKEN_EXPIRY}{labels}}} {_number(facts.expiry)}\n")
            if facts.renewal is not None:
                parts[TOKEN_RENEWAL].append(f"{TOKEN_RENEWAL}{labels}}} {_number(facts.renewal)}\n")
            if facts.blocked_code is not None:
                parts[SENDING_BLOCKED].append(
                    f'{SENDING_BLOCKED}{labels},code="{facts.blocked_code}"}} 1.0\n'
                )
            if facts.conditions:
                lines = suffixes.get(id(facts.conditions))
                if lines is None:
                    lines = suffixes[id(facts.conditions)] = [
                        f',type="{_esc(t)}",status="{_esc(s)}",reason="{_esc(r)}"}} 1.0\n'
                        for t, s, r in facts.conditions
                    ]
                head = f"{CONDITION}{labels}"
                conditions.append(head + head.join(lines))
        parts[CONDITION] = conditions
        docs = {**_TENANT_HELP, SENDING_BLOCKED: SENDING_BLOCKED_HELP, CONDITION: CONDITION_HELP}
        return "".join(
            f"# HELP {name} {_help(docs[name])}\n# TYPE {name} gauge\n{''.join(lines)}"
            for name, lines in parts.items()
        )

    def _current(self) -> list[tuple[tuple[str, str], _TenantFacts]]:
        """The records to export: a copy (scrapes run on their own thread), none when paused."""
        if not self.leading():
            return []
        return list(self.tenants.items())

    def _families(self) -> dict[str, GaugeMetricFamily]:
        families = {
            name: GaugeMetricFamily(name, doc, labels=TENANT_LABELS)
            for name, doc in _TENANT_HELP.items()
        }
        families[SENDING_BLOCKED] = GaugeMetricFamily(
            SENDING_BLOCKED, SENDING_BLOCKED_HELP, labels=(*TENANT_LABELS, "code")
        )
        families[CONDITION] = GaugeMetricFamily(
            CONDITION, CONDITION_HELP, labels=(*TENANT_LABELS, "type", "status", "reason")
        )
        return families

    def describe(self) -> Iterator[Metric]:
        return iter(self._families().values())

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        if getattr(self.rendered_elsewhere, "now", False):
            return iter(())  # metrics_http renders these families itself (`render`)
        for (namespace, name), facts in self._current():
            labels = [namespace, name, facts.tenant_id]
            families[READY].add_metric(labels, 1.0 if facts.ready else 0.0)
            if facts.expiry is not None:
                families[TOKEN_EXPIRY].add_metric(labels, facts.expiry)
            if facts.renewal is not None:
                families[TOKEN_RENEWAL].add_metric(labels, facts.renewal)
            if facts.blocked_code is not None:
                families[SENDING_BLOCKED].add_metric([*labels, str(facts.blocked_code)], 1.0)
            condition = families[CONDITION]
            for kind, status, reason in facts.conditions:
                condition.add_metric([*labels, kind, status, reason], 1.0)
        return iter(families.values())


TENANTS = TenantGauges()
REGISTRY.register(TENANTS)

LEADER = Gauge(
    "whatsapp_operator_leader",
    "1 while this replica is the active one (standalone, or no peer of higher priority in "
    "kopf's peering), 0 while peering pauses it; a paused replica exports no per-tenant series",
)


def watch_leadership(paused: Paused | None) -> list[asyncio.Task[None]]:
    """Export `whatsapp_operator_leader` and the tenant gauges by kopf's `operator_paused`
    (None: standalone, always the leader), read at each scrape; the task that drops the
    tenant records at each pause (`follow_leadership`), when there is a pause to follow."""
    TENANTS.paused = paused
    LEADER.set_function(lambda: 1.0 if TENANTS.leading() else 0.0)
    if paused is None:
        return []
    return [asyncio.create_task(follow_leadership(paused), name="leadership")]


async def follow_leadership(paused: Paused) -> None:
    """Forever: drop the tenant records each time peering pauses this replica, so that a
    tenant deleted meanwhile is not exported again once it resumes (the passes it runs then
    record every tenant anew)."""
    while True:
        await paused.wait_for(True)
        TENANTS.tenants.clear()
        await paused.wait_for(False)


class _Database(Protocol):
    @property
    def available(self) -> bool: ...


class _RowSync(Protocol):
    @property
    def db(self) -> _Database: ...

    @property
    def health(self) -> _Database: ...


def postgres_up(rows: _RowSync | None) -> float | None:
    """`whatsapp_operator_postgres_up`: None without a database (not exported), else 1 while
    the operator's last database operation got through (the row sync's health: a failed sync
    or probe; the pool's: a broken connection in any operation, the drift pass's query each
    --drift-interval included), 0 from a failure until a probe gets through."""
    if rows is None:
        return None
    return 1.0 if rows.health.available and rows.db.available else 0.0


POSTGRES_UP = "whatsapp_operator_postgres_up"
POSTGRES_UP_HELP = (
    "1 while PostgreSQL answers the operator's database operations and health checks, 0 "
    "from a failed one until a probe gets through; absent without a database URL"
)


class _PostgresUp(Collector):
    def __init__(self) -> None:
        self.rows: _RowSync | None = None

    def collect(self) -> Iterator[Metric]:
        value = postgres_up(self.rows)
        if value is None:
            return iter(())
        family = GaugeMetricFamily(POSTGRES_UP, POSTGRES_UP_HELP)
        family.add_metric([], value)
        return iter((family,))


POSTGRES = _PostgresUp()
REGISTRY.register(POSTGRES)


def watch_postgres(rows: _RowSync | None) -> None:
    """Export `whatsapp_operator_postgres_up` from the row sync (None: no database)."""
    POSTGRES.rows = rows


RECONCILES = Counter("whatsapp_operator_reconciles_total", "Tenant reconciles", ["result"])
WAKES = Counter(
    "whatsapp_operator_wakes_total", "Tenant passes run before their timer, by why", ["reason"]
)
REFRESHES = Counter("whatsapp_operator_token_refreshes_total", "Token refreshes", ["result"])
SIGNALS = Counter(
    "whatsapp_operator_signals_total",
    "Tenant signals from the sender workers, by kind and what the operator did with them",
    ["kind", "outcome"],
)

POOL_WORKERS = Gauge(
    "whatsapp_operator_pool_workers",
    "Live sender workers of a pool, by whether they run the published config",
    ["pool", "config"],
)


GRAPH_REQUESTS = Counter(graph.REQUESTS, graph.REQUESTS_HELP, ["operation", "code"])
GRAPH_SECONDS = Histogram(
    graph.DURATION, graph.DURATION_HELP, ["operation"], buckets=graph.LATENCY_BUCKETS
)
GRAPH_OBSERVER = graph.RequestCounter(GRAPH_REQUESTS, GRAPH_SECONDS)  # the GraphClient's

RECONCILE_SECONDS = Histogram(
    "whatsapp_operator_reconcile_duration_seconds",
    "One tenant's reconcile pass, from its start to its end (passes that raised included, "
    "cancelled ones not)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
QUEUE_WAIT = Histogram(
    "whatsapp_operator_reconcile_queue_wait_seconds",
    "From a tenant's pass falling due (its timer, or a wake) to the pass starting: the wait "
    "for a free place among --max-concurrent-reconciles and for the event loop",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0),
)

RUNNING = Gauge(
    "whatsapp_operator_reconciles_running",
    "Tenant reconcile passes running now (at most --max-concurrent-reconciles)",
)
SCHEDULED = Gauge(
    "whatsapp_operator_tenants_scheduled", "Tenants whose reconcile passes the operator runs"
)


class _SchedulerView(Protocol):
    running: int

    @property
    def slots(self) -> Sized: ...


def watch_scheduler(scheduler: _SchedulerView) -> None:
    """Read the scheduler's counts at each scrape."""
    RUNNING.set_function(lambda: scheduler.running)
    SCHEDULED.set_function(lambda: len(scheduler.slots))


def set_pool_workers(pool: str, *, current: int, stale: int) -> None:
    POOL_WORKERS.labels(pool, "current").set(current)
    POOL_WORKERS.labels(pool, "stale").set(stale)


def serve(port: int, host: str) -> None:
    if port:
        from whatsapp_operator.runtime import metrics_http  # it imports this module

        metrics_http.serve(port, host)


def observe(namespace: str, name: str, tenant_id: str, status: dict[str, object]) -> None:
    """Record a tenant's status (called after each reconcile; not while paused: a pass
    cancelled by the pause may end after the records were dropped)."""
    from whatsapp_operator.model.recheck import parse_time

    if not TENANTS.leading():
        return

    token = status.get("token") if isinstance(status.get("token"), dict) else {}
    assert isinstance(token, dict)
    expiry, renewal = (parse_time(token.get(key)) for key in ("expiresAt", "renewalTime"))
    conditions = status.get("conditions") or []
    ready = any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in conditions  # type: ignore[attr-defined]
    )
    block = status.get("sendingBlock")
    code = block.get("code") if isinstance(block, dict) else None
    TENANTS.tenants[(namespace, name)] = _TenantFacts(
        tenant_id,
        ready,
        expiry.timestamp() if expiry is not None else None,
        renewal.timestamp() if renewal is not None else None,
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        _conditions(conditions),
    )


def forget(namespace: str, name: str) -> None:
    TENANTS.tenants.pop((namespace, name), None)
