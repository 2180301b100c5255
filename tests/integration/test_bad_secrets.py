"""Bad token Secrets against the running operator: a clear condition each, and no crash.

tests/integration/test_operator.py already checks one Secret per tenant (a key missing, an
empty value, whitespace only, an inner space, binary data, a 1 MB value, a trailing
newline). This file adds what it leaves out (issue 8, "Bad input"):
- whitespace on both sides of the token (leading blanks and a CRLF) is trimmed, and the
  trimmed token is the one validated (its fingerprint is the status's);
- every kind of bad Secret at once, next to a good tenant: each gets its own reason and a
  message naming the Secret and the key, Graph is never asked about a malformed value, the
  real token hidden in some of them shows up in no status or Event, the operator process
  keeps running without a traceback, and fixing a Secret in place makes its tenant Ready.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from conftest import Kubectl, make_world
from whatsapp_contract.fingerprint import fingerprint
from whatsapp_testkit.world import World, dump, secret, tenant, wait_for

pytestmark = pytest.mark.integration

KEY = "accessToken"
MIB = 1024 * 1024


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}


def get(kubectl: Kubectl, ns: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = kubectl.json("get", "wat", name, "-n", ns)
    return obj


def wait_ready_reason(kubectl: Kubectl, ns: str, name: str, reason: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get(kubectl, ns, name)
        return obj if conditions(obj).get("Ready", {}).get("reason") == reason else None

    try:
        return wait_for(probe, 40, 0.25, f"{name}: Ready reason {reason}")
    except AssertionError:
        status = get(kubectl, ns, name).get("status")
        raise AssertionError(f"{ns}/{name} never reached {reason}: {json.dumps(status)}") from None


def test_token_with_whitespace_on_both_sides_is_trimmed(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any
) -> None:
    w = make_world(sim)
    padded = f"  \t{w.token} \r\n"
    kubectl.apply(
        dump(
            secret("acme-token", {KEY: padded}),
            tenant("acme", f"t_trim_{namespace}", w, "acme-token"),
        ),
        namespace,
    )
    obj = wait_ready_reason(kubectl, namespace, "acme", "Ready")
    resolved = conditions(obj)["SecretResolved"]
    assert resolved["status"] == "True"
    assert "surrounding whitespace ignored" in resolved["message"]
    # the trimmed token is the one the operator validated and fingerprinted
    assert obj["status"]["token"]["fingerprint"] == fingerprint(w.token)
    assert obj["status"]["token"]["fingerprint"] != fingerprint(padded)


Data = Callable[[World], dict[str, str | bytes] | None]

# (tenant name, the Secret's data (None: a Secret with no data at all), reason, message part)
BAD_SECRETS: list[tuple[str, Data, str, str]] = [
    ("no-data", lambda w: None, "SecretKeyMissing", f"has no key '{KEY}' (keys present: none)"),
    (
        "wrong-keys",
        lambda w: {"token": w.token, "access_token": w.token},
        "SecretKeyMissing",
        f"has no key '{KEY}' (keys present: access_token, token)",
    ),
    ("empty", lambda w: {KEY: ""}, "TokenEmpty", f"key '{KEY}' is empty"),
    ("blank-lines", lambda w: {KEY: "\r\n\r\n"}, "TokenEmpty", "holds only whitespace"),
    (
        "png",
        lambda w: {KEY: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff"},
        "TokenMalformed",
        "binary",
    ),
    (
        "token-then-binary",
        lambda w: {KEY: w.token.encode() + b"\xff\xfe\x00"},
        "TokenMalformed",
        "is binary, not text",
    ),
    (
        "nul-inside",
        lambda w: {KEY: w.token[:12] + "\x00" + w.token[12:]},
        "TokenMalformed",
        "whitespace or control characters inside the token",
    ),
    (
        "two-tokens",
        lambda w: {KEY: f"{w.token}\n{w.token}\n"},
        "TokenMalformed",
        "whitespace or control characters inside the token",
    ),
    (
        "one-mib",  # a real token buried in a value as large as a Secret can hold
        lambda w: {KEY: w.token + "A" * (MIB - len(w.token) - 1024)},
        "TokenMalformed",
        "a Meta access token is at most 4096",
    ),
]


def test_every_bad_secret_at_once_is_a_clear_condition_and_the_operator_survives(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any
) -> None:
    log_start = operator.log_path.stat().st_size
    worlds = {name: make_world(sim) for name, *_ in BAD_SECRETS}
    for name, data, _, _ in BAD_SECRETS:
        content = data(worlds[name])
        body = secret(f"{name}-token", content or {})
        if content is None:
            del body["data"]
        objects = [body, tenant(name, f"t_{name}_{namespace}", worlds[name], f"{name}-token")]
        kubectl.apply(dump(*objects), namespace)
    good = make_world(sim)
    kubectl.apply(
        dump(
            secret("good-token", {KEY: good.token}),
            tenant("good", f"t_good_{namespace}", good, "good-token"),
        ),
        namespace,
    )

    for name, _, reason, message in BAD_SECRETS:
        obj = wait_ready_reason(kubectl, namespace, name, reason)
        found = conditions(obj)
        assert found["SecretResolved"]["status"] == "False", name
        assert found["SecretResolved"]["reason"] == reason, name
        assert f"Secret '{name}-token'" in found["SecretResolved"]["message"], name
        assert message in found["SecretResolved"]["message"], (name, found["SecretResolved"])
        assert found["TokenValid"]["reason"] == "NotChecked", name  # Graph was not asked
    wait_ready_reason(kubectl, namespace, "good", "Ready")

    # The real tokens inside the bad values appear in no status and no Event.
    seen = json.dumps(kubectl.json("get", "wat", "-n", namespace)) + json.dumps(
        kubectl.json("get", "events", "-n", namespace)
    )
    for name, world in worlds.items():
        assert world.token not in seen, f"{name}: the token leaked into a status or an Event"
    warned = {
        e["involvedObject"]["name"]
        for e in kubectl.json("get", "events", "-n", namespace)["items"]
        if e["type"] == "Warning"
    }
    assert warned >= {name for name, *_ in BAD_SECRETS}, warned

    # The operator is still up, logged no traceback, and recovers a fixed Secret in place.
    assert operator.running
    with operator.log_path.open("rb") as log:
        log.seek(log_start)
        written = log.read().decode("utf-8", "replace")
    assert "Traceback (most recent call last)" not in written
    fixed = worlds["one-mib"]
    kubectl.apply(dump(secret("one-mib-token", {KEY: fixed.token})), namespace)
    obj = wait_ready_reason(kubectl, namespace, "one-mib", "Ready")
    assert obj["status"]["token"]["fingerprint"] == fingerprint(fixed.token)
    assert operator.running
