"""Pure formatting for `kubectl whatsapp`: tenant objects in, rows and text out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

NONE = "<none>"  # what kubectl prints for an empty column
COLUMNS = (
    ("NAMESPACE", "namespace"),
    ("NAME", "name"),
    ("TENANT", "tenantId"),
    ("READY", "ready"),
    ("REASON", "reason"),
    ("TOKEN-EXPIRES", "tokenExpires"),
    ("LAST-VALIDATED", "lastValidated"),
    ("WORKERS", "workers"),
)
ORDER = {"False": 0, "Unknown": 1, "": 1, "True": 2}  # the tenants needing a look come first


@dataclass(frozen=True)
class TenantRow:
    namespace: str
    name: str
    tenantId: str
    ready: str  # the Ready condition's status ("" before the operator's first pass)
    reason: str  # the Ready condition's reason when it is not True
    message: str
    tokenExpires: str
    lastValidated: str
    workers: str  # e.g. "2/2 current"; "" without worker heartbeats

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    found = ((obj.get("status") or {}).get("conditions")) or []
    return next((c for c in found if c.get("type") == type_), {})


def tenant_row(obj: Mapping[str, Any]) -> TenantRow:
    meta, spec, status = (obj.get(k) or {} for k in ("metadata", "spec", "status"))
    ready = condition(obj, "Ready")
    token = status.get("token") or {}
    expires = str(token.get("expiresAt") or ("never" if token.get("lastValidatedAt") else ""))
    is_ready = ready.get("status") == "True"
    return TenantRow(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        tenantId=str(spec.get("tenantId", "")),
        ready=str(ready.get("status", "")),
        reason="" if is_ready else str(ready.get("reason", "")),
        message="" if is_ready else str(ready.get("message", "")),
        tokenExpires=expires,
        lastValidated=str(token.get("lastValidatedAt", "")),
        workers=str((status.get("published") or {}).get("workers", "")),
    )


def tenant_rows(objs: Iterable[Mapping[str, Any]]) -> list[TenantRow]:
    rows = [tenant_row(o) for o in objs]
    return sorted(rows, key=lambda r: (ORDER.get(r.ready, 1), r.namespace, r.name))


def parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def relative(text: str, now: datetime) -> str:
    """An RFC 3339 time as kubectl shows ages: "in 3d", "5m ago"; other text as it is."""
    when = parse_time(text) if text else None
    if when is None:
        return text
    seconds = int((when - now).total_seconds())
    span = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if span >= size * (2 if unit != "m" else 1):
            amount = f"{span // size}{unit}"
            break
    else:
        amount = f"{span}s"
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


def table(headers: Sequence[str], lines: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell, three spaces apart, as `kubectl get` prints."""
    cells = [list(headers), *[[c or NONE for c in line] for line in lines]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def status_table(rows: Sequence[TenantRow], now: datetime, *, all_namespaces: bool) -> str:
    columns = [c for c in COLUMNS if all_namespaces or c[1] != "namespace"]
    timed = {"tokenExpires", "lastValidated"}
    lines = [
        [relative(v, now) if f in timed else v for f, v in ((f, getattr(r, f)) for _, f in columns)]
        for r in rows
    ]
    return table([h for h, _ in columns], lines)


def changed_conditions(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[Mapping[str, Any]]:
    """The conditions of `after` that are new or differ from `before` (status, reason,
    message or transition time), in `after`'s order."""
    keys = ("status", "reason", "message", "lastTransitionTime")
    old = {c.get("type"): c for c in ((before.get("status") or {}).get("conditions") or [])}
    return [
        c
        for c in ((after.get("status") or {}).get("conditions") or [])
        if tuple(c.get(k) for k in keys) != tuple(old.get(c.get("type"), {}).get(k) for k in keys)
    ]


def outcome_lines(
    before: Mapping[str, Any], after: Mapping[str, Any], watched: Sequence[str]
) -> list[str]:
    """What a revalidate or refresh did: the conditions that changed or, if none did, the
    watched ones as they stand now (the check confirmed them)."""
    changed = changed_conditions(before, after)
    shown = changed or [c for t in watched if (c := condition(after, t))]
    verb = "changed" if changed else "unchanged"
    return [
        f"{c.get('type')}={c.get('status')} ({c.get('reason')}, {verb}): {c.get('message', '')}"
        for c in shown
    ]


@dataclass(frozen=True)
class Dependency:
    component: str
    state: str
    detail: str


FAILING = ("down", "unreported")  # "off", "unknown" and "throttled" do not fail the check


def dependencies(healthz: Mapping[str, Any], names: Sequence[str]) -> list[Dependency]:
    """The operator's probes (runtime/probes.py) from its /healthz JSON; a probe the operator
    does not report (an older operator) shows as "unreported"."""
    found = []
    for name in names:
        probe = healthz.get(name)
        if isinstance(probe, Mapping):
            found.append(Dependency(name, str(probe.get("state")), str(probe.get("detail", ""))))
        else:
            found.append(Dependency(name, "unreported", "the operator has no such probe"))
    return found


def dependency_table(deps: Sequence[Dependency]) -> str:
    return table(("COMPONENT", "STATE", "DETAIL"), [[d.component, d.state, d.detail] for d in deps])
