"""What each Graph API request did, for the process that owns the client to count.

`GraphClient` calls its observer once per request with the operation's name (the same name
its errors carry: `debug_token`, `phone_number`, `phone_numbers`, `send_message`,
`exchange_token`, ...), an outcome code and the seconds from the request leaving to its
answer (or failure). This package imports no metrics library: the operator and the worker
each wire `RequestCounter` to the counter and histogram of their own Prometheus registry,
under the names below, so the two processes export the same families.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

REQUESTS = "whatsapp_graph_requests"  # prometheus_client adds _total to a counter's name
REQUESTS_HELP = (
    "Graph API requests by operation and outcome code: ok (answered 2xx), Meta's error code, "
    "http_<status> (an HTTP error without Meta's envelope), transport (no answer)"
)
DURATION = "whatsapp_graph_request_duration_seconds"
DURATION_HELP = "Graph API request latency by operation, from sending to the answer or failure"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 30.0)

OK = "ok"
TRANSPORT = "transport"

Observer = Callable[[str, str, float], None]
"""(operation, outcome code, seconds): called once per request, after it ended."""


def http_code(status: int) -> str:
    """The outcome code of an HTTP answer that carried no Meta error code."""
    return f"http_{status}"


class _Counts(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class _Observes(Protocol):
    def observe(self, amount: float) -> None: ...


_Child = TypeVar("_Child", covariant=True)


class _Labelled(Protocol[_Child]):
    def labels(self, *values: str) -> _Child: ...


class RequestCounter:
    """An `Observer` counting into a labelled counter (operation, code) and histogram
    (operation), their children looked up once per label set: a sender calls it per send."""

    __slots__ = ("_counter", "_counts", "_histogram", "_timings")

    def __init__(self, counter: _Labelled[_Counts], histogram: _Labelled[_Observes]) -> None:
        self._counter = counter
        self._histogram = histogram
        self._counts: dict[tuple[str, str], _Counts] = {}
        self._timings: dict[str, _Observes] = {}

    def __call__(self, operation: str, code: str, seconds: float) -> None:
        count = self._counts.get((operation, code))
        if count is None:
            count = self._counts[(operation, code)] = self._counter.labels(operation, code)
        timing = self._timings.get(operation)
        if timing is None:
            timing = self._timings[operation] = self._histogram.labels(operation)
        count.inc()
        timing.observe(seconds)
