"""The table benchmarks/reconcile.py writes: medians and percentiles of the runs, the goals,
the operator's wakes, and the token propagation."""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable
from typing import Any

from benchmarks.reconcile_runs import Bulk


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    return sorted(values)[max(0, math.ceil(q * len(values)) - 1)]


def med(runs: list[Bulk], pick: Callable[[Bulk], float]) -> float:
    return statistics.median(pick(b) for b in runs)


def bulk_lines(
    results: dict[int, tuple[list[Bulk], list[Bulk]]],
) -> tuple[list[str], list[str], list[str], list[str]]:
    """The table's rows, then per size: the goals met (from 1000 tenants), the runs, the
    operator's wakes."""
    rows, verdicts, runs, wakes = [], [], [], []
    for n, (floors, ours) in results.items():
        base = med(floors, lambda b: b.done)
        for label, bulks in (("floor: raw async client", floors),
                             ("whatsapp-operator (Ready, row, published)", ours)):  # fmt: skip
            done = med(bulks, lambda b: b.done)
            rows.append(
                f"| {n} | {label} | {med(bulks, lambda b: b.created):.2f} | {done:.2f} | "
                f"{done / base:.2f} | {med(bulks, lambda b: pct(b.latencies, 0.5)):.2f} | "
                f"{med(bulks, lambda b: pct(b.latencies, 0.95)):.2f} | "
                f"{med(bulks, lambda b: b.graph_calls):.1f} | "
                f"{med(bulks, lambda b: b.passes):.1f} |"
            )
        done = med(ours, lambda b: b.done)
        reasons = sorted({r for b in ours for r in b.wakes})
        per_reason = {r: statistics.median(b.wakes.get(r, 0.0) for b in ours) for r in reasons}
        wakes.append(f"{n}: " + (", ".join(f"{r} {v:.2f}" for r, v in per_reason.items())
                                 or "none"))  # fmt: skip
        runs.append(f"{n}: floor {', '.join(f'{b.done:.2f}' for b in floors)}; operator "
                    f"{', '.join(f'{b.done:.2f}' for b in ours)}")  # fmt: skip
        if n >= 1000:
            verdicts.append(
                f"Goals at {n} tenants: all Ready <= 30 s: {'met' if done <= 30 else 'MISSED'} "
                f"({done:.1f} s); <= 2x the floor: {'met' if done <= 2 * base else 'MISSED'} "
                f"({done / base:.2f}x)."
            )
    return rows, verdicts, runs, wakes


def propagation_lines(opts: argparse.Namespace, results: dict[int, Any],
                      propagation: tuple[list[float], list[float]]) -> list[str]:  # fmt: skip
    """The propagation table (none when it was not measured)."""
    to_row, to_shard = propagation
    if not to_row:
        return []
    return [
        "",
        f"# Propagation: {len(to_row)} tokens replaced one at a time among "
        f"{max(results)} Ready tenants ({opts.gap:g} s apart), goal <= 2 s",
        "",
        "| from the Secret write to the new token in | p50 (s) | p95 (s) | max (s) |",
        "| --- | --- | --- | --- |",
        *(f"| {what} | {pct(v, 0.5):.2f} | {pct(v, 0.95):.2f} | {max(v):.2f} |"
          for what, v in (("the PostgreSQL row (token_fingerprint)", to_row),
                          ("the published resolved config shard", to_shard))),
    ]  # fmt: skip


def report(opts: argparse.Namespace, results: dict[int, tuple[list[Bulk], list[Bulk]]],
           propagation: tuple[list[float], list[float]]) -> str:  # fmt: skip
    rows, verdicts, runs, wakes = bulk_lines(results)
    lines = [
        f"# Bulk reconcile: N tenants created at once, simulator latency {opts.latency_ms} ms, "
        f"operator Graph budget {opts.graph_rate:g} req/s burst {opts.graph_rate:g} (never "
        f"binding: the operator's own cost), {opts.concurrency} in flight for the floor and the "
        f"creates, median of {opts.repeat}",
        "",
        "| tenants | client | objects created (s) | all done (s) | ratio to floor | per tenant "
        "p50 (s) | per tenant p95 (s) | Graph calls / tenant | passes / tenant |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        *verdicts,
        f"Runs, all done (s): {' | '.join(runs)}.",
        f"The operator's wakes per tenant, by reason (median): {' | '.join(wakes)}.",
    ]
    lines += propagation_lines(opts, results, propagation)
    lines += ["", "Method: see the docstring of benchmarks/reconcile.py. 'All done' runs from "
              "the first create; the operator's is seen by a poll every "
              f"{opts.poll:g} s (the floor's when its last status patch returns). Per tenant: "
              "done minus the tenant's own create. Passes: the operator's reconcile passes "
              "(whatsapp_operator_reconciles_total)."]  # fmt: skip
    return "\n".join(lines)
