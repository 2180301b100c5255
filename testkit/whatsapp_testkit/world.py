"""Builders for test worlds: a tenant's ids, token and phone in the simulator, and the
Kubernetes manifests that reference them. Shared by tests, benchmarks and the demo."""

from __future__ import annotations

import base64
import itertools
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

SCOPES = ("business_management", "whatsapp_business_management", "whatsapp_business_messaging")
_counter = itertools.count(int(time.time()) % 100000 * 1000 + os.getpid() % 1000)
T = TypeVar("T")


def new_id(prefix: str = "1") -> str:
    """A fresh numeric Meta-style id, unique within this machine's runs."""
    return f"{prefix}{next(_counter):012d}"


def new_token() -> str:
    """An opaque token shaped like Meta's (the leak scan looks for each one)."""
    return "EAAT" + secrets.token_urlsafe(48).replace("-", "x").replace("_", "y")


@dataclass(frozen=True)
class World:
    waba_id: str
    phone_number_id: str
    token: str
    display: str


def tenant(name: str, tenant_id: str, world: World, secret: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "whatsapp.operator.dev/v1alpha1",
        "kind": "WhatsAppTenant",
        "metadata": {"name": name},
        "spec": {
            "tenantId": tenant_id,
            "wabaId": world.waba_id,
            "phoneNumberId": world.phone_number_id,
            "tokenSecretRef": {"name": secret},
            **spec,
        },
    }


def secret(name: str, data: dict[str, str | bytes]) -> dict[str, Any]:
    encoded = {
        k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode()
        for k, v in data.items()
    }
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}


def dump(*objects: dict[str, Any]) -> str:
    return "\n---\n".join(json.dumps(o) for o in objects)


def wait_for(
    probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> T:
    """Poll until `probe` returns something truthy; its last value in the error otherwise."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or probe}: last {last!r}")
