"""Token lifecycle end to end: expiry tracking and warnings, staged refresh, the previous
token's grace and revocation, refresh failures, the circuit breaker, version end of life.

The simulator mints tokens with short lifetimes; the operator runs with the real clock.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from test_operator import apply_tenant, cond, events, get, wait_reason

from conftest import APP_ID, APP_SECRET, ISSUED_TOKENS, Kubectl, make_world
from whatsapp_testkit.world import dump, secret, wait_for

pytestmark = pytest.mark.integration


def sim_fp(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def token_in_secret(kubectl: Kubectl, ns: str, name: str, key: str = "accessToken") -> str | None:
    data = kubectl.json("get", "secret", name, "-n", ns).get("data") or {}
    return base64.b64decode(data[key]).decode() if key in data else None


def app_secret(kubectl: Kubectl, ns: str) -> None:
    kubectl.apply(dump(secret("meta-app", {"appId": APP_ID, "appSecret": APP_SECRET})), ns)


def valid_at_meta(sim: Any, token: str) -> bool:
    """Ask the simulator as Meta would be asked: debug_token with the token itself."""
    described = sim.token(sim_fp(token))
    return described.get("invalid_subcode") is None and not (
        described.get("expires_at") and described["expires_at"] <= time.time()
    )


def test_external_strategy_tracks_expiry_and_warns(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any
) -> None:
    w = make_world(sim, expires_in=3600)
    apply_tenant(kubectl, namespace, w, rotation={"renewBefore": "59m58s"})
    obj = wait_reason(kubectl, namespace, "acme", "RenewalDue", "TokenRotation", timeout=40)
    token = obj["status"]["token"]
    assert token["expiresAt"] > token["renewalTime"]
    assert cond(obj, "Ready")["status"] == "True"  # a warning, not an outage
    warning = wait_for(
        lambda: [e for e in events(kubectl, namespace, "acme") if e["reason"] == "RenewalDue"], 10
    )
    assert warning[0]["type"] == "Warning"
    metrics = (
        urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5)
        .read()
        .decode()
    )
    line = next(
        ln for ln in metrics.splitlines()
        if ln.startswith("whatsapp_tenant_token_expiry_timestamp_seconds")
        and f'namespace="{namespace}"' in ln
    )  # fmt: skip
    assert abs(float(line.split()[-1]) - time.time() - 3600) < 120
    assert w.token not in metrics


def test_refresh_before_expiry_end_to_end(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, postgres: Any, keys_dir: Any,
    audit_key_file: Any,
) -> None:  # fmt: skip
    from test_postgres_sync import credentials

    w = make_world(sim, expires_in=3600)
    app_secret(kubectl, namespace)
    rotation = {
        "strategy": "Refresh", "renewBefore": "59m55s", "gracePeriod": "8s",
        "revokePrevious": True, "appCredentialsSecretRef": {"name": "meta-app"},
    }  # fmt: skip
    tenant_id = f"t_refresh_{namespace}"
    apply_tenant(kubectl, namespace, w, tenant_id=tenant_id, rotation=rotation)
    ready = wait_reason(kubectl, namespace, "acme", "Ready")
    renewal = ready["status"]["token"]["renewalTime"]
    new = wait_for(
        lambda: (t := token_in_secret(kubectl, namespace, "acme-token")) != w.token and t, 30, 0.1
    )
    published = time.time()
    ISSUED_TOKENS.append(new)
    renewal_ts = time.mktime(time.strptime(renewal, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    print(
        f"\n[figure] renewal time -> refreshed token in the Secret: {published - renewal_ts:.1f} s"
    )
    assert token_in_secret(kubectl, namespace, "acme-token", "previousAccessToken") == w.token
    assert valid_at_meta(sim, w.token), "the old token keeps working during the grace period"
    # the new token is validated, synced and reported
    obj = wait_reason(kubectl, namespace, "acme", "Refreshed", "TokenRotation")
    assert obj["status"]["rotation"]["previousTokenFingerprint"].startswith("sha256:")
    wait_for(
        lambda: new in credentials(postgres, keys_dir, tenant_id, audit_key_file).stdout, 15, 0.3
    )
    assert any(e["reason"] == "TokenRefreshed" for e in events(kubectl, namespace, "acme"))
    # after the grace period: removed from the Secret and revoked at Meta
    wait_for(
        lambda: token_in_secret(kubectl, namespace, "acme-token", "previousAccessToken") is None,
        30, 0.3, "previous token retired",
    )  # fmt: skip
    assert not valid_at_meta(sim, w.token)
    assert valid_at_meta(sim, new)
    assert any(e["reason"] == "PreviousTokenRetired" for e in events(kubectl, namespace, "acme"))
    assert cond(get(kubectl, namespace, "acme"), "Ready")["status"] == "True"
    # the audit trail has the story, chained, without a token
    with psycopg.connect(postgres.dsn) as conn:
        trail = conn.execute(
            "SELECT event, token_fingerprint, detail FROM whatsapp_operator_audit "
            "WHERE tenant_id = %s ORDER BY id", (tenant_id,),
        ).fetchall()  # fmt: skip
    kinds = [row[0] for row in trail]
    for event in ("validated", "refreshed", "rotated", "revoked"):
        assert event in kinds, (event, kinds)
    assert not any(w.token in str(row) or new in str(row) for row in trail)
    verify = subprocess.run(
        [str(Path(sys.executable).parent / "whatsapp-audit"), "verify"],
        env={**os.environ, "WHATSAPP_OPERATOR_DATABASE_URL": postgres.dsn,
             "WHATSAPP_OPERATOR_AUDIT_KEY_FILE": str(audit_key_file)},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "intact" in verify.stdout


@pytest.mark.parametrize(
    "failure",
    ["app credentials missing", "exchange fails", "verify fails"],
)
def test_a_failed_refresh_leaves_the_working_token(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, failure: str
) -> None:
    w = make_world(sim, expires_in=3600)
    if failure != "app credentials missing":
        app_secret(kubectl, namespace)
    rotation = {"strategy": "Refresh", "appCredentialsSecretRef": {"name": "meta-app"}}
    apply_tenant(kubectl, namespace, w, rotation=rotation)
    wait_reason(kubectl, namespace, "acme", "Ready")
    fault = None
    if failure == "exchange fails":
        fault = sim.add_fault("http_status", kind="oauth", http_status=500)
    elif failure == "verify fails":
        fault = sim.add_fault(
            "error_code",
            kind="phone",
            phone_number_id=w.phone_number_id,
            code=100,
            subcode=33,
            count=1,
        )
    try:
        kubectl("annotate", "wat", "acme", "-n", namespace, "whatsapp.operator.dev/refresh=now")
        obj = wait_reason(kubectl, namespace, "acme", "RefreshFailed", "TokenRotation")
    finally:
        if fault is not None:
            with contextlib.suppress(httpx.HTTPStatusError):  # a count=1 fault is gone once used
                sim.remove_fault(fault)
    step = {"app credentials missing": "app credentials", "exchange fails": "exchange",
            "verify fails": "verify"}[failure]  # fmt: skip
    assert step in cond(obj, "TokenRotation")["message"]
    assert obj["status"]["rotation"]["failures"] >= 1
    assert token_in_secret(kubectl, namespace, "acme-token") == w.token
    assert token_in_secret(kubectl, namespace, "acme-token", "previousAccessToken") is None
    assert cond(obj, "Ready")["status"] == "True"
    # the Event is posted after the status write the wait above saw
    wait_for(
        lambda: any(e["reason"] == "RefreshFailed" for e in events(kubectl, namespace, "acme")),
        10, 0.2, "a RefreshFailed Event",
    )  # fmt: skip


def test_circuit_breaker_and_timer(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any
) -> None:
    """A revoked token is not asked about again; a good one is re-validated by the timer."""
    good, bad = make_world(sim), make_world(sim)
    apply_tenant(kubectl, namespace, good, "good", validation={"interval": "1m"})
    apply_tenant(kubectl, namespace, bad, "bad", validation={"interval": "1m"})
    wait_reason(kubectl, namespace, "good", "Ready")
    wait_reason(kubectl, namespace, "bad", "Ready")
    sim.revoke_token(bad.token)
    kubectl("annotate", "wat", "bad", "-n", namespace, "whatsapp.operator.dev/revalidate=1")
    wait_reason(kubectl, namespace, "bad", "TokenInvalidated", "TokenValid")
    calls = sim.calls()["by_token"]
    good_before, bad_before = calls.get(sim_fp(good.token), 0), calls.get(sim_fp(bad.token), 0)
    validated = get(kubectl, namespace, "good")["status"]["token"]["lastValidatedAt"]
    wait_for(
        lambda: get(kubectl, namespace, "good")["status"]["token"]["lastValidatedAt"] != validated,
        80, 1.0, "the 1m timer re-validating the good tenant",
    )  # fmt: skip
    calls = sim.calls()["by_token"]
    assert calls.get(sim_fp(good.token), 0) > good_before
    assert calls.get(sim_fp(bad.token), 0) == bad_before, "a revoked token burns no more calls"
    print(f"\n[figure] revoked token: {calls.get(sim_fp(bad.token), 0) - bad_before} Graph calls "
          "in the minute after revocation")  # fmt: skip


@pytest.mark.parametrize(
    ("version", "reason"),
    [("v21.0", "ApiVersionDeprecated"), ("v20.0", "ApiVersionExpired"), ("v25.0", "Current")],
)
def test_graph_api_version_end_of_life(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, version: str, reason: str
) -> None:
    w = make_world(sim)
    apply_tenant(kubectl, namespace, w, graphApiVersion=version)
    obj = wait_reason(kubectl, namespace, "acme", reason, "ApiVersionSupported")
    assert cond(obj, "Ready")["status"] == "True"
    if reason != "Current":
        warned = wait_for(
            lambda: [e for e in events(kubectl, namespace, "acme") if e["reason"] == reason], 10
        )
        assert warned[0]["type"] == "Warning"


def test_simulator_refuses_an_unknown_token_via_httpx(graph_sim: Any) -> None:
    """Guards the assumption the tests above rely on: the simulator is Meta-shaped."""
    body = httpx.get(f"{graph_sim.url}/v25.0/debug_token", params={"input_token": "x"},
                     headers={"Authorization": "Bearer nope"}).json()  # fmt: skip
    assert body["error"]["code"] == 190
