"""The token stage of a tenant's pass: renewal (refresh or warnings), the retirement of the
previous token, and the Graph API version's end of life. It plans from the gathered facts
(the pure decisions are in rotation.py and whatsapp_graph.versions), applies (refresh.py) and
is reported by `rotation.rotation_fragment`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from whatsapp_graph.versions import VersionState, version_state
from whatsapp_operator.model import conditions as c
from whatsapp_operator.model.conditions import Condition
from whatsapp_operator.model.facts import CheckResult
from whatsapp_operator.model.secret_data import ResolvedToken
from whatsapp_operator.model.spec import REFRESH_ANNOTATION, TenantSpec
from whatsapp_operator.runtime import metrics
from whatsapp_operator.runtime.kube import SecretSnapshot
from whatsapp_operator.tokens.refresh import PREVIOUS_KEY, Refresher, RefreshError
from whatsapp_operator.tokens.rotation import (
    RotationInputs,
    RotationState,
    TokenTimes,
    after_refresh,
    refresh_due,
    renewal_time,
    retired,
)


def refresh_requested(meta: Mapping[str, Any]) -> bool:
    return REFRESH_ANNOTATION in (meta.get("annotations") or {})


def _token_ok(check: CheckResult | None, status: Mapping[str, Any]) -> bool:
    if check is not None:
        return check.token_verdict.ok
    stored = c.find(status.get("conditions") or (), c.TOKEN_VALID)
    return stored is not None and stored.get("status") == "True"


def _times(
    check: CheckResult | None, status: Mapping[str, Any], token: ResolvedToken
) -> TokenTimes:
    if check is not None and check.token is not None:
        return TokenTimes(check.token.issued_at, check.token.expires_at)
    stored = status.get("token") or {}
    if stored.get("fingerprint") != token.fingerprint:
        return TokenTimes(None, None)  # the stored times are the previous token's
    return TokenTimes.from_status(stored)


async def rotate(
    refresher: Refresher | None,
    *,
    meta: Mapping[str, Any],
    spec: TenantSpec,
    snapshot: SecretSnapshot | None,
    token: ResolvedToken | None,
    check: CheckResult | None,
    status: Mapping[str, Any],
    now: datetime,
    forced: bool = False,
    app: tuple[str, str] | None = None,
) -> RotationInputs | None:
    """Renew the token if due (strategy Refresh) and retire the previous one after its grace.
    `app`: the id and secret of the tenant's WhatsAppApp (spec.appRef), when it has one."""
    if token is None or snapshot is None:
        return None
    rot = spec.rotation
    state = RotationState.from_status(status)
    times = _times(check, status, token)
    token_ok = _token_ok(check, status)
    inputs = RotationInputs(rot.strategy, rot.renew_before, times, state, token_ok=token_ok)
    if refresher is None or not token_ok:
        return inputs
    renewal = renewal_time(times.issued_at, times.expires_at, rot.renew_before)
    if refresh_due(strategy=rot.strategy, renewal=renewal, now=now, forced=forced, state=state):
        namespace = str(meta["namespace"])
        outcome = await refresher.refresh(namespace, spec, snapshot, token, **_with(app))
        metrics.REFRESHES.labels("ok" if outcome.ok else outcome.step).inc()
        new_state = after_refresh(state, outcome, rot.grace_period)
        return RotationInputs(
            rot.strategy, rot.renew_before, times, new_state, outcome, token_ok=token_ok
        )
    retire_at = state.previous_retire_at
    if retire_at is not None and now >= retire_at and PREVIOUS_KEY in snapshot.data:
        try:
            done = await refresher.retire_previous(
                str(meta["namespace"]), spec, snapshot, token, **_with(app)
            )
        except RefreshError:
            return inputs  # the next pass tries again; the previous token stays meanwhile
        return RotationInputs(
            rot.strategy, rot.renew_before, times, retired(state), retired=done, token_ok=token_ok
        )
    if retire_at is not None and PREVIOUS_KEY not in snapshot.data:
        inputs = RotationInputs(
            rot.strategy, rot.renew_before, times, retired(state), token_ok=token_ok
        )
    return inputs


def _with(app: tuple[str, str] | None) -> dict[str, Any]:
    """The refresher's `app` argument, only when there is one (spec.appRef)."""
    return {"app": app} if app is not None else {}


def api_version_condition(version: str, today: datetime) -> Condition:
    state, end = version_state(version, today.date())
    when = f" (end of life {end.isoformat()})" if end else ""
    if state is VersionState.CURRENT:
        return Condition(
            c.API_VERSION, "True", state.value, f"Graph API {version} is current{when}"
        )
    if state is VersionState.DEPRECATED:
        return Condition(
            c.API_VERSION, "False", state.value,
            f"Graph API {version} reaches its end of life soon{when}: move to a newer version",
        )  # fmt: skip
    if state is VersionState.EXPIRED:
        return Condition(
            c.API_VERSION, "False", state.value,
            f"Graph API {version} is past its end of life{when}: Meta may reject or upgrade "
            "calls; set spec.graphApiVersion to a current version",
        )  # fmt: skip
    return Condition(c.API_VERSION, "Unknown", state.value, f"Graph API {version} is not known")
